//! Which constructs a defining query uses, and whether it is linear or keyed (delta planning).

use super::blocks::{self, Block};
use super::expand::is_padded;
use super::{Catalog, Unsupported};
use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, InTarget, JoinOperator, Query, Select, SelectItem, SetExpr,
    SetOperator, SetQuantifier, TableFactor, TableWithJoins, Value, Visit, Visitor,
};
use std::ops::ControlFlow;

/// The planning-relevant form of an (expanded) query.
#[derive(Debug, Clone)]
pub enum Classified {
    /// A UNION ALL of linear blocks (one SELECT may be several: outer joins split).
    Linear { blocks: Vec<Block> },
    /// One SELECT with GROUP BY `keys` and/or aggregates (`keys` empty: one result row), whose
    /// input (FROM and WHERE) is `blocks`.
    Grouped {
        select: Box<Select>,
        keys: Vec<Expr>,
        blocks: Vec<Block>,
    },
    /// DISTINCT over a UNION ALL of linear blocks (SELECT DISTINCT, or UNION).
    Distinct { blocks: Vec<Block> },
}

struct ConstructCheck;

impl Visitor for ConstructCheck {
    type Break = Unsupported;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Unsupported> {
        if query.limit_clause.is_some() {
            return ControlFlow::Break(Unsupported("LIMIT / OFFSET".into()));
        }
        if query.fetch.is_some() {
            return ControlFlow::Break(Unsupported("FETCH FIRST".into()));
        }
        if !query.locks.is_empty() {
            return ControlFlow::Break(Unsupported("FOR UPDATE / FOR SHARE".into()));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Unsupported> {
        if matches!(select.distinct, Some(Distinct::On(_))) {
            return ControlFlow::Break(Unsupported("DISTINCT ON".into()));
        }
        if !select.named_window.is_empty() {
            return ControlFlow::Break(Unsupported("WINDOW clause (window functions)".into()));
        }
        match &select.group_by {
            GroupByExpr::All(_) => return ControlFlow::Break(Unsupported("GROUP BY ALL".into())),
            GroupByExpr::Expressions(exprs, modifiers) => {
                let grouping_sets = exprs
                    .iter()
                    .any(|e| matches!(e, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)));
                if grouping_sets || !modifiers.is_empty() {
                    return ControlFlow::Break(Unsupported("GROUPING SETS / ROLLUP / CUBE".into()));
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Unsupported> {
        if let TableFactor::Table {
            args: Some(_),
            name,
            ..
        } = factor
        {
            return ControlFlow::Break(Unsupported(format!("function {name}() in FROM")));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Unsupported> {
        if let Expr::Function(f) = expr {
            if f.over.is_some() {
                return ControlFlow::Break(Unsupported(format!("window function {}()", f.name)));
            }
        }
        ControlFlow::Continue(())
    }
}

/// Finds subqueries in expressions (those not turned into dependent filters).
struct SublinkCheck;

impl Visitor for SublinkCheck {
    type Break = Unsupported;

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Unsupported> {
        let construct = match expr {
            Expr::Exists { negated: false, .. } => "EXISTS (subquery)",
            Expr::Exists { negated: true, .. } => "NOT EXISTS (subquery)",
            Expr::In {
                target: InTarget::Subquery(_),
                negated: false,
                ..
            } => "IN (subquery)",
            Expr::In {
                target: InTarget::Subquery(_),
                negated: true,
                ..
            } => "NOT IN (subquery)",
            Expr::Subquery(_) => "scalar subquery",
            Expr::AnyOp { right, .. } | Expr::AllOp { right, .. }
                if matches!(right.as_ref(), Expr::Subquery(_)) =>
            {
                "ANY / ALL (subquery)"
            }
            _ => return ControlFlow::Continue(()),
        };
        ControlFlow::Break(Unsupported(format!(
            "{construct} outside a top-level AND condition of WHERE"
        )))
    }
}

/// Refuses subqueries in expressions of `node`.
pub fn check_no_sublinks<V: Visit>(node: &V) -> Result<(), Unsupported> {
    match node.visit(&mut SublinkCheck) {
        ControlFlow::Break(unsupported) => Err(unsupported),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Refuses constructs no delta can be computed for (yet), naming the first one found.
pub fn check_constructs(query: &Query) -> Result<(), Unsupported> {
    match query.visit(&mut ConstructCheck) {
        ControlFlow::Break(unsupported) => Err(unsupported),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Whether `select`'s list or HAVING calls an aggregate (outside window functions).
fn has_aggregates(select: &Select, catalog: &dyn Catalog) -> bool {
    let mut found = false;
    let mut look = |expr: &Expr| {
        if let Expr::Function(f) = expr {
            let name = f.name.0.last().map(|p| p.to_string()).unwrap_or_default();
            let name = name.trim_matches('"').to_lowercase();
            if f.over.is_none() && catalog.is_aggregate(&name) {
                found = true;
            }
        }
        ControlFlow::<()>::Continue(())
    };
    let _ = sqlparser::ast::visit_expressions(&select.projection, &mut look);
    let _ = sqlparser::ast::visit_expressions(&select.having, &mut look);
    found
}

fn group_by_exprs(select: &Select) -> &[Expr] {
    match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs,
        GroupByExpr::All(_) => &[],
    }
}

/// Whether `select` aggregates: GROUP BY, HAVING or an aggregate call.
pub fn is_grouped(select: &Select, catalog: &dyn Catalog) -> bool {
    !group_by_exprs(select).is_empty() || select.having.is_some() || has_aggregates(select, catalog)
}

fn is_distinct(select: &Select) -> bool {
    matches!(select.distinct, Some(Distinct::Distinct))
}

/// Checks that a subquery's `select` is linear: no aggregation, DISTINCT or outer join in it.
fn require_linear_select(select: &Select, catalog: &dyn Catalog) -> Result<(), Unsupported> {
    if is_distinct(select) {
        return Err(Unsupported("DISTINCT inside a subquery in FROM".into()));
    }
    if is_grouped(select, catalog) {
        return Err(Unsupported(
            "GROUP BY or aggregates in a subquery or CTE that reads more than one table (make it \
             a stream table of its own and read that)"
                .into(),
        ));
    }
    check_no_sublinks(&select.selection)?;
    for table in &select.from {
        require_linear_from(table, catalog)?;
    }
    Ok(())
}

fn require_linear_from(table: &TableWithJoins, catalog: &dyn Catalog) -> Result<(), Unsupported> {
    require_linear_factor(&table.relation, catalog)?;
    for (j, join) in table.joins.iter().enumerate() {
        let kind = match &join.join_operator {
            JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_) => None,
            // The NULL-padded side of an anti-join block.
            JoinOperator::Left(_) if is_padded(&join.relation) => None,
            JoinOperator::Right(_) if j == 0 && is_padded(&table.relation) => None,
            JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => Some("LEFT JOIN"),
            JoinOperator::Right(_) | JoinOperator::RightOuter(_) => Some("RIGHT JOIN"),
            JoinOperator::FullOuter(_) => Some("FULL JOIN"),
            _ => Some("this kind of join"),
        };
        if let Some(kind) = kind {
            return Err(Unsupported(kind.into()));
        }
        require_linear_factor(&join.relation, catalog)?;
    }
    Ok(())
}

fn require_linear_factor(factor: &TableFactor, catalog: &dyn Catalog) -> Result<(), Unsupported> {
    match factor {
        TableFactor::Table { .. } => Ok(()),
        TableFactor::Derived { subquery, .. } => {
            require_linear_body(&subquery.body, catalog, false)
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => require_linear_from(table_with_joins, catalog),
        other => Err(Unsupported(format!("FROM item {other}"))),
    }
}

/// A subquery body in FROM: a linear SELECT or VALUES (`union_allowed` at the top level).
fn require_linear_body(
    body: &SetExpr,
    catalog: &dyn Catalog,
    union_allowed: bool,
) -> Result<(), Unsupported> {
    match body {
        SetExpr::Select(select) => require_linear_select(select, catalog),
        SetExpr::Query(query) => require_linear_body(&query.body, catalog, union_allowed),
        SetExpr::Values(_) => Ok(()),
        SetExpr::SetOperation { .. } if !union_allowed => Err(Unsupported(
            "UNION / INTERSECT / EXCEPT inside a subquery in FROM".into(),
        )),
        other => Err(Unsupported(format!("query body {other}"))),
    }
}

/// The leaves of a tree of set operations, with each operation's kind.
fn set_leaves<'a>(
    body: &'a SetExpr,
    leaves: &mut Vec<&'a SetExpr>,
    ops: &mut Vec<(SetOperator, SetQuantifier)>,
) {
    match body {
        SetExpr::SetOperation {
            left,
            op,
            set_quantifier,
            right,
        } => {
            ops.push((*op, *set_quantifier));
            set_leaves(left, leaves, ops);
            set_leaves(right, leaves, ops);
        }
        SetExpr::Query(query) if query.order_by.is_none() => set_leaves(&query.body, leaves, ops),
        other => leaves.push(other),
    }
}

fn is_union_all(op: &(SetOperator, SetQuantifier)) -> bool {
    op.0 == SetOperator::Union && op.1 == SetQuantifier::All
}

fn is_union_distinct(op: &(SetOperator, SetQuantifier)) -> bool {
    op.0 == SetOperator::Union && matches!(op.1, SetQuantifier::Distinct | SetQuantifier::None)
}

/// The GROUP BY keys of `select`, positional references resolved to the select list.
pub fn group_keys(select: &Select) -> Result<Vec<Expr>, Unsupported> {
    let aliases: Vec<(String, &Expr)> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias } => Some((super::expand::folded(alias), expr)),
            _ => None,
        })
        .collect();
    group_by_exprs(select)
        .iter()
        .map(|key| match key {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => {
                    let position: usize = n
                        .parse()
                        .map_err(|_| Unsupported(format!("GROUP BY {n}")))?;
                    match select.projection.get(position.wrapping_sub(1)) {
                        Some(SelectItem::UnnamedExpr(expr)) => Ok(expr.clone()),
                        Some(SelectItem::ExprWithAlias { expr, .. }) => Ok(expr.clone()),
                        _ => Err(Unsupported(format!("GROUP BY {n}"))),
                    }
                }
                _ => Ok(key.clone()),
            },
            Expr::Identifier(ident) => {
                let name = super::expand::folded(ident);
                match aliases.iter().find(|(alias, _)| *alias == name) {
                    Some((_, expr)) if **expr != *key => Err(Unsupported(format!(
                        "GROUP BY the output column name {ident} (group by the expression instead)"
                    ))),
                    _ => Ok(key.clone()),
                }
            }
            _ => Ok(key.clone()),
        })
        .collect()
}

/// The blocks of a linear leaf: a SELECT (split at outer joins, subqueries in WHERE as
/// filters) or VALUES (a constant: no blocks).
fn leaf_blocks(leaf: &SetExpr, catalog: &dyn Catalog) -> Result<Vec<Block>, Unsupported> {
    match leaf {
        SetExpr::Select(select) => {
            if is_distinct(select) {
                return Err(Unsupported("DISTINCT inside a UNION ALL branch".into()));
            }
            if is_grouped(select, catalog) {
                return Err(Unsupported(
                    "GROUP BY or aggregates inside a UNION branch (make it a stream table of its \
                     own and read that)"
                        .into(),
                ));
            }
            input_blocks(select, catalog)
        }
        SetExpr::Query(query) if query.order_by.is_none() => leaf_blocks(&query.body, catalog),
        SetExpr::Values(_) => Ok(vec![]),
        SetExpr::SetOperation { .. } => Err(Unsupported(
            "UNION / INTERSECT / EXCEPT nested in another set operation".into(),
        )),
        other => Err(Unsupported(format!("query body {other}"))),
    }
}

/// The blocks of `select`'s FROM and WHERE, each checked to be linear.
fn input_blocks(select: &Select, catalog: &dyn Catalog) -> Result<Vec<Block>, Unsupported> {
    let blocks = blocks::blocks(select)?;
    for block in &blocks {
        for table in &block.select.from {
            require_linear_from(table, catalog)?;
        }
        check_no_sublinks(&block.select.selection)?;
        check_no_sublinks(&block.select.projection)?;
        check_no_sublinks(&block.select.from)?;
    }
    Ok(blocks)
}

/// Classifies an expanded query, refusing shapes no delta is computed for.
pub fn classify(query: &Query, catalog: &dyn Catalog) -> Result<Classified, Unsupported> {
    let body = match query.body.as_ref() {
        SetExpr::Query(inner) if inner.order_by.is_none() => inner.body.as_ref(),
        other => other,
    };
    match body {
        SetExpr::Select(select) => {
            if is_grouped(select, catalog) {
                if is_distinct(select) {
                    return Err(Unsupported(
                        "DISTINCT together with GROUP BY or aggregates".into(),
                    ));
                }
                check_no_sublinks(&select.projection)?;
                check_no_sublinks(&select.having)?;
                let keys = group_keys(select)?;
                let blocks = input_blocks(select, catalog)?;
                Ok(Classified::Grouped {
                    select: select.clone(),
                    keys,
                    blocks,
                })
            } else if is_distinct(select) {
                let mut plain = select.as_ref().clone();
                plain.distinct = None;
                Ok(Classified::Distinct {
                    blocks: input_blocks(&plain, catalog)?,
                })
            } else {
                Ok(Classified::Linear {
                    blocks: input_blocks(select, catalog)?,
                })
            }
        }
        SetExpr::SetOperation { .. } => {
            let mut leaves = Vec::new();
            let mut ops = Vec::new();
            set_leaves(body, &mut leaves, &mut ops);
            if let Some(op) = ops.iter().find(|op| op.0 != SetOperator::Union) {
                return Err(Unsupported(format!("{}", op.0)));
            }
            let mut all = Vec::new();
            for leaf in &leaves {
                all.extend(leaf_blocks(leaf, catalog)?);
            }
            if ops.iter().all(is_union_all) {
                Ok(Classified::Linear { blocks: all })
            } else if is_union_distinct(&ops[0]) {
                Ok(Classified::Distinct { blocks: all })
            } else {
                Err(Unsupported(
                    "UNION ALL over a UNION (mixed set operations)".into(),
                ))
            }
        }
        SetExpr::Values(_) => Ok(Classified::Linear { blocks: vec![] }),
        other => Err(Unsupported(format!("query body {other}"))),
    }
}
