//! Stages of ORDER BY ... LIMIT and of set operations (UNION [ALL]) (delta planning).

use super::*;

impl Cutter<'_> {
    /// `... ORDER BY ... LIMIT n [OFFSET m]`: the rows before the limit a stage, the top-k read
    /// from it.
    pub(super) fn top_k(
        &mut self,
        mut query: Query,
        location: &str,
    ) -> Result<(Query, DraftKind), Unsupported> {
        let (limit, offset) = limit_and_offset(&mut query, location)?;
        let order_by = self.order_by_outputs(&mut query, location)?;
        let input = self.stage_of(
            query,
            &format!("{location} (rows before ORDER BY ... LIMIT)"),
        )?;
        let (body, _) = self.over_stage(input, false, location);
        Ok((
            body,
            DraftKind::TopK {
                order_by,
                limit: Box::new(limit),
                offset: offset.map(Box::new),
            },
        ))
    }

    /// The ORDER BY of a top-k, taken from `query`, as its output columns read from its input
    /// stage `__pgs_in` (refused unless each item is an output column).
    fn order_by_outputs(
        &self,
        query: &mut Query,
        location: &str,
    ) -> Result<Vec<OrderByExpr>, Unsupported> {
        let order_by = query
            .order_by
            .take()
            .expect("checked: LIMIT comes with ORDER BY");
        let OrderByKind::Expressions(order) = order_by.kind else {
            return Err(Unsupported::new("ORDER BY ALL").at(location));
        };
        let names = self.names_of(query);
        let items = projection_exprs(query);
        let mut mapped = Vec::new();
        for o in order {
            let Some(column) = output_column(&o.expr, &names, &items) else {
                return Err(Unsupported::new(format!(
                    "ORDER BY {} with LIMIT (order by output columns of the query)",
                    o.expr
                ))
                .at(location));
            };
            let mut mapped_item = o.clone();
            mapped_item.expr = column_ref("__pgs_in", &column);
            mapped.push(mapped_item);
        }
        Ok(mapped)
    }

    /// A tree of set operations as a stage body: UNION ALL of linear branches (a branch that is
    /// not linear becomes a stage), or a UNION (DISTINCT) over all of them.
    pub(super) fn set_operation(
        &mut self,
        body: SetExpr,
        location: &str,
    ) -> Result<(SetExpr, bool), Unsupported> {
        let SetExpr::SetOperation {
            op,
            set_quantifier,
            left,
            right,
        } = body
        else {
            return Ok((self.linear_branch(body, location)?, false));
        };
        if op != SetOperator::Union {
            return Err(Unsupported::new(format!("{op}")).at(location));
        }
        let distinct = matches!(
            set_quantifier,
            SetQuantifier::Distinct | SetQuantifier::None
        );
        let mut branches = Vec::new();
        self.union_branches(*left, distinct, &mut branches, location)?;
        self.union_branches(*right, distinct, &mut branches, location)?;
        // Branches joined by UNION ALL, or by UNION when the whole is distinct (a stage's query
        // computes its rows as they are: its FULL SQL).
        let quantifier = if distinct {
            SetQuantifier::None
        } else {
            SetQuantifier::All
        };
        let body = branches
            .into_iter()
            .reduce(|l, r| SetExpr::SetOperation {
                op: SetOperator::Union,
                set_quantifier: quantifier,
                left: Box::new(l),
                right: Box::new(r),
            })
            .expect("a set operation has branches");
        Ok((body, distinct))
    }

    /// The leaves under a union: under a UNION (DISTINCT) every nested union flattens; under a
    /// UNION ALL a nested UNION (DISTINCT) is a stage of its own.
    pub(super) fn union_branches(
        &mut self,
        body: SetExpr,
        outer_distinct: bool,
        out: &mut Vec<SetExpr>,
        location: &str,
    ) -> Result<(), Unsupported> {
        match body {
            SetExpr::SetOperation {
                op: SetOperator::Union,
                set_quantifier,
                left,
                right,
            } if outer_distinct || set_quantifier == SetQuantifier::All => {
                self.union_branches(*left, outer_distinct, out, location)?;
                self.union_branches(*right, outer_distinct, out, location)
            }
            SetExpr::Query(query) if plain(&query) => {
                self.union_branches(*query.body, outer_distinct, out, location)
            }
            other => {
                out.push(self.linear_branch(other, location)?);
                Ok(())
            }
        }
    }

    /// `body` (a set operation) with the NULLs its branches select (`NULL AS refunds`) cast to
    /// the type PostgreSQL gives their column: the type of the other branches' column. Apart
    /// from the other branches (a branch's change, or a branch cut into a stage) such a NULL
    /// would be text, which a UNION with a numeric column refuses. (Only NULL: a quoted
    /// string takes the type of the pair of branches it is resolved in first, which a later
    /// branch may widen, so its value could differ when cast to the final type; a NULL is NULL
    /// in any.) Unchanged when the database cannot describe it.
    pub(super) fn typed_nulls(&self, mut body: SetExpr) -> SetExpr {
        let query = query_of_body(body.clone());
        let Some(types) = self.described_query(&query) else {
            return body;
        };
        let mut first = true;
        cast_nulls(&mut body, &types, &mut first);
        body
    }

    /// One branch of a UNION ALL: kept when linear, else a stage read by `SELECT *`.
    pub(super) fn linear_branch(
        &mut self,
        body: SetExpr,
        location: &str,
    ) -> Result<SetExpr, Unsupported> {
        match body {
            SetExpr::Select(mut select)
                if !is_grouped(&select, self.catalog) && select.distinct.is_none() =>
            {
                self.linearize(&mut select, location)?;
                Ok(SetExpr::Select(select))
            }
            SetExpr::Values(values) => Ok(SetExpr::Values(values)),
            other => {
                let query = query_of_body(other);
                let stage = self.stage_of(query, location)?;
                let (query, _) = self.over_stage(stage, false, location);
                Ok(*query.body)
            }
        }
    }
}

/// The LIMIT (FETCH FIRST's quantity, 1 by default) and OFFSET of a top-k, taken from `query`;
/// refused unless constants.
fn limit_and_offset(
    query: &mut Query,
    location: &str,
) -> Result<(Expr, Option<Expr>), Unsupported> {
    let (limit, offset) = match query.limit_clause.take() {
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) if limit_by.is_empty() => (limit, offset.map(|o| o.value)),
        Some(other) => return Err(Unsupported::new(format!("{other}")).at(location)),
        None => (None, None),
    };
    let limit = match (limit, query.fetch.take()) {
        (Some(limit), None) => limit,
        (None, Some(fetch)) if !fetch.percent && !fetch.with_ties => {
            fetch.quantity.unwrap_or_else(|| generated_expr("1"))
        }
        (None, Some(_)) => {
            return Err(Unsupported::new("FETCH ... PERCENT / WITH TIES").at(location))
        }
        (limit, _) => limit.unwrap_or_else(|| generated_expr("ALL")),
    };
    for constant in std::iter::once(&limit).chain(offset.iter()) {
        if !matches!(constant, Expr::Value(_)) {
            return Err(Unsupported::new(format!(
                "LIMIT / OFFSET {constant} (only constants can be maintained)"
            ))
            .at(location));
        }
    }
    Ok((limit, offset))
}

/// The select-list expressions of a SELECT body (None for a wildcard; none for other bodies).
fn projection_exprs(query: &Query) -> Vec<Option<Expr>> {
    match query.body.as_ref() {
        SetExpr::Select(select) => select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    Some(e.clone())
                }
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

/// The output column an ORDER BY item names: by name, by position, or by expression (a
/// qualified column by its name when only one output has it).
fn output_column(expr: &Expr, names: &[String], items: &[Option<Expr>]) -> Option<String> {
    match expr {
        Expr::Identifier(i) if names.contains(&folded(i)) => Some(folded(i)),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n
                .parse::<usize>()
                .ok()
                .and_then(|p| names.get(p.wrapping_sub(1)).cloned()),
            _ => None,
        },
        other => items
            .iter()
            .position(|e| e.as_ref() == Some(other))
            .and_then(|p| names.get(p).cloned())
            .or_else(|| match other {
                Expr::CompoundIdentifier(parts) => parts
                    .last()
                    .map(folded)
                    .filter(|n| names.iter().filter(|x| *x == n).count() == 1),
                _ => None,
            }),
    }
}

/// Casts the untyped NULLs of every SELECT under `body` to their column's type in `types`
/// (name, type); the first SELECT, whose names the result has, keeps them by alias.
fn cast_nulls(body: &mut SetExpr, types: &[(String, String)], first: &mut bool) {
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            cast_nulls(left, types, first);
            cast_nulls(right, types, first);
        }
        SetExpr::Query(query) => cast_nulls(&mut query.body, types, first),
        SetExpr::Select(select) => {
            let naming = std::mem::take(first);
            if select.projection.len() != types.len() {
                return; // a `*` among its items: positions unknown
            }
            for (selected, (name, type_name)) in select.projection.iter_mut().zip(types) {
                let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) =
                    selected
                else {
                    return;
                };
                let untyped = matches!(e, Expr::Value(v) if v.value == Value::Null);
                let Some(cast) = untyped.then(|| typed_literal(e, type_name)).flatten() else {
                    continue;
                };
                *selected = match selected {
                    SelectItem::ExprWithAlias { alias, .. } => SelectItem::ExprWithAlias {
                        expr: cast,
                        alias: alias.clone(),
                    },
                    _ if naming => item(cast, name),
                    _ => SelectItem::UnnamedExpr(cast),
                };
            }
        }
        _ => *first = false,
    }
}

/// `literal` cast to `type_name` as the database described it (`text COLLATE "C"` as
/// `CAST(… AS text) COLLATE "C"`); None when that name does not parse as a type.
pub(super) fn typed_literal(literal: &Expr, type_name: &str) -> Option<Expr> {
    let sql = match type_name.split_once(" COLLATE ") {
        Some((t, collation)) => format!("CAST({literal} AS {t}) COLLATE {collation}"),
        None => format!("CAST({literal} AS {type_name})"),
    };
    sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}
