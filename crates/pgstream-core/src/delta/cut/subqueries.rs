//! Linear blocks' FROM and WHERE: inline items, filter subqueries (over stages when they
//! read more), decorrelated scalar subqueries, grouped queries split around subqueries
//! (delta planning).

use super::*;

impl Cutter<'_> {
    /// Prepares the FROM and WHERE of a linear block (or of a grouped or DISTINCT one's input):
    /// FROM items that cannot stay inline become stages, subqueries in WHERE become dependent
    /// filters (over a stage when they read more than one relation), scalar subqueries joins
    /// with aggregate stages.
    pub(super) fn linearize(
        &mut self,
        select: &mut Select,
        location: &str,
    ) -> Result<(), Unsupported> {
        for table in select.from.iter_mut() {
            // `(a LEFT JOIN b ON ...) JOIN c` (how PostgreSQL prints a view's joins) is
            // `a LEFT JOIN b ON ... JOIN c`: joins associate to the left.
            while let TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } = &table.relation
            {
                let inner = (**table_with_joins).clone();
                let outer_joins = std::mem::take(&mut table.joins);
                table.relation = inner.relation;
                table.joins = inner.joins.into_iter().chain(outer_joins).collect();
            }
            if table.joins.iter().any(|j| has_sublinks(&j.join_operator)) {
                return Err(Unsupported::new("a subquery in a JOIN condition").at(location));
            }
            let (first_nullable, nullable) = nullable_positions(table);
            self.inline_or_cut(&mut table.relation, first_nullable, location)?;
            for (join, nullable) in table.joins.iter_mut().zip(nullable) {
                self.inline_or_cut(&mut join.relation, nullable, location)?;
            }
        }
        if let Some(selection) = select.selection.take() {
            let mut kept = Vec::new();
            for conjunct in conjuncts(selection) {
                kept.push(self.where_conjunct(conjunct, select, location)?);
            }
            select.selection = and_all(kept);
        }
        // Scalar subqueries in the select list (of a non-grouped block).
        if has_sublinks(&select.projection) {
            let projection = std::mem::take(&mut select.projection);
            let mut rebuilt = Vec::with_capacity(projection.len());
            for item in projection {
                rebuilt.push(match item {
                    // Keep the column's name: the decorrelated expression would have another.
                    SelectItem::UnnamedExpr(e) if has_sublinks(&e) => SelectItem::ExprWithAlias {
                        alias: ident(&scope::figure_colname(&e)),
                        expr: self.scalar_subqueries(e, select, location)?,
                    },
                    SelectItem::ExprWithAlias { expr, alias } if has_sublinks(&expr) => {
                        SelectItem::ExprWithAlias {
                            expr: self.scalar_subqueries(expr, select, location)?,
                            alias,
                        }
                    }
                    other => other,
                });
            }
            select.projection = rebuilt;
        }
        Ok(())
    }

    /// A FROM item of a linear block: markers stay; a subquery stays inline when a linear block
    /// can hold it (on the NULL-padded side of an outer join: when it reads one relation), else
    /// it becomes a stage, read under the same alias.
    pub(super) fn inline_or_cut(
        &mut self,
        factor: &mut TableFactor,
        nullable: bool,
        location: &str,
    ) -> Result<(), Unsupported> {
        if as_marker(factor).is_some() {
            return Ok(());
        }
        match factor {
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let here = alias
                    .as_ref()
                    .map(|a| location_of(&[folded(&a.name)]))
                    .unwrap_or_else(|| location.to_string());
                let keep = if nullable {
                    matches!(subquery.body.as_ref(), SetExpr::Select(s) if plain(subquery) && single_occurrence(s, self.catalog).is_some())
                } else {
                    plain(subquery)
                        && matches!(subquery.body.as_ref(), SetExpr::Select(s) if inlinable_select(s, self.catalog))
                };
                if keep {
                    if let SetExpr::Select(select) = subquery.body.as_mut() {
                        self.linearize(select, &here)?;
                    }
                    return Ok(());
                }
                let query = std::mem::replace(subquery.as_mut(), generated_query("SELECT 1"));
                let stage = self.stage_of(query, &here)?;
                *factor = marker_factor(stage, alias.clone());
                Ok(())
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                if nullable {
                    return Err(Unsupported::new(
                        "an outer join of a parenthesized join (join a table, view or subquery)",
                    )
                    .at(location));
                }
                if table_with_joins.joins.iter().any(|j| {
                    !matches!(
                        j.join_operator,
                        JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)
                    )
                }) {
                    return Err(
                        Unsupported::new("an outer join inside a parenthesized join").at(location),
                    );
                }
                self.inline_or_cut(&mut table_with_joins.relation, false, location)?;
                for join in table_with_joins.joins.iter_mut() {
                    self.inline_or_cut(&mut join.relation, false, location)?;
                }
                Ok(())
            }
            other => Err(Unsupported::new(format!("FROM item {other}")).at(location)),
        }
    }

    /// One conjunct of a WHERE: an EXISTS / IN filter over one relation stays; over more it is
    /// turned into one over a stage; scalar subqueries in it are decorrelated.
    pub(super) fn where_conjunct(
        &mut self,
        conjunct: Expr,
        select: &mut Select,
        location: &str,
    ) -> Result<Expr, Unsupported> {
        if !has_sublinks(&conjunct) {
            return Ok(conjunct);
        }
        if let Some(filter) = as_filter_subquery(&conjunct) {
            let negated = filter.negated;
            // The IN operand is evaluated inside the subquery from now on: its columns qualified,
            // so a column of the same name inside cannot capture them.
            let lhs = filter
                .lhs
                .cloned()
                .map(|lhs| self.qualified_in(lhs, select));
            let mut subquery = filter.subquery.clone();
            let simple = plain(&subquery)
                && matches!(subquery.body.as_ref(), SetExpr::Select(s) if single_occurrence(s, self.catalog).is_some());
            if simple {
                if let SetExpr::Select(inner) = subquery.body.as_mut() {
                    self.linearize(inner, location)?;
                }
            } else {
                subquery = self.filter_over_stage(subquery, select, lhs.is_some(), location)?;
            }
            return Ok(match lhs {
                None => Expr::Exists {
                    subquery: Box::new(subquery),
                    negated,
                },
                Some(lhs) => Expr::In {
                    expr: Box::new(lhs),
                    target: InTarget::Subquery(Box::new(subquery)),
                    negated,
                    global: false,
                },
            });
        }
        if contains_filter_subquery(&conjunct) {
            return Err(Unsupported::new(
                "EXISTS / IN (subquery) inside OR, CASE or another expression (only as a condition ANDed to WHERE)",
            )
            .at(location));
        }
        self.scalar_subqueries(conjunct, select, location)
    }

    /// `expr` with its unqualified column names qualified by the FROM item of `select` that
    /// has them (names no item has stay as they are).
    fn qualified_in(&self, mut expr: Expr, select: &Select) -> Expr {
        let scope = self.scope_of(select);
        let _ = sqlparser::ast::visit_expressions_mut(&mut expr, |e| {
            if let Expr::Identifier(ident) = e {
                let ident = ident.clone();
                if let Some(item) = scope::resolve(e, &scope).map(|i| &scope[i]) {
                    *e = Expr::CompoundIdentifier(vec![super::ident(&item.alias), ident]);
                }
            }
            ControlFlow::<()>::Continue(())
        });
        expr
    }

    /// The query of a filter subquery that reads more than one relation (or aggregates), made a
    /// filter over one stage: uncorrelated, the whole subquery is the stage; correlated, its
    /// FROM and uncorrelated conditions are, and the correlated conditions filter the stage.
    pub(super) fn filter_over_stage(
        &mut self,
        subquery: Query,
        outer: &Select,
        is_in: bool,
        location: &str,
    ) -> Result<Query, Unsupported> {
        let outer_scope = self.scope_of(outer);
        let inner_scope = match subquery.body.as_ref() {
            SetExpr::Select(select) if plain(&subquery) => self.scope_of(select),
            _ => vec![],
        };
        let correlated = references_outside(&subquery, &inner_scope, &outer_scope);
        let here = format!("{location} (a subquery in WHERE)");
        if !correlated {
            return self.uncorrelated_filter(subquery, is_in, &here);
        }
        self.correlated_filter(subquery, &inner_scope, &outer_scope, is_in, &here)
    }

    /// An uncorrelated filter subquery: the whole of it a stage, the filter reading it (its
    /// first column, for IN).
    fn uncorrelated_filter(
        &mut self,
        subquery: Query,
        is_in: bool,
        here: &str,
    ) -> Result<Query, Unsupported> {
        let names = self.names_of(&subquery);
        let stage = self.stage_of(subquery, here)?;
        let alias = self.next_alias("__pgs_fs");
        let sql = if is_in {
            let column = names.first().cloned().unwrap_or_default();
            format!(
                "SELECT {}.{} FROM __pgs_from__",
                alias,
                crate::sql_text::quote_ident(&column)
            )
        } else {
            "SELECT 1 FROM __pgs_from__".to_string()
        };
        let mut select = generated_select(&sql);
        select.from[0].relation = marker_factor(stage, Some(table_alias(&alias)));
        Ok(query_of(select))
    }

    /// A correlated filter subquery: its FROM and uncorrelated conditions hoisted into a stage
    /// (projecting the inner columns the rest reads as `__pgs_c<i>`), the correlated conditions
    /// (and IN's item) reading that stage.
    fn correlated_filter(
        &mut self,
        mut subquery: Query,
        inner_scope: &[ScopeItem],
        outer_scope: &[ScopeItem],
        is_in: bool,
        here: &str,
    ) -> Result<Query, Unsupported> {
        let is_plain = plain(&subquery);
        let SetExpr::Select(select) = subquery.body.as_mut() else {
            unreachable!("correlated subqueries here are plain SELECTs")
        };
        if is_grouped(select, self.catalog) || select.distinct.is_some() || !is_plain {
            return Err(Unsupported::new(
                "a correlated EXISTS / IN subquery with aggregates, DISTINCT or LIMIT",
            )
            .at(here));
        }
        let (local, correlated_parts): (Vec<Expr>, Vec<Expr>) = select
            .selection
            .take()
            .map(conjuncts)
            .unwrap_or_default()
            .into_iter()
            .partition(|c| !references_outside(c, inner_scope, outer_scope));
        let item_expr = in_item(select, is_in).map_err(|e| e.at(here))?;
        let alias = self.next_alias("__pgs_fs");
        let mut projected: Vec<Expr> = Vec::new();
        let mut rewrite =
            |e: &Expr| rewrite_inner_refs(e.clone(), inner_scope, &alias, &mut projected);
        let correlated_parts: Vec<Expr> = correlated_parts.iter().map(&mut rewrite).collect();
        let item_expr = item_expr.map(|e| rewrite(&e));
        if projected.is_empty() {
            projected.push(generated_expr("1"));
        }
        select.selection = and_all(local);
        select.projection = projected
            .iter()
            .enumerate()
            .map(|(i, e)| item(e.clone(), &format!("__pgs_c{i}")))
            .collect();
        let stage = self.stage_of(subquery, here)?;
        let mut filter = generated_select("SELECT 1 FROM __pgs_from__");
        if let Some(e) = item_expr {
            filter.projection = vec![SelectItem::UnnamedExpr(e)];
        }
        filter.from[0].relation = marker_factor(stage, Some(table_alias(&alias)));
        filter.selection = and_all(correlated_parts);
        Ok(query_of(filter))
    }

    pub(super) fn next_alias(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    /// `expr` with its scalar subqueries replaced by columns of aggregate stages joined to
    /// `select` (LEFT JOIN on the correlation, CROSS JOIN when uncorrelated).
    pub(super) fn scalar_subqueries(
        &mut self,
        mut expr: Expr,
        select: &mut Select,
        location: &str,
    ) -> Result<Expr, Unsupported> {
        let mut subqueries = crate::delta::ast::take_subqueries(&mut expr);
        let mut replacements: Vec<Expr> = Vec::new();
        for subquery in subqueries.drain(..) {
            replacements.push(self.decorrelate(subquery, select, location)?);
        }
        // Put columns where the subqueries were.
        struct Put(Vec<Option<Expr>>);
        impl VisitorMut for Put {
            type Break = ();
            fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                if let Expr::Subquery(q) = expr {
                    if let Some(i) = placeholder(q) {
                        if let Some(e) = self.0.get_mut(i).and_then(Option::take) {
                            *expr = e;
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(
            &mut expr,
            &mut Put(replacements.into_iter().map(Some).collect()),
        );
        if has_sublinks(&expr) {
            return Err(Unsupported::new("a subquery of this kind (only scalar aggregate subqueries, and EXISTS / IN ANDed to WHERE)").at(location));
        }
        Ok(expr)
    }

    /// One scalar subquery `(SELECT f(aggregates) FROM ... WHERE ...)` as a column of an
    /// aggregate stage joined to `outer`.
    pub(super) fn decorrelate(
        &mut self,
        mut subquery: Query,
        outer: &mut Select,
        location: &str,
    ) -> Result<Expr, Unsupported> {
        let here = format!("{location} (a scalar subquery)");
        let refuse = |what: &str| Unsupported::new(what.to_string()).at(&here);
        if !plain(&subquery) {
            return Err(refuse("a scalar subquery with ORDER BY, LIMIT or WITH"));
        }
        let outer_scope = self.scope_of(outer);
        let SetExpr::Select(select) = subquery.body.as_mut() else {
            return Err(refuse("a scalar subquery that is not one SELECT"));
        };
        let value = self.scalar_aggregate(select).map_err(refuse)?;
        let inner_scope = self.scope_of(select);
        let Correlation { keys, local } =
            correlation(select.selection.take(), &inner_scope, &outer_scope).map_err(refuse)?;
        if has_sublinks(&value) {
            return Err(refuse("a subquery inside a scalar subquery's result"));
        }
        let alias = self.next_alias("__pgs_sq");
        group_by_correlation(select, &keys, &value, local);
        let stage = self.stage_of(subquery, &here)?;
        join_scalar_stage(outer, stage, &alias, &keys);
        // A missing group (no rows matched) is what the subquery gives over no rows.
        let empty = empty_value(&value, self.catalog);
        let column = generated_expr(&format!("{alias}.__pgs_v"));
        Ok(if keys.is_empty() || empty == generated_expr("NULL") {
            column
        } else {
            expr_with(
                &format!("CASE WHEN {alias}.__pgs_m THEN __pgs_hole_0__ ELSE __pgs_hole_1__ END"),
                &[&column, &empty],
            )
        })
    }

    /// The one result of a scalar subquery's SELECT, refused unless it is an expression over
    /// aggregates without GROUP BY or HAVING.
    fn scalar_aggregate(&self, select: &Select) -> Result<Expr, &'static str> {
        let value = match select.projection.as_slice() {
            [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => e.clone(),
            _ => return Err("a scalar subquery of more than one column"),
        };
        let has_group_by =
            matches!(&select.group_by, GroupByExpr::Expressions(e, _) if !e.is_empty());
        if aggregate_calls(&value, self.catalog).is_empty()
            || has_group_by
            || select.having.is_some()
        {
            return Err("a scalar subquery that is not an aggregate without GROUP BY");
        }
        Ok(value)
    }

    /// A grouped SELECT whose HAVING or select list holds subqueries: the groups (keys and
    /// aggregates) a stage, the rest a linear block over it.
    pub(super) fn split_grouped(
        &mut self,
        select: Select,
        location: &str,
    ) -> Result<(Query, DraftKind), Unsupported> {
        let keys = group_keys(&select, location)?;
        let mut aggregates = aggregate_calls(&select.projection, self.catalog);
        for a in aggregate_calls(&select.having, self.catalog) {
            if !aggregates.contains(&a) {
                aggregates.push(a);
            }
        }
        let mut groups = select.clone();
        groups.having = None;
        groups.projection = keys
            .iter()
            .enumerate()
            .map(|(i, k)| item(k.clone(), &format!("__pgs_g{i}")))
            .chain(
                aggregates
                    .iter()
                    .enumerate()
                    .map(|(j, a)| item(a.clone(), &format!("__pgs_a{j}"))),
            )
            .collect();
        let stage = self.stage_of(query_of(groups), &format!("{location} (its groups)"))?;
        let alias = "__pgs_grp";
        let rewrite = |e: Expr| replace_grouped(e, &keys, &aggregates, alias);
        let mut outer = generated_select("SELECT 1 FROM __pgs_from__");
        outer.from[0].relation = marker_factor(stage, Some(table_alias(alias)));
        outer.projection = select
            .projection
            .iter()
            .map(|it| match it {
                SelectItem::UnnamedExpr(e) => item(rewrite(e.clone()), &scope::figure_colname(e)),
                SelectItem::ExprWithAlias { expr, alias } => SelectItem::ExprWithAlias {
                    expr: rewrite(expr.clone()),
                    alias: alias.clone(),
                },
                other => other.clone(),
            })
            .collect();
        outer.selection = select.having.clone().map(rewrite);
        self.linearize(&mut outer, location)?;
        Ok((query_of(outer), DraftKind::Linear))
    }
}

/// A scalar subquery's WHERE: its correlation keys and its local conditions.
struct Correlation {
    /// `(inner, outer)` of each condition `inner = outer`.
    keys: Vec<(Expr, Expr)>,
    local: Vec<Expr>,
}

/// A scalar subquery's WHERE split into its correlation keys (conditions `inner = outer`) and
/// its local conditions; refused when correlated any other way.
fn correlation(
    selection: Option<Expr>,
    inner_scope: &[ScopeItem],
    outer_scope: &[ScopeItem],
) -> Result<Correlation, &'static str> {
    let mut keys: Vec<(Expr, Expr)> = Vec::new(); // (inner, outer)
    let mut local = Vec::new();
    for c in selection.map(conjuncts).unwrap_or_default() {
        if !references_outside(&c, inner_scope, outer_scope) {
            local.push(c);
            continue;
        }
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = c
        else {
            return Err("a scalar subquery correlated by a condition other than inner = outer");
        };
        let left_outer = references_outside(left.as_ref(), inner_scope, outer_scope);
        let right_outer = references_outside(right.as_ref(), inner_scope, outer_scope);
        let left_inner = references_inside(left.as_ref(), inner_scope);
        let right_inner = references_inside(right.as_ref(), inner_scope);
        match (left_outer, right_outer) {
            (true, false) if !left_inner => keys.push((*right, *left)),
            (false, true) if !right_inner => keys.push((*left, *right)),
            _ => {
                return Err("a scalar subquery correlated by a condition other than inner = outer")
            }
        }
    }
    Ok(Correlation { keys, local })
}

/// A scalar subquery's SELECT as its aggregate stage: grouped by the inner correlation keys
/// `__pgs_k<i>`, its value `__pgs_v` and a marker `__pgs_m` of groups that exist, filtered by
/// its `local` conditions.
fn group_by_correlation(
    select: &mut Select,
    keys: &[(Expr, Expr)],
    value: &Expr,
    local: Vec<Expr>,
) {
    let mut projection: Vec<SelectItem> = keys
        .iter()
        .enumerate()
        .map(|(i, (inner, _))| item(inner.clone(), &format!("__pgs_k{i}")))
        .collect();
    projection.push(item(value.clone(), "__pgs_v"));
    projection.push(item(generated_expr("true"), "__pgs_m"));
    select.projection = projection;
    select.selection = and_all(local);
    select.group_by = GroupByExpr::Expressions(
        keys.iter().map(|(inner, _)| inner.clone()).collect(),
        vec![],
    );
}

/// Joins a scalar subquery's `stage` to `outer` as `alias`: LEFT JOIN on the outer
/// correlation keys, or a CROSS JOIN when uncorrelated (its one row always exists).
fn join_scalar_stage(outer: &mut Select, stage: usize, alias: &str, keys: &[(Expr, Expr)]) {
    let factor = marker_factor(stage, Some(table_alias(alias)));
    if keys.is_empty() {
        add_join(outer, factor, JoinOperator::CrossJoin(JoinConstraint::None));
    } else {
        let on = and_all(keys.iter().enumerate().map(|(i, (_, outer_expr))| {
            expr_with(
                &format!("{alias}.__pgs_k{i} = __pgs_hole_0__"),
                &[outer_expr],
            )
        }))
        .expect("keys");
        add_join(outer, factor, JoinOperator::Left(JoinConstraint::On(on)));
    }
}

/// The item an IN (subquery) compares (None for EXISTS); refused for more than one column.
fn in_item(select: &Select, is_in: bool) -> Result<Option<Expr>, Unsupported> {
    match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] if is_in => {
            Ok(Some(e.clone()))
        }
        _ if is_in => Err(Unsupported::new("IN (subquery) of more than one column")),
        _ => Ok(None),
    }
}
