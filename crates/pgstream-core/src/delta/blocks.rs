//! Splitting a SELECT into delta blocks: outer joins become an inner-join block plus anti-join
//! blocks, and EXISTS / NOT EXISTS / IN / NOT IN subqueries in WHERE become dependent filters
//! on the rows of the block (delta planning).

use super::expand::{is_padded, marker_index, null_marker};
use super::Unsupported;
use sqlparser::ast::{
    BinaryOperator, Expr, Ident, InTarget, JoinConstraint, JoinOperator, ObjectName, Query, Select,
    SelectItem, SetExpr, TableFactor, UnaryOperator,
};

/// At most this many outer joins per SELECT (each doubles the blocks).
const MAX_OUTER_JOINS: usize = 3;

/// What a dependent filter asks of the rows of its relation matching `cond`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterKind {
    Exists,
    NotExists,
    /// `lhs IN (SELECT item ...)`
    In {
        lhs: String,
        item: String,
    },
    /// `lhs NOT IN (SELECT item ...)`
    NotIn {
        lhs: String,
        item: String,
    },
}

/// A condition on a block's rows that reads one captured table (marker `relation`, under
/// `alias`), correlated by `cond`.
#[derive(Debug, Clone)]
pub struct Filter {
    pub relation: usize,
    pub alias: String,
    pub cond: Option<String>,
    pub kind: FilterKind,
}

/// One SELECT whose rows are a multilinear function of its FROM occurrences, restricted by
/// dependent filters.
#[derive(Debug, Clone)]
pub struct Block {
    pub select: Select,
    pub filters: Vec<Filter>,
}

fn conjuncts(expr: Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(*left, out);
            conjuncts(*right, out);
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
            conjuncts(*inner, out)
        }
        other => out.push(other),
    }
}

/// The one captured table a filter subquery reads, its alias and WHERE, if it is simple
/// enough: `SELECT ... FROM table [alias] [WHERE ...]`.
fn simple_subquery(query: &Query) -> Option<(usize, String, Option<String>, &Select)> {
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if select.from.len() != 1
        || !select.from[0].joins.is_empty()
        || select.distinct.is_some()
        || select.having.is_some()
        || !matches!(&select.group_by, sqlparser::ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
    {
        return None;
    }
    let TableFactor::Table { name, alias, .. } = &select.from[0].relation else {
        return None;
    };
    let index = marker_index(name)?;
    let alias = alias.as_ref()?.name.to_string();
    let cond = select.selection.as_ref().map(|c| c.to_string());
    Some((index, alias, cond, select))
}

fn single_item(select: &Select) -> Option<String> {
    match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => {
            Some(e.to_string())
        }
        _ => None,
    }
}

/// A WHERE conjunct as a dependent filter, when it is one.
fn as_filter(conjunct: &Expr) -> Option<Result<Filter, Unsupported>> {
    // (subquery, negated, the IN operand)
    let (subquery, negated, lhs): (&Query, bool, Option<String>) = match conjunct {
        Expr::Exists { subquery, negated } => (subquery, *negated, None),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => match expr.as_ref() {
            Expr::Exists { subquery, negated } => (subquery, !*negated, None),
            _ => return None,
        },
        Expr::In {
            expr,
            target: InTarget::Subquery(subquery),
            negated,
            ..
        } => (subquery, *negated, Some(expr.to_string())),
        _ => return None,
    };
    let construct = || {
        Unsupported(format!(
            "a subquery in WHERE that is not a plain SELECT from one table ({conjunct})"
        ))
    };
    let Some((relation, alias, cond, select)) = simple_subquery(subquery) else {
        return Some(Err(construct()));
    };
    let kind = match (lhs, negated) {
        (None, false) => FilterKind::Exists,
        (None, true) => FilterKind::NotExists,
        (Some(lhs), negated) => {
            let Some(item) = single_item(select) else {
                return Some(Err(construct()));
            };
            if negated {
                FilterKind::NotIn { lhs, item }
            } else {
                FilterKind::In { lhs, item }
            }
        }
    };
    if let Err(e) = super::shape::check_no_sublinks(&select.selection) {
        return Some(Err(e));
    }
    Some(Ok(Filter {
        relation,
        alias,
        cond,
        kind,
    }))
}

/// Splits `select` into blocks.
pub fn blocks(select: &Select) -> Result<Vec<Block>, Unsupported> {
    let mut plain = select.clone();
    let mut filters = Vec::new();
    if let Some(selection) = plain.selection.take() {
        let mut parts = Vec::new();
        conjuncts(selection, &mut parts);
        let mut kept = Vec::new();
        for part in parts {
            match as_filter(&part) {
                Some(filter) => filters.push(filter?),
                None => kept.push(part),
            }
        }
        plain.selection = kept.into_iter().reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        });
    }
    let mut out = Vec::new();
    split_outer_joins(
        Block {
            select: plain,
            filters,
        },
        0,
        &mut out,
    )?;
    Ok(out)
}

fn on_condition(constraint: &JoinConstraint, kind: &str) -> Result<Expr, Unsupported> {
    match constraint {
        JoinConstraint::On(cond) => Ok(cond.clone()),
        _ => Err(Unsupported(format!(
            "{kind} with USING or NATURAL (write ON instead)"
        ))),
    }
}

fn false_expr() -> Expr {
    Expr::Value(sqlparser::ast::Value::Boolean(false).into())
}

/// The relation of `factor` as a NULL-padded empty relation, and the filter "no row of it
/// matches `cond`".
fn pad_with_nulls(
    factor: &mut TableFactor,
    cond: &Expr,
    kind: &str,
) -> Result<Filter, Unsupported> {
    let TableFactor::Table { name, alias, .. } = factor else {
        return Err(Unsupported(format!(
            "{kind} of a subquery, view or CTE (join a table directly)"
        )));
    };
    let Some(index) = marker_index(name) else {
        return Err(Unsupported(format!("{kind} of {name}")));
    };
    let alias = alias
        .as_ref()
        .expect("expanded tables have an alias")
        .name
        .to_string();
    *name = ObjectName::from(vec![Ident::new(null_marker(index))]);
    Ok(Filter {
        relation: index,
        alias,
        cond: Some(cond.to_string()),
        kind: FilterKind::NotExists,
    })
}

fn split_outer_joins(block: Block, depth: usize, out: &mut Vec<Block>) -> Result<(), Unsupported> {
    let found = block.select.from.iter().enumerate().find_map(|(t, table)| {
        table
            .joins
            .iter()
            .enumerate()
            .position(|(j, join)| match join.join_operator {
                JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => !is_padded(&join.relation),
                JoinOperator::Right(_) | JoinOperator::RightOuter(_) => {
                    !(j == 0 && is_padded(&table.relation))
                }
                JoinOperator::FullOuter(_) => true,
                _ => false,
            })
            .map(|j| (t, j))
    });
    let Some((t, j)) = found else {
        out.push(block);
        return Ok(());
    };
    if depth >= MAX_OUTER_JOINS {
        return Err(Unsupported(format!(
            "more than {MAX_OUTER_JOINS} outer joins in one SELECT"
        )));
    }
    let operator = block.select.from[t].joins[j].join_operator.clone();
    let with_operator = |operator: JoinOperator| {
        let mut b = block.clone();
        b.select.from[t].joins[j].join_operator = operator;
        b
    };
    let full = matches!(operator, JoinOperator::FullOuter(_));
    match operator {
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => {
            let cond = on_condition(&c, "LEFT JOIN")?;
            split_outer_joins(
                with_operator(JoinOperator::Inner(JoinConstraint::On(cond.clone()))),
                depth + 1,
                out,
            )?;
            let mut anti = with_operator(JoinOperator::Left(JoinConstraint::On(false_expr())));
            let filter = pad_with_nulls(
                &mut anti.select.from[t].joins[j].relation,
                &cond,
                "LEFT JOIN",
            )?;
            anti.filters.push(filter);
            split_outer_joins(anti, depth + 1, out)
        }
        JoinOperator::Right(c) | JoinOperator::RightOuter(c) | JoinOperator::FullOuter(c) => {
            let kind = if full { "FULL JOIN" } else { "RIGHT JOIN" };
            if j != 0 {
                return Err(Unsupported(format!(
                    "{kind} after another join (put it first)"
                )));
            }
            let cond = on_condition(&c, kind)?;
            split_outer_joins(
                with_operator(JoinOperator::Inner(JoinConstraint::On(cond.clone()))),
                depth + 1,
                out,
            )?;
            // Right side kept: the left table padded with NULLs.
            let mut right_anti =
                with_operator(JoinOperator::Right(JoinConstraint::On(false_expr())));
            let filter = pad_with_nulls(&mut right_anti.select.from[t].relation, &cond, kind)?;
            right_anti.filters.push(filter);
            split_outer_joins(right_anti, depth + 1, out)?;
            if full {
                let mut left_anti =
                    with_operator(JoinOperator::Left(JoinConstraint::On(false_expr())));
                let filter =
                    pad_with_nulls(&mut left_anti.select.from[t].joins[j].relation, &cond, kind)?;
                left_anti.filters.push(filter);
                split_outer_joins(left_anti, depth + 1, out)?;
            }
            Ok(())
        }
        _ => unreachable!("only outer joins are split"),
    }
}
