//! Splitting a stage's SELECT into delta blocks: outer joins become an inner-join block plus
//! anti-join blocks (the other side padded with NULLs), and EXISTS / NOT EXISTS / IN / NOT IN
//! subqueries in WHERE become dependent filters on the block's rows (delta planning).

use super::ast::{and_all, folded, generated_expr, named_factor};
use super::cut::{as_filter_subquery, conjuncts, single_occurrence, single_occurrence_factor};
use super::ir::null_marker;
use super::ir::{Catalog, Unsupported};
use sqlparser::ast::{
    Expr, JoinConstraint, JoinOperator, Select, SelectItem, SetExpr, TableAlias, TableFactor,
};

/// At most this many outer joins per SELECT (each doubles the blocks).
const MAX_OUTER_JOINS: usize = 4;

/// What a dependent filter asks of the rows of its relation matching `cond`.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterKind {
    Exists,
    NotExists,
    /// `lhs IN (SELECT item ...)`
    In {
        lhs: Expr,
        item: Expr,
    },
    /// `lhs NOT IN (SELECT item ...)`
    NotIn {
        lhs: Expr,
        item: Expr,
    },
}

/// A condition on a block's rows that reads one occurrence through `relation` (the occurrence's
/// marker, or a subquery over it alone, under `alias`), correlated by `cond`.
#[derive(Debug, Clone)]
pub struct Filter {
    pub occurrence: usize,
    pub relation: TableFactor,
    pub alias: String,
    pub cond: Option<Expr>,
    pub kind: FilterKind,
}

/// One SELECT whose rows are a multilinear function of its FROM occurrences, restricted by
/// dependent filters; `padded[i]` is the relation NULL-padding marker `i` stands for.
#[derive(Debug, Clone)]
pub struct Block {
    pub select: Select,
    pub filters: Vec<Filter>,
    pub padded: Vec<TableFactor>,
}

impl Filter {
    /// The columns of the filter's relation it compares for equality with something else (its
    /// correlation, the IN item): what an index on its change rows would serve, since every
    /// outer row looks them up.
    pub fn equality_columns(&self) -> Vec<String> {
        let own = |e: &Expr| match e {
            Expr::Identifier(c) => Some(folded(c)),
            Expr::CompoundIdentifier(parts)
                if parts.len() == 2 && folded(&parts[0]) == self.alias =>
            {
                Some(folded(&parts[1]))
            }
            Expr::Nested(inner) => match inner.as_ref() {
                Expr::Identifier(c) => Some(folded(c)),
                _ => None,
            },
            _ => None,
        };
        let mut columns: Vec<String> = Vec::new();
        if let Some(cond) = &self.cond {
            for part in conjuncts(cond.clone()) {
                if let Expr::BinaryOp {
                    left,
                    op: sqlparser::ast::BinaryOperator::Eq,
                    right,
                } = super::ast::unparenthesized(&part)
                {
                    columns.extend(own(left));
                    columns.extend(own(right));
                }
            }
        }
        if let FilterKind::In { item, .. } | FilterKind::NotIn { item, .. } = &self.kind {
            columns.extend(own(item));
        }
        columns.sort();
        columns.dedup();
        columns
    }
}

fn single_item(select: &Select) -> Option<Expr> {
    match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => {
            Some(e.clone())
        }
        _ => None,
    }
}

fn alias_name(alias: Option<&TableAlias>) -> Option<String> {
    alias.map(|a| folded(&a.name))
}

/// A WHERE conjunct as a dependent filter, when it is one.
fn as_filter(conjunct: &Expr, catalog: &dyn Catalog) -> Option<Result<Filter, Unsupported>> {
    let subquery = as_filter_subquery(conjunct)?;
    let refused = || {
        Unsupported::new(format!(
            "a subquery in WHERE that reads more than one relation here ({conjunct})"
        ))
    };
    let SetExpr::Select(select) = subquery.subquery.body.as_ref() else {
        return Some(Err(refused()));
    };
    let Some(occurrence) = single_occurrence(select, catalog) else {
        return Some(Err(refused()));
    };
    let relation = select.from[0].relation.clone();
    let alias = match &relation {
        TableFactor::Table { alias, .. } | TableFactor::Derived { alias, .. } => {
            alias_name(alias.as_ref())
        }
        _ => None,
    };
    let Some(alias) = alias else {
        return Some(Err(Unsupported::new(format!(
            "a subquery in WHERE whose relation has no name ({conjunct})"
        ))));
    };
    let kind = match (subquery.lhs, subquery.negated) {
        (None, false) => FilterKind::Exists,
        (None, true) => FilterKind::NotExists,
        (Some(lhs), negated) => {
            let Some(item) = single_item(select) else {
                return Some(Err(refused()));
            };
            if negated {
                FilterKind::NotIn {
                    lhs: lhs.clone(),
                    item,
                }
            } else {
                FilterKind::In {
                    lhs: lhs.clone(),
                    item,
                }
            }
        }
    };
    Some(Ok(Filter {
        occurrence,
        relation,
        alias,
        cond: select.selection.clone(),
        kind,
    }))
}

/// Splits `select` into blocks.
pub fn blocks(select: &Select, catalog: &dyn Catalog) -> Result<Vec<Block>, Unsupported> {
    let mut plain = select.clone();
    let mut filters = Vec::new();
    if let Some(selection) = plain.selection.take() {
        let mut kept = Vec::new();
        for part in conjuncts(selection) {
            match as_filter(&part, catalog) {
                Some(filter) => filters.push(filter?),
                None => kept.push(part),
            }
        }
        plain.selection = and_all(kept);
    }
    let mut out = Vec::new();
    split_outer_joins(
        Block {
            select: plain,
            filters,
            padded: vec![],
        },
        0,
        catalog,
        &mut out,
    )?;
    Ok(out)
}

fn on_condition(constraint: &JoinConstraint, kind: &str) -> Result<Expr, Unsupported> {
    match constraint {
        JoinConstraint::On(cond) => Ok(cond.clone()),
        _ => Err(Unsupported::new(format!(
            "{kind} with USING or NATURAL (write ON instead)"
        ))),
    }
}

/// Whether `factor` is a NULL-padded relation of an anti-join block.
fn is_padded(factor: &TableFactor) -> bool {
    matches!(factor, TableFactor::Table { name, .. }
        if name.to_string().starts_with("__pgs_null_"))
}

/// Pads the relation of `factor` with NULLs in `block` (an empty relation with its columns, not
/// an occurrence), and adds the filter "no row of it matches `cond`".
fn pad_with_nulls(
    block: &mut Block,
    position: impl Fn(&mut Block) -> &mut TableFactor,
    cond: &Expr,
    kind: &str,
    catalog: &dyn Catalog,
) -> Result<(), Unsupported> {
    let factor = position(block).clone();
    let Some(occurrence) = single_occurrence_factor(&factor, catalog) else {
        return Err(Unsupported::new(format!(
            "{kind} of a relation that reads more than one table"
        )));
    };
    let alias = match &factor {
        TableFactor::Table { alias, .. } | TableFactor::Derived { alias, .. } => alias.clone(),
        _ => None,
    };
    let Some(alias) = alias else {
        return Err(Unsupported::new(format!(
            "{kind} of a relation without a name"
        )));
    };
    let index = block.padded.len();
    block.padded.push(factor.clone());
    *position(block) = named_factor(&null_marker(index), Some(alias.clone()));
    block.filters.push(Filter {
        occurrence,
        relation: factor,
        alias: folded(&alias.name),
        cond: Some(cond.clone()),
        kind: FilterKind::NotExists,
    });
    Ok(())
}

fn false_expr() -> Expr {
    generated_expr("false")
}

/// Splits the outer joins of `block` into blocks of inner joins and blocks with one side
/// padded with NULLs, added to `out` (refused past `MAX_OUTER_JOINS` deep).
fn split_outer_joins(
    block: Block,
    depth: usize,
    catalog: &dyn Catalog,
    out: &mut Vec<Block>,
) -> Result<(), Unsupported> {
    let Some((t, j)) = first_outer_join(&block) else {
        out.push(block);
        return Ok(());
    };
    if depth >= MAX_OUTER_JOINS {
        return Err(Unsupported::new(format!(
            "more than {MAX_OUTER_JOINS} outer joins in one SELECT"
        )));
    }
    let split = JoinSplit {
        block: &block,
        t,
        j,
        depth,
        catalog,
    };
    match block.select.from[t].joins[j].join_operator.clone() {
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => {
            let cond = on_condition(&c, "LEFT JOIN")?;
            split.inner(&cond, out)?;
            split.padded(JoinOperator::Left, false, &cond, "LEFT JOIN", out)
        }
        JoinOperator::Right(c) | JoinOperator::RightOuter(c) => {
            split.right_or_full(&c, "RIGHT JOIN", out)
        }
        JoinOperator::FullOuter(c) => split.right_or_full(&c, "FULL JOIN", out),
        _ => unreachable!("only outer joins are split"),
    }
}

/// The first outer join still to split: `(FROM item, join)` (a join already padded with NULLs
/// is not split again).
fn first_outer_join(block: &Block) -> Option<(usize, usize)> {
    block.select.from.iter().enumerate().find_map(|(t, table)| {
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
    })
}

/// One outer join being split: join `j` of FROM item `t` of `block`.
struct JoinSplit<'a> {
    block: &'a Block,
    t: usize,
    j: usize,
    depth: usize,
    catalog: &'a dyn Catalog,
}

impl JoinSplit<'_> {
    /// The block with the join's operator replaced.
    fn with_operator(&self, operator: JoinOperator) -> Block {
        let mut b = self.block.clone();
        b.select.from[self.t].joins[self.j].join_operator = operator;
        b
    }

    /// The rows that match: the join made inner on `cond`, split further.
    fn inner(&self, cond: &Expr, out: &mut Vec<Block>) -> Result<(), Unsupported> {
        let inner = self.with_operator(JoinOperator::Inner(JoinConstraint::On(cond.clone())));
        split_outer_joins(inner, self.depth + 1, self.catalog, out)
    }

    /// The rows of one side that match nothing: the join made `operator` ON false with the
    /// other side (the FROM item's first relation when `pad_first`, else the joined one) padded
    /// with NULLs, split further.
    fn padded(
        &self,
        operator: fn(JoinConstraint) -> JoinOperator,
        pad_first: bool,
        cond: &Expr,
        kind: &str,
        out: &mut Vec<Block>,
    ) -> Result<(), Unsupported> {
        let (t, j) = (self.t, self.j);
        let mut anti = self.with_operator(operator(JoinConstraint::On(false_expr())));
        if pad_first {
            pad_with_nulls(
                &mut anti,
                |b| &mut b.select.from[t].relation,
                cond,
                kind,
                self.catalog,
            )?;
        } else {
            pad_with_nulls(
                &mut anti,
                |b| &mut b.select.from[t].joins[j].relation,
                cond,
                kind,
                self.catalog,
            )?;
        }
        split_outer_joins(anti, self.depth + 1, self.catalog, out)
    }

    /// A RIGHT or FULL join (`kind`), first in its FROM item: the matching rows, the right
    /// side's rows without a match, and for a FULL join the left side's too.
    fn right_or_full(
        &self,
        constraint: &JoinConstraint,
        kind: &str,
        out: &mut Vec<Block>,
    ) -> Result<(), Unsupported> {
        if self.j != 0 {
            return Err(Unsupported::new(format!(
                "{kind} after another join (put it first)"
            )));
        }
        let cond = on_condition(constraint, kind)?;
        self.inner(&cond, out)?;
        // Right side kept: the left relation padded with NULLs.
        self.padded(JoinOperator::Right, true, &cond, kind, out)?;
        if kind == "FULL JOIN" {
            self.padded(JoinOperator::Left, false, &cond, kind, out)?;
        }
        Ok(())
    }
}
