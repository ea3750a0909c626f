//! Building and rewriting the SQL AST (sqlparser, PostgreSQL dialect): parsing our own
//! skeletons, structural substitution of occurrence markers and holes, and small constructors.
//! Nothing here rewrites SQL text: a user's string literal is never touched.

use super::ir::marker_index;
use super::ir::Unsupported;
use sqlparser::ast::{
    BinaryOperator, Expr, Ident, LimitClause, ObjectName, Query, Select, SelectItem, SetExpr,
    Statement, TableAlias, TableFactor, TableWithJoins, UnaryOperator, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// Whether `query` keeps no rows: `LIMIT 0` or `FETCH FIRST 0 ROWS`.
pub fn limits_to_no_rows(query: &Query) -> bool {
    let zero = |e: &Expr| matches!(e, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n.parse::<f64>() == Ok(0.0)));
    let limit_zero = matches!(&query.limit_clause,
        Some(LimitClause::LimitOffset { limit: Some(limit), .. }) if zero(limit));
    let fetch_zero = query
        .fetch
        .as_ref()
        .is_some_and(|f| !f.percent && f.quantity.as_ref().is_some_and(zero));
    limit_zero || fetch_zero
}

/// Parses `sql` as exactly one query.
pub fn parse_query(sql: &str) -> Result<Query, Unsupported> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| Unsupported::new(format!("syntax the delta planner cannot parse ({e})")))?;
    match statements.as_slice() {
        [Statement::Query(query)] => Ok(*query.clone()),
        _ => Err(Unsupported::new("a statement that is not one SELECT")),
    }
}

/// Parses SQL the planner generated itself (a failure is a planner bug).
pub fn generated_query(sql: &str) -> Query {
    parse_query(sql).unwrap_or_else(|e| panic!("generated query does not parse: {e}\n{sql}"))
}

/// Parses an expression the planner generated itself.
pub fn generated_expr(sql: &str) -> Expr {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .unwrap_or_else(|e| panic!("generated expression does not parse: {e}\n{sql}"))
}

/// The SELECT of a generated `SELECT ... FROM ...` query.
pub fn generated_select(sql: &str) -> Select {
    match *generated_query(sql).body {
        SetExpr::Select(select) => *select,
        other => panic!("generated query is not a SELECT: {other}"),
    }
}

/// A name part as PostgreSQL folds it: unquoted identifiers in lower case.
pub fn folded(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// A quoted identifier.
pub fn ident(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

/// `alias` as a table alias (quoted, no column list).
pub fn table_alias(alias: &str) -> TableAlias {
    TableAlias {
        explicit: true,
        name: ident(alias),
        columns: vec![],
        at: None,
    }
}

/// A FROM item naming relation `name` (SQL of a possibly qualified, quoted name).
pub fn named_factor(name: &str, alias: Option<TableAlias>) -> TableFactor {
    let select = generated_select(&format!("SELECT 1 FROM {name}"));
    let mut factor = select
        .from
        .into_iter()
        .next()
        .expect("one FROM item")
        .relation;
    if let TableFactor::Table { alias: slot, .. } = &mut factor {
        *slot = alias;
    }
    factor
}

/// The FROM item of occurrence `index` under `alias`.
pub fn marker_factor(index: usize, alias: Option<TableAlias>) -> TableFactor {
    named_factor(&super::ir::occurrence_marker(index), alias)
}

/// A derived table (subquery in FROM).
pub fn derived(query: Query, alias: Option<TableAlias>) -> TableFactor {
    TableFactor::Derived {
        lateral: false,
        subquery: Box::new(query),
        alias,
        sample: None,
    }
}

/// The occurrence index and alias of a FROM item that is an occurrence marker.
pub fn as_marker(factor: &TableFactor) -> Option<(usize, Option<&TableAlias>)> {
    match factor {
        TableFactor::Table { name, alias, .. } => single_name(name)
            .and_then(|n| marker_index(&n))
            .map(|i| (i, alias.as_ref())),
        _ => None,
    }
}

/// The one part of an unqualified, unquoted name.
fn single_name(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .filter(|i| i.quote_style.is_none())
            .map(|i| i.value.clone()),
        _ => None,
    }
}

/// Replaces every occurrence marker in `node` by what `replace(index, alias)` returns.
pub fn replace_occurrences<N: VisitMut>(
    node: &mut N,
    replace: &mut dyn FnMut(usize, Option<TableAlias>) -> TableFactor,
) {
    struct Replacer<'a>(&'a mut dyn FnMut(usize, Option<TableAlias>) -> TableFactor);
    impl VisitorMut for Replacer<'_> {
        type Break = ();
        fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            if let Some((index, alias)) = as_marker(factor) {
                let alias = alias.cloned();
                *factor = (self.0)(index, alias);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = node.visit(&mut Replacer(replace));
}

/// Occurrence indexes of the markers in `node`, in visiting order.
pub fn occurrences_in<N: sqlparser::ast::Visit>(node: &N) -> Vec<usize> {
    struct Collect(Vec<usize>);
    impl sqlparser::ast::Visitor for Collect {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let Some((index, _)) = as_marker(factor) {
                self.0.push(index);
            }
            ControlFlow::Continue(())
        }
    }
    let mut collect = Collect(Vec::new());
    let _ = node.visit(&mut collect);
    collect.0
}

/// Fills the holes of a generated skeleton: every identifier `hole` (an unquoted name of the
/// planner's own, `__pgs_hole_<n>__`) becomes the expression given for it. Replaced after the
/// skeleton's own nodes were visited, so an expression put in is never looked into again.
pub fn fill_holes<N: VisitMut>(node: &mut N, holes: &[(&str, &Expr)]) {
    struct Filler<'a>(&'a [(&'a str, &'a Expr)]);
    impl VisitorMut for Filler<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Expr::Identifier(i) = expr {
                if i.quote_style.is_none() {
                    if let Some((_, value)) = self.0.iter().find(|(hole, _)| *hole == i.value) {
                        *expr = Expr::Nested(Box::new((*value).clone()));
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = node.visit(&mut Filler(holes));
}

/// The name of hole `n` in a skeleton.
pub fn hole(n: usize) -> String {
    format!("__pgs_hole_{n}__")
}

/// Builds an expression from a skeleton with holes `__pgs_hole_0__`, `__pgs_hole_1__`, ...
pub fn expr_with(skeleton: &str, parts: &[&Expr]) -> Expr {
    let mut expr = generated_expr(skeleton);
    let names: Vec<String> = (0..parts.len()).map(hole).collect();
    let holes: Vec<(&str, &Expr)> = names
        .iter()
        .map(|n| n.as_str())
        .zip(parts.iter().copied())
        .collect();
    fill_holes(&mut expr, &holes);
    expr
}

/// The subqueries directly in `node` (EXISTS, IN, scalar, ANY / ALL; not those nested in them),
/// taken out and replaced by numbered placeholders, to be worked on and put back with
/// [`restore_subqueries`].
pub fn take_subqueries<N: VisitMut>(node: &mut N) -> Vec<Query> {
    struct Take {
        depth: usize,
        taken: Vec<Query>,
    }
    impl VisitorMut for Take {
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
            if self.depth == 0 {
                if let Some(subquery) = subquery_of(expr) {
                    let placeholder =
                        generated_query(&format!("SELECT 1 AS __pgs_taken_{}__", self.taken.len()));
                    self.taken.push(std::mem::replace(subquery, placeholder));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut take = Take {
        depth: 0,
        taken: Vec::new(),
    };
    let _ = node.visit(&mut take);
    take.taken
}

/// The subquery an expression carries (EXISTS, IN, scalar, ANY / ALL).
pub fn subquery_of(expr: &mut Expr) -> Option<&mut Query> {
    match expr {
        Expr::Exists { subquery, .. }
        | Expr::Subquery(subquery)
        | Expr::In {
            target: sqlparser::ast::InTarget::Subquery(subquery),
            ..
        } => Some(subquery.as_mut()),
        Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } => match right.as_mut() {
            Expr::Subquery(subquery) => Some(subquery.as_mut()),
            _ => None,
        },
        _ => None,
    }
}

/// Which taken subquery a placeholder stands for.
fn placeholder_index(query: &Query) -> Option<usize> {
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

/// Puts back the subqueries [`take_subqueries`] took out of `node`.
pub fn restore_subqueries<N: VisitMut>(node: &mut N, taken: Vec<Query>) {
    struct Restore(Vec<Option<Query>>);
    impl VisitorMut for Restore {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Some(subquery) = subquery_of(expr) {
                if let Some(index) = placeholder_index(subquery) {
                    if let Some(original) = self.0.get_mut(index).and_then(Option::take) {
                        *subquery = original;
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = node.visit(&mut Restore(taken.into_iter().map(Some).collect()));
}

/// `a AND b`.
pub fn and(a: Expr, b: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(nested(a)),
        op: BinaryOperator::And,
        right: Box::new(nested(b)),
    }
}

/// Every condition joined by AND (None when there are none).
pub fn and_all(parts: impl IntoIterator<Item = Expr>) -> Option<Expr> {
    parts.into_iter().reduce(and)
}

/// `a OR b`.
pub fn or(a: Expr, b: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(nested(a)),
        op: BinaryOperator::Or,
        right: Box::new(nested(b)),
    }
}

/// `NOT e`.
pub fn not(e: Expr) -> Expr {
    Expr::UnaryOp {
        op: UnaryOperator::Not,
        expr: Box::new(nested(e)),
    }
}

/// `e` in parentheses unless it is atomic.
pub fn nested(e: Expr) -> Expr {
    match e {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Value(_)
        | Expr::Nested(_)
        | Expr::Function(_)
        | Expr::Exists { .. }
        | Expr::Subquery(_) => e,
        other => Expr::Nested(Box::new(other)),
    }
}

/// Adds `extra` to `select`'s WHERE (ANDed with what is there).
pub fn restrict(select: &mut Select, extra: Expr) {
    select.selection = Some(match select.selection.take() {
        Some(original) => and(original, extra),
        None => extra,
    });
}

/// A select item `expr AS alias`.
pub fn item(expr: Expr, alias: &str) -> SelectItem {
    SelectItem::ExprWithAlias {
        expr,
        alias: ident(alias),
    }
}

/// A query whose body is `select`.
pub fn query_of(select: Select) -> Query {
    let mut query = generated_query("SELECT 1");
    *query.body = SetExpr::Select(Box::new(select));
    query
}

/// `SELECT <projection> FROM <factor>` with an optional WHERE, built around a skeleton.
pub fn select_from(
    projection: Vec<SelectItem>,
    factor: TableFactor,
    selection: Option<Expr>,
) -> Select {
    let mut select = generated_select("SELECT 1 FROM __pgs_from__");
    select.projection = projection;
    select.from = vec![TableWithJoins {
        relation: factor,
        joins: vec![],
    }];
    select.selection = selection;
    select
}

/// `*` as a select item.
pub fn wildcard() -> SelectItem {
    generated_select("SELECT *").projection.remove(0)
}

/// `expr` without the parentheses around it.
pub fn unparenthesized(mut expr: &Expr) -> &Expr {
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    expr
}

/// Gives a FROM item the alias `alias` (keeping a column list it had).
pub fn realias(factor: &mut TableFactor, alias: &str) {
    match factor {
        TableFactor::Table { alias: a, .. } | TableFactor::Derived { alias: a, .. } => {
            let columns = a.as_ref().map(|a| a.columns.clone()).unwrap_or_default();
            let mut new = table_alias(alias);
            new.columns = columns;
            *a = Some(new);
        }
        _ => {}
    }
}

/// A column reference `alias.column` (both quoted).
pub fn column_ref(alias: &str, column: &str) -> Expr {
    Expr::CompoundIdentifier(vec![ident(alias), ident(column)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_replaced_in_from_items_only() {
        let mut query = parse_query(
            "SELECT '__pgs_occ_0__' AS s, x FROM __pgs_occ_0__ AS t \
             WHERE EXISTS (SELECT 1 FROM __pgs_occ_1__ u WHERE u.y = t.x)",
        )
        .unwrap();
        assert_eq!(occurrences_in(&query), vec![0, 1]);
        replace_occurrences(&mut query, &mut |i, alias| {
            named_factor(&format!("public.\"tab_{i}\""), alias)
        });
        assert_eq!(
            query.to_string(),
            "SELECT '__pgs_occ_0__' AS s, x FROM public.\"tab_0\" AS t \
             WHERE EXISTS (SELECT 1 FROM public.\"tab_1\" u WHERE u.y = t.x)"
        );
    }

    #[test]
    fn holes_take_expressions_and_quoted_names_are_not_holes() {
        let user = generated_expr("a + '__pgs_hole_1__' = \"__pgs_hole_1__\"");
        let other = generated_expr("b > 2");
        let filled = expr_with("__pgs_hole_0__ AND NOT __pgs_hole_1__", &[&user, &other]);
        assert_eq!(
            filled.to_string(),
            "(a + '__pgs_hole_1__' = \"__pgs_hole_1__\") AND NOT (b > 2)"
        );
    }
}
