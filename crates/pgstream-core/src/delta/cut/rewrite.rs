//! AST rewrites the cutter uses: unwrapping, placeholders, column references, joins added,
//! grouped expressions over a groups stage (delta planning).

use super::*;

/// The subquery of `SELECT * FROM (subquery) alias` with nothing else around it.
pub(super) fn star_of_one_subquery(query: &Query) -> Option<Query> {
    if !plain(query) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let only_star = matches!(select.projection.as_slice(), [SelectItem::Wildcard(options)]
        if options.opt_exclude.is_none() && options.opt_except.is_none()
            && options.opt_replace.is_none() && options.opt_rename.is_none()
            && options.opt_ilike.is_none());
    if !only_star
        || select.selection.is_some()
        || select.having.is_some()
        || select.distinct.is_some()
        || !matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        || select.from.len() != 1
        || !select.from[0].joins.is_empty()
    {
        return None;
    }
    match &select.from[0].relation {
        TableFactor::Derived {
            subquery,
            alias,
            lateral: false,
            ..
        } if alias.as_ref().is_none_or(|a| a.columns.is_empty()) => Some((**subquery).clone()),
        _ => None,
    }
}

/// A VALUES body with no rows (a placeholder while a body is rebuilt).
pub(super) fn empty_values() -> sqlparser::ast::Values {
    sqlparser::ast::Values {
        explicit_row: false,
        value_keyword: false,
        rows: vec![],
    }
}

/// A query around a set-expression body.
pub(super) fn query_of_body(body: SetExpr) -> Query {
    let mut query = generated_query("SELECT 1");
    *query.body = body;
    query
}

/// Which subquery a placeholder of [`crate::delta::ast::take_subqueries`] stands for.
pub(super) fn placeholder(query: &Query) -> Option<usize> {
    match query.body.as_ref() {
        SetExpr::Select(select) => match select.projection.as_slice() {
            [SelectItem::ExprWithAlias { alias, .. }] => alias
                .value
                .strip_prefix("__pgs_taken_")?
                .strip_suffix("__")?
                .parse()
                .ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `node` holds an EXISTS or IN subquery.
pub(super) fn contains_filter_subquery<N: Visit>(node: &N) -> bool {
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Exists { .. }
                | Expr::In {
                    target: InTarget::Subquery(_),
                    ..
                } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    node.visit(&mut Find).is_break()
}

/// Column references in `node` (outside nested subqueries' own FROM scopes: a conservative
/// view that treats every reference the same).
pub(super) fn column_refs<N: Visit>(node: &N) -> Vec<Expr> {
    struct Refs(Vec<Expr>);
    impl Visitor for Refs {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                self.0.push(expr.clone());
            }
            ControlFlow::Continue(())
        }
    }
    let mut refs = Refs(vec![]);
    let _ = node.visit(&mut refs);
    refs.0
}

/// Whether `node` refers to a column of an outer query: one not found in `inner` but found in
/// `outer` (a name found in neither is taken as inner, e.g. a function's keyword argument).
pub(super) fn references_outside<N: Visit>(
    node: &N,
    inner: &[ScopeItem],
    outer: &[ScopeItem],
) -> bool {
    column_refs(node)
        .iter()
        .any(|r| scope::resolve(r, inner).is_none() && scope::resolve(r, outer).is_some())
}

/// Whether `node` refers to a column of `inner`.
pub(super) fn references_inside<N: Visit>(node: &N, inner: &[ScopeItem]) -> bool {
    column_refs(node)
        .iter()
        .any(|r| scope::resolve(r, inner).is_some())
}

/// `expr` with its references to `inner`'s columns replaced by `alias.__pgs_c<i>`, the
/// expressions `projected` collects (each once).
pub(super) fn rewrite_inner_refs(
    expr: Expr,
    inner: &[ScopeItem],
    alias: &str,
    projected: &mut Vec<Expr>,
) -> Expr {
    struct Rewrite<'a> {
        inner: &'a [ScopeItem],
        alias: &'a str,
        projected: &'a mut Vec<Expr>,
    }
    impl VisitorMut for Rewrite<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                && scope::resolve(expr, self.inner).is_some()
            {
                let index = match self.projected.iter().position(|p| p == expr) {
                    Some(i) => i,
                    None => {
                        self.projected.push(expr.clone());
                        self.projected.len() - 1
                    }
                };
                *expr = column_ref(self.alias, &format!("__pgs_c{index}"));
            }
            ControlFlow::Continue(())
        }
    }
    let mut expr = expr;
    let _ = VisitMut::visit(
        &mut expr,
        &mut Rewrite {
            inner,
            alias,
            projected,
        },
    );
    expr
}

/// Adds `factor` joined by `operator` to `select`'s FROM (comma-separated items become CROSS
/// JOINs first, so the new join's condition may refer to any of them).
pub(super) fn add_join(select: &mut Select, factor: TableFactor, operator: JoinOperator) {
    let mut items = std::mem::take(&mut select.from).into_iter();
    let mut first = items.next().unwrap_or_else(|| TableWithJoins {
        relation: derived(generated_query("SELECT"), Some(table_alias("__pgs_one"))),
        joins: vec![],
    });
    for other in items {
        first.joins.push(Join {
            relation: nest(other),
            global: false,
            join_operator: JoinOperator::CrossJoin(JoinConstraint::None),
        });
    }
    first.joins.push(Join {
        relation: factor,
        global: false,
        join_operator: operator,
    });
    select.from = vec![first];
}

/// A FROM item with joins as one factor (parenthesized join), or the relation alone.
pub(super) fn nest(table: TableWithJoins) -> TableFactor {
    if table.joins.is_empty() {
        table.relation
    } else {
        TableFactor::NestedJoin {
            table_with_joins: Box::new(table),
            alias: None,
        }
    }
}

/// What an aggregate expression gives over no rows: COUNT 0, every other aggregate NULL.
pub(super) fn empty_value(value: &Expr, catalog: &dyn Catalog) -> Expr {
    struct Empty<'a>(&'a dyn Catalog);
    impl VisitorMut for Empty<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if is_aggregate_call(expr, self.0) {
                let is_count = matches!(expr, Expr::Function(f)
                    if f.name.0.last().and_then(|p| p.as_ident()).map(folded).as_deref() == Some("count"));
                *expr = generated_expr(if is_count { "0" } else { "NULL" });
            }
            ControlFlow::Continue(())
        }
    }
    let mut out = value.clone();
    let _ = VisitMut::visit(&mut out, &mut Empty(catalog));
    out
}

/// `expr` (of a grouped SELECT's list or HAVING) over the groups stage: aggregate calls and
/// group keys become its columns.
pub(super) fn replace_grouped(expr: Expr, keys: &[Expr], aggregates: &[Expr], alias: &str) -> Expr {
    over_groups(&expr, keys, aggregates, alias, &|j| {
        column_ref(alias, &format!("__pgs_a{j}"))
    })
    .0
}

/// `expr` (of a grouped SELECT's list or HAVING) over a stage of its groups read as `alias`:
/// aggregate call `j` becomes `aggregate_as(j)`, group key `i` the column `__pgs_g<i>`; and
/// whether a column of the input is left (outside subqueries, whose aggregates and columns are
/// their own): one the SELECT groups by in a form not recognized.
pub(super) fn over_groups(
    expr: &Expr,
    keys: &[Expr],
    aggregates: &[Expr],
    alias: &str,
    aggregate_as: &dyn Fn(usize) -> Expr,
) -> (Expr, bool) {
    struct Replace<'a> {
        keys: &'a [Expr],
        aggregates: &'a [Expr],
        alias: &'a str,
        aggregate_as: &'a dyn Fn(usize) -> Expr,
        depth: usize,
        left_over: bool,
    }
    impl VisitorMut for Replace<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if self.depth > 0 {
                // A subquery's own aggregates and columns are its own.
            } else if let Some(j) = self.aggregates.iter().position(|a| a == expr) {
                *expr = (self.aggregate_as)(j);
            } else if let Some(i) = self.keys.iter().position(|k| k == expr) {
                *expr = column_ref(self.alias, &format!("__pgs_g{i}"));
            } else if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                && !expr.to_string().starts_with(&format!("{}.", self.alias))
                && !expr
                    .to_string()
                    .starts_with(&format!("\"{}\".", self.alias))
            {
                self.left_over = true;
            }
            ControlFlow::Continue(())
        }
    }
    let mut out = expr.clone();
    let mut replace = Replace {
        keys,
        aggregates,
        alias,
        aggregate_as,
        depth: 0,
        left_over: false,
    };
    let _ = VisitMut::visit(&mut out, &mut replace);
    (out, replace.left_over)
}
