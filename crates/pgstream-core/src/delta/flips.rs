//! A changed one-row stage that a block reads only in its WHERE (a scalar subquery compared
//! with, say): its delta terms kept to the rows whose conditions on it flip (delta planning).
//!
//! The block's rows do not show the stage's columns, so a row passing with the stage's old row
//! and with its new one comes out of both terms, once added and once taken away. The term
//! reading the new row keeps only rows that did not pass with the old one, and the other way
//! round: `[P(new)] - [P(old)] = [P(new) and not P(old)] - [P(old) and not P(new)]`. Only the
//! WHERE conditions that read the stage are evaluated again with its other row (the others are
//! the same for both), so PostgreSQL tests those cheap comparisons before anything else and
//! reads the rest (an EXISTS over another table, say) only for rows that flip. TPC-H Q22: the
//! customers above the average balance, when the average moves.

use super::ast::{and_all, as_marker, folded, generated_expr};
use super::cut::conjuncts;
use crate::sql_text::quote_ident;
use sqlparser::ast::{
    Expr, Ident, JoinOperator, Select, SelectItem, TableFactor, Visit, VisitMut, Visitor,
    VisitorMut,
};
use std::ops::ControlFlow;

/// What a one-row occurrence's terms are restricted by: whether a row of the block passes the
/// WHERE conditions that read the occurrence with its old (deleted) change row, and with its
/// new (inserted) one; false where there is no such row.
#[derive(Debug, Clone)]
pub struct Flip {
    pub occurrence: usize,
    pub passes_old: Expr,
    pub passes_new: Expr,
}

impl Flip {
    /// The rows of a term reading the occurrence's inserted row that pass with it and not with
    /// its deleted one (and the other way round). The term's own conditions already say the
    /// first half: said again here with the row read by an uncorrelated subquery, it is a
    /// condition on the block's other relations alone, which PostgreSQL tests in their scan
    /// before the costlier conditions instead of after them, at the join.
    pub fn only_flipped(&self, inserted: bool) -> Expr {
        let (this, other) = if inserted {
            (&self.passes_new, &self.passes_old)
        } else {
            (&self.passes_old, &self.passes_new)
        };
        super::ast::and(this.clone(), super::ast::not(other.clone()))
    }

    /// The rows whose conditions on the occurrence differ between its old and new row.
    pub fn flipped(&self) -> Expr {
        super::ast::expr_with(
            "__pgs_hole_0__ <> __pgs_hole_1__",
            &[&self.passes_old, &self.passes_new],
        )
    }
}

/// The flip of occurrence `occurrence` in `select` (the block with its filters' conditions
/// added), a one-row stage whose change set is `change_set` with visible `columns`. `shown`
/// are selects whose rows the block's rows become (a grouped stage's, with its aggregates'
/// arguments): what they show outside their WHERE must not read the stage either; `unread`
/// are conditions that must not read it at all. None where the rows could show the stage's
/// values, or depend on it otherwise than by WHERE conditions naming its columns by its alias:
/// it has no alias, or another relation anywhere in the select has that name; a column of it
/// or the alias itself (a whole-row reference) is named unqualified anywhere; the block is
/// DISTINCT or selects `*`; the alias is named outside the WHERE (of `select` or of `shown`) or
/// in `unread`; it is read on a side of an outer join.
pub fn flip_of(
    select: &Select,
    occurrence: usize,
    change_set: &str,
    columns: &[String],
    shown: &[&Select],
    unread: &[&Expr],
) -> Option<Flip> {
    let alias = alias_in_inner_joins(select, occurrence)?;
    let mut names: Vec<String> = columns.iter().map(|c| c.to_lowercase()).collect();
    names.extend(columns.iter().cloned());
    names.push(alias.clone());
    let wildcard = |s: &Select| {
        s.projection.iter().any(|item| {
            matches!(
                item,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        })
    };
    for s in std::iter::once(select).chain(shown.iter().copied()) {
        let mut outside = s.clone();
        outside.selection = None;
        if s.distinct.is_some()
            || wildcard(s)
            || names_alias(&outside, &alias)
            || names_unqualified(s, &names)
            || relations_named(s, &alias) > 1
        {
            return None;
        }
    }
    if unread.iter().any(|e| names_alias(*e, &alias)) {
        return None;
    }
    let selection = select.selection.clone()?;
    let reading: Vec<Expr> = conjuncts(selection)
        .into_iter()
        .filter(|c| names_alias(c, &alias))
        .collect();
    let conditions = and_all(reading).unwrap_or_else(|| generated_expr("true"));
    let passes = |sign: i32| {
        let row = |column: &str| {
            generated_expr(&format!(
                "(SELECT __pgs_s.{} FROM {change_set} __pgs_s WHERE __pgs_s.__pgs_w = {sign})",
                quote_ident(column)
            ))
        };
        let mut read = conditions.clone();
        let _ = VisitMut::visit(
            &mut read,
            &mut ReadFrom {
                alias: &alias,
                row: &row,
            },
        );
        super::ast::expr_with(
            &format!(
                "COALESCE(EXISTS (SELECT FROM {change_set} __pgs_s WHERE __pgs_s.__pgs_w = {sign}) \
                 AND __pgs_hole_0__, false)"
            ),
            &[&read],
        )
    };
    Some(Flip {
        occurrence,
        passes_old: passes(-1),
        passes_new: passes(1),
    })
}

/// The alias (folded) of occurrence `occurrence` in `select`'s FROM, where it is a FROM item or
/// joined by inner joins only; None otherwise.
fn alias_in_inner_joins(select: &Select, occurrence: usize) -> Option<String> {
    let is_it = |factor: &TableFactor| {
        as_marker(factor)
            .filter(|(index, _)| *index == occurrence)
            .map(|(_, alias)| alias.map(|a| folded(&a.name)))
    };
    for table in &select.from {
        let found = std::iter::once(&table.relation)
            .chain(table.joins.iter().map(|j| &j.relation))
            .find_map(is_it);
        if let Some(alias) = found {
            let inner = table.joins.iter().all(|j| {
                matches!(
                    j.join_operator,
                    JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)
                )
            });
            return alias.filter(|_| inner);
        }
    }
    None
}

/// Whether `node` names `alias` (a column of it, or `alias.*`).
fn names_alias<N: Visit>(node: &N, alias: &str) -> bool {
    struct Find<'a>(&'a str);
    impl Visitor for Find<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::CompoundIdentifier(parts) if qualified_by(parts, self.0) => {
                    ControlFlow::Break(())
                }
                Expr::QualifiedWildcard(name, _)
                    if name.0.len() == 1
                        && name.0[0].as_ident().is_some_and(|i| folded(i) == self.0) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    node.visit(&mut Find(alias)).is_break()
}

/// Whether `parts` is `alias.column`.
fn qualified_by(parts: &[Ident], alias: &str) -> bool {
    parts.len() == 2 && folded(&parts[0]) == alias
}

/// Whether `node` names one of `names` without a qualifier (a column of the stage, or its
/// alias: a whole-row reference).
fn names_unqualified<N: Visit>(node: &N, names: &[String]) -> bool {
    struct Find<'a>(&'a [String]);
    impl Visitor for Find<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Identifier(i) if self.0.contains(&folded(i)) || self.0.contains(&i.value) => {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    node.visit(&mut Find(names)).is_break()
}

/// How many relations in `node` (at any depth) go by `alias`: their alias, or a table's own
/// name where it has none.
fn relations_named<N: Visit>(node: &N, alias: &str) -> usize {
    struct Count<'a>(&'a str, usize);
    impl Visitor for Count<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            let name = match factor {
                TableFactor::Table { alias: Some(a), .. }
                | TableFactor::Derived { alias: Some(a), .. }
                | TableFactor::Function { alias: Some(a), .. }
                | TableFactor::UNNEST { alias: Some(a), .. }
                | TableFactor::NestedJoin { alias: Some(a), .. } => Some(folded(&a.name)),
                TableFactor::Table { name, .. } => {
                    name.0.last().and_then(|p| p.as_ident()).map(folded)
                }
                _ => None,
            };
            if name.as_deref() == Some(self.0) {
                self.1 += 1;
            }
            ControlFlow::Continue(())
        }
    }
    let mut count = Count(alias, 0);
    let _ = node.visit(&mut count);
    count.1
}

/// Replaces `alias.column` by `row(column)`.
struct ReadFrom<'a> {
    alias: &'a str,
    row: &'a dyn Fn(&str) -> Expr,
}

impl VisitorMut for ReadFrom<'_> {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundIdentifier(parts) = expr {
            if qualified_by(parts, self.alias) {
                *expr = (self.row)(&folded(&parts[1]));
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::ast::generated_select;
    use crate::delta::ir::occurrence_marker;

    fn select(sql: &str) -> Select {
        generated_select(
            &sql.replace("OCC0", &occurrence_marker(0))
                .replace("OCC1", &occurrence_marker(1)),
        )
    }

    const CHANGES: &str = "pg_temp.chg";

    #[test]
    fn a_scalar_compared_in_where_flips_only_its_own_conditions() {
        let block = select(
            "SELECT c.code, c.bal FROM OCC0 AS c CROSS JOIN OCC1 AS sq \
             WHERE c.code IN ('13', '31') AND c.bal > sq.__pgs_v \
             AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.cust = c.id)",
        );
        let flip = flip_of(&block, 1, CHANGES, &["__pgs_v".into()], &[], &[]).expect("a flip");
        let old = flip.passes_old.to_string();
        assert_eq!(
            old,
            "COALESCE(EXISTS (SELECT FROM pg_temp.chg __pgs_s WHERE __pgs_s.__pgs_w = -1) AND \
             (c.bal > (SELECT __pgs_s.\"__pgs_v\" FROM pg_temp.chg __pgs_s WHERE __pgs_s.__pgs_w = -1)), false)"
        );
        assert!(
            flip.passes_new.to_string().contains("__pgs_w = 1"),
            "{}",
            flip.passes_new
        );
        assert!(!old.contains("EXISTS (SELECT 1 FROM orders"), "{old}");
        let inserted = flip.only_flipped(true).to_string();
        assert!(inserted.starts_with("COALESCE(EXISTS"), "{inserted}");
        assert!(
            inserted.contains("__pgs_w = 1) AND (c.bal > (SELECT"),
            "{inserted}"
        );
        assert!(
            inserted.contains("false) AND (NOT COALESCE(EXISTS"),
            "{inserted}"
        );
        assert!(inserted.ends_with("__pgs_w = -1)), false))"), "{inserted}");
        assert!(flip.flipped().to_string().contains(") <> (COALESCE"));
        assert!(
            flip_of(&block, 0, CHANGES, &["code".into()], &[], &[]).is_none(),
            "shown columns"
        );
    }

    #[test]
    fn a_stage_shown_named_outside_where_unqualified_or_outer_joined_has_no_flip() {
        let columns = ["v".to_string()];
        for sql in [
            "SELECT c.bal, sq.v FROM OCC0 AS c CROSS JOIN OCC1 AS sq WHERE c.bal > sq.v",
            "SELECT * FROM OCC0 AS c CROSS JOIN OCC1 AS sq WHERE c.bal > sq.v",
            "SELECT DISTINCT c.bal FROM OCC0 AS c CROSS JOIN OCC1 AS sq WHERE c.bal > sq.v",
            "SELECT c.bal FROM OCC0 AS c JOIN OCC1 AS sq ON c.bal > sq.v",
            "SELECT c.bal FROM OCC0 AS c CROSS JOIN OCC1 AS sq WHERE c.bal > v",
            "SELECT c.bal FROM OCC0 AS c LEFT JOIN OCC1 AS sq ON true WHERE c.bal > sq.v",
            "SELECT c.bal FROM OCC0 AS c CROSS JOIN OCC1 WHERE c.bal > 1",
            // (Found by review: the stage's values reach the rows unqualified, as a whole row,
            // or the alias means another relation inside a subquery.)
            "SELECT c.bal, v FROM OCC0 AS c CROSS JOIN OCC1 AS sq WHERE c.bal > sq.v",
            "SELECT c.bal, to_jsonb(sq) FROM OCC0 AS c CROSS JOIN OCC1 AS sq WHERE c.bal > sq.v",
            "SELECT c.bal FROM OCC0 AS c CROSS JOIN OCC1 AS sq WHERE c.bal > sq.v \
             AND NOT EXISTS (SELECT 1 FROM orders sq WHERE sq.cust = c.id)",
        ] {
            assert!(
                flip_of(&select(sql), 1, CHANGES, &columns, &[], &[]).is_none(),
                "{sql}"
            );
        }
        let block = select("SELECT c.g FROM OCC0 AS c CROSS JOIN OCC1 AS sq WHERE c.bal > sq.v");
        let grouped = select(
            "SELECT c.g, string_agg((c.bal - sq.v)::text, ',') FROM OCC0 AS c CROSS JOIN OCC1 AS sq \
             WHERE c.bal > sq.v GROUP BY c.g",
        );
        assert!(
            flip_of(&block, 1, CHANGES, &columns, &[&grouped], &[]).is_none(),
            "an aggregate's argument shows it"
        );
        let filter = generated_expr("EXISTS (SELECT 1 FROM o WHERE o.amount > sq.v)");
        assert!(
            flip_of(&block, 1, CHANGES, &columns, &[], &[&filter]).is_none(),
            "a filter reads it"
        );
        assert!(flip_of(&block, 1, CHANGES, &columns, &[&block], &[]).is_some());
        let unread = select("SELECT c.bal FROM OCC0 AS c CROSS JOIN OCC1 AS sq WHERE c.bal > 1");
        let flip = flip_of(&unread, 1, CHANGES, &columns, &[], &[]).expect("a flip");
        assert!(
            flip.passes_old.to_string().ends_with("AND (true), false)"),
            "{}",
            flip.passes_old
        );
    }
}
