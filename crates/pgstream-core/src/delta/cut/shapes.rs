//! What the cutter asks of a query's parts: aggregates, group keys, conjuncts, filter
//! subqueries, inline FROM items, outer-join sides (delta planning).

use super::*;

/// Whether `select` aggregates: GROUP BY, HAVING or an aggregate call (outside subqueries).
pub fn is_grouped(select: &Select, catalog: &dyn Catalog) -> bool {
    let has_group_by = matches!(&select.group_by, GroupByExpr::Expressions(e, _) if !e.is_empty());
    has_group_by
        || select.having.is_some()
        || select
            .projection
            .iter()
            .any(|item| !aggregate_calls(item, catalog).is_empty())
}

/// The aggregate calls in `node`, outside subqueries, in order (each once).
pub fn aggregate_calls<N: Visit>(node: &N, catalog: &dyn Catalog) -> Vec<Expr> {
    struct Find<'a> {
        catalog: &'a dyn Catalog,
        depth: usize,
        found: Vec<Expr>,
    }
    impl Visitor for Find<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if self.depth == 0
                && is_aggregate_call(expr, self.catalog)
                && !self.found.contains(expr)
            {
                self.found.push(expr.clone());
            }
            ControlFlow::Continue(())
        }
    }
    let mut find = Find {
        catalog,
        depth: 0,
        found: vec![],
    };
    let _ = node.visit(&mut find);
    find.found
}

/// Whether `expr` is a call of an aggregate function (not a window function).
pub fn is_aggregate_call(expr: &Expr, catalog: &dyn Catalog) -> bool {
    match expr {
        Expr::Function(f) if f.over.is_none() => {
            let name = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(folded)
                .unwrap_or_default();
            catalog.is_aggregate(&name)
        }
        _ => false,
    }
}

/// The GROUP BY expressions of `select`, positions resolved to expressions. (A name stays a
/// name: the cut has already replaced the output names that are no input column by their
/// expressions, and a name that is both is the input column, as PostgreSQL takes it.)
pub fn group_keys(select: &Select, location: &str) -> Result<Vec<Expr>, Unsupported> {
    let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
        return Ok(vec![]);
    };
    exprs
        .iter()
        .map(|key| match key {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => {
                    let position: usize = n
                        .parse()
                        .map_err(|_| Unsupported::new(format!("GROUP BY {n}")).at(location))?;
                    match select.projection.get(position.wrapping_sub(1)) {
                        Some(SelectItem::UnnamedExpr(expr))
                        | Some(SelectItem::ExprWithAlias { expr, .. }) => Ok(expr.clone()),
                        _ => Err(Unsupported::new(format!("GROUP BY {n}")).at(location)),
                    }
                }
                _ => Ok(key.clone()),
            },
            _ => Ok(key.clone()),
        })
        .collect()
}

/// The conjuncts of a condition (AND, through parentheses).
pub fn conjuncts(expr: Expr) -> Vec<Expr> {
    let mut out = Vec::new();
    fn walk(expr: Expr, out: &mut Vec<Expr>) {
        match expr {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                walk(*left, out);
                walk(*right, out);
            }
            Expr::Nested(inner)
                if matches!(
                    *inner,
                    Expr::BinaryOp {
                        op: BinaryOperator::And,
                        ..
                    }
                ) =>
            {
                walk(*inner, out)
            }
            other => out.push(other),
        }
    }
    walk(expr, &mut out);
    out
}

/// A filter subquery's shape: EXISTS / NOT EXISTS / IN / NOT IN, its query, and the IN operand.
pub struct FilterSubquery<'a> {
    pub negated: bool,
    pub lhs: Option<&'a Expr>,
    pub subquery: &'a Query,
}

/// `conjunct` as an EXISTS / IN filter, if it is one.
pub fn as_filter_subquery(conjunct: &Expr) -> Option<FilterSubquery<'_>> {
    match conjunct {
        Expr::Exists { subquery, negated } => Some(FilterSubquery {
            negated: *negated,
            lhs: None,
            subquery,
        }),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => match expr.as_ref() {
            Expr::Exists { subquery, negated } => Some(FilterSubquery {
                negated: !*negated,
                lhs: None,
                subquery,
            }),
            Expr::Nested(inner) => match inner.as_ref() {
                Expr::Exists { subquery, negated } => Some(FilterSubquery {
                    negated: !*negated,
                    lhs: None,
                    subquery,
                }),
                _ => None,
            },
            _ => None,
        },
        Expr::In {
            expr,
            target: InTarget::Subquery(subquery),
            negated,
            ..
        } => Some(FilterSubquery {
            negated: *negated,
            lhs: Some(expr),
            subquery,
        }),
        _ => None,
    }
}

/// The one FROM item of a plain `SELECT ... FROM <item> [WHERE ...]` that reads exactly one
/// occurrence linearly (a marker, or a subquery of that shape around one): what a dependent
/// filter or a NULL-padded outer-join side can read directly.
pub fn single_occurrence(select: &Select, catalog: &dyn Catalog) -> Option<usize> {
    if select.from.len() != 1
        || !select.from[0].joins.is_empty()
        || select.distinct.is_some()
        || is_grouped(select, catalog)
        || has_sublinks(&select.selection)
        || has_sublinks(&select.projection)
    {
        return None;
    }
    single_occurrence_factor(&select.from[0].relation, catalog)
}

/// The occurrence a FROM item reads, when it reads exactly one linearly.
pub fn single_occurrence_factor(factor: &TableFactor, catalog: &dyn Catalog) -> Option<usize> {
    if let Some((index, _)) = as_marker(factor) {
        return Some(index);
    }
    match factor {
        TableFactor::Derived { subquery, .. } if plain(subquery) => match subquery.body.as_ref() {
            SetExpr::Select(select) => single_occurrence(select, catalog),
            _ => None,
        },
        _ => None,
    }
}

/// A query with no ORDER BY, LIMIT, FETCH, locking or WITH around its body.
pub(super) fn plain(query: &Query) -> bool {
    query.with.is_none()
        && query.order_by.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && query.locks.is_empty()
}

/// Whether `select` can stay inline in a linear block: joins (inner) and filters over FROM items
/// that can stay inline too, no aggregates, DISTINCT or subqueries.
pub(super) fn inlinable_select(select: &Select, catalog: &dyn Catalog) -> bool {
    select.distinct.is_none()
        && !is_grouped(select, catalog)
        && !has_sublinks(&select.selection)
        && !has_sublinks(&select.projection)
        && select.from.iter().all(|table| {
            inlinable_factor(&table.relation, catalog)
                && table.joins.iter().all(|join| {
                    matches!(
                        join.join_operator,
                        JoinOperator::Join(JoinConstraint::On(_))
                            | JoinOperator::Inner(JoinConstraint::On(_))
                            | JoinOperator::CrossJoin(_)
                    ) && !has_sublinks(&join.join_operator)
                        && inlinable_factor(&join.relation, catalog)
                })
        })
}

pub(super) fn inlinable_factor(factor: &TableFactor, catalog: &dyn Catalog) -> bool {
    if as_marker(factor).is_some() {
        return true;
    }
    match factor {
        TableFactor::Derived { subquery, .. } => {
            plain(subquery)
                && matches!(subquery.body.as_ref(), SetExpr::Select(s) if inlinable_select(s, catalog))
        }
        // A parenthesized join of inner joins (views print their joins so).
        TableFactor::NestedJoin {
            table_with_joins,
            alias: None,
        } => {
            inlinable_factor(&table_with_joins.relation, catalog)
                && table_with_joins.joins.iter().all(|join| {
                    matches!(
                        join.join_operator,
                        JoinOperator::Join(JoinConstraint::On(_))
                            | JoinOperator::Inner(JoinConstraint::On(_))
                            | JoinOperator::CrossJoin(_)
                    ) && !has_sublinks(&join.join_operator)
                        && inlinable_factor(&join.relation, catalog)
                })
        }
        _ => false,
    }
}

/// Which side of each join is padded with NULLs (LEFT: the joined item; RIGHT: everything
/// before; FULL: both), as (relation of the TableWithJoins, join index) positions.
pub(super) fn nullable_positions(table: &TableWithJoins) -> (bool, Vec<bool>) {
    let mut first = false;
    let mut joins = vec![false; table.joins.len()];
    for (j, join) in table.joins.iter().enumerate() {
        match join.join_operator {
            JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => joins[j] = true,
            JoinOperator::Right(_) | JoinOperator::RightOuter(_) => {
                first = true;
                joins[..j].iter_mut().for_each(|n| *n = true);
            }
            JoinOperator::FullOuter(_) => {
                first = true;
                joins[..j].iter_mut().for_each(|n| *n = true);
                joins[j] = true;
            }
            _ => {}
        }
    }
    (first, joins)
}
