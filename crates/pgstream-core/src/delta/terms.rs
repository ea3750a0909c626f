//! How a stage's occurrences are read (now, or their change rows) and the inclusion–exclusion
//! terms of a block: the signed change of its rows, and the rows a change touched (delta
//! planning).

use super::ast::{
    derived, generated_expr, generated_select, named_factor, not, query_of, realias,
    replace_occurrences, restrict, select_from, wildcard,
};
use super::blocks::Block;
use super::filters::{self, Combined};
use super::flips::{self, Flip};
use super::ir::Unsupported;
use super::ir::{null_marker_index, Input, Names, Role};
use crate::sql_text::quote_ident;
use sqlparser::ast::{Select, TableAlias, TableFactor, VisitMut, VisitorMut};
use std::ops::ControlFlow;

/// More terms than this in one block (3^n - 1 for n changed occurrences) are not rendered: the
/// refresh recomputes instead.
pub const MAX_TERMS: usize = 6560;

/// How the occurrences of one stage are read.
pub struct Reader<'a> {
    pub inputs: &'a [Input],
    pub names: Names,
    /// The visible columns of each stage of the plan.
    pub stage_columns: &'a dyn Fn(usize) -> Vec<String>,
    /// Whether occurrence `i` may have changed since the last refresh.
    pub changed: &'a dyn Fn(usize) -> bool,
    /// Whether occurrence `i` reads a stage of one row at most (a scalar subquery's, say).
    pub one_row: &'a dyn Fn(usize) -> bool,
    /// Lower stages read as their own queries (for asking the database what a query returns
    /// before their tables exist), instead of their tables.
    pub standalone: Option<&'a dyn Fn(usize) -> String>,
}

impl Reader<'_> {
    /// Occurrence `index` read as `role` under `alias`.
    pub fn occurrence(&self, index: usize, role: Role, alias: Option<TableAlias>) -> TableFactor {
        match (&self.inputs[index], role) {
            (Input::Table(table), Role::Current) => named_factor(&table.name, alias),
            (Input::Table(table), role) => {
                let sign = match role {
                    Role::Inserted => " WHERE __pgs_b.__pgs_w = 1",
                    Role::Deleted => " WHERE __pgs_b.__pgs_w = -1",
                    _ => "",
                };
                let columns: Vec<String> = if table.columns.is_empty() {
                    vec!["1".into()]
                } else {
                    table
                        .columns
                        .iter()
                        .map(|c| match table.absent.iter().find(|(name, _)| name == c) {
                            Some((_, type_name)) => {
                                format!("NULL::{type_name} AS {}", quote_ident(c))
                            }
                            None => format!("__pgs_b.{}", quote_ident(c)),
                        })
                        .collect()
                };
                let select = generated_select(&format!(
                    "SELECT {} FROM {} __pgs_b{sign}",
                    columns.join(", "),
                    self.names.delta_table(table.relid)
                ));
                derived(query_of(select), alias)
            }
            (Input::Stage(stage), role) => {
                let columns: Vec<String> = (self.stage_columns)(*stage)
                    .iter()
                    .map(|c| format!("__pgs_s.{}", quote_ident(c)))
                    .collect();
                let listed = if columns.is_empty() {
                    "1".to_string()
                } else {
                    columns.join(", ")
                };
                if let (Role::Current, Some(standalone)) = (role, self.standalone) {
                    let select = generated_select(&format!(
                        "SELECT {listed} FROM ({}) __pgs_s",
                        standalone(*stage)
                    ));
                    return derived(query_of(select), alias);
                }
                let (relation, sign) = match role {
                    Role::Current => (self.names.aux_table(*stage), ""),
                    Role::Inserted => (self.names.change_set(*stage), " WHERE __pgs_s.__pgs_w = 1"),
                    Role::Deleted => (self.names.change_set(*stage), " WHERE __pgs_s.__pgs_w = -1"),
                    Role::Changed => (self.names.change_set(*stage), ""),
                };
                let select =
                    generated_select(&format!("SELECT {listed} FROM {relation} __pgs_s{sign}"));
                derived(query_of(select), alias)
            }
        }
    }

    /// `node` with every occurrence read as `roles` says (absent: now) and every NULL-padded
    /// relation of `padded` as an empty relation with its columns.
    pub fn substitute<N: VisitMut>(
        &self,
        node: &mut N,
        roles: &[(usize, Role)],
        padded: &[TableFactor],
    ) {
        replace_occurrences(node, &mut |index, alias| {
            let role = roles
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, r)| *r)
                .unwrap_or(Role::Current);
            self.occurrence(index, role, alias)
        });
        self.substitute_padded(node, padded);
    }

    fn substitute_padded<N: VisitMut>(&self, node: &mut N, padded: &[TableFactor]) {
        struct Pad<'a, 'b> {
            reader: &'a Reader<'b>,
            padded: &'a [TableFactor],
        }
        impl VisitorMut for Pad<'_, '_> {
            type Break = ();
            fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
                if let TableFactor::Table { name, alias, .. } = factor {
                    if let Some(index) = null_marker_index(&name.to_string()) {
                        let mut relation = self.padded[index].clone();
                        realias(&mut relation, "__pgs_none");
                        self.reader.substitute(&mut relation, &[], &[]);
                        let mut empty =
                            select_from(vec![wildcard()], relation, Some(generated_expr("false")));
                        empty.distinct = None;
                        *factor = derived(query_of(empty), alias.clone());
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = node.visit(&mut Pad {
            reader: self,
            padded,
        });
    }

    /// A filter relation read as `role` (its occurrence substituted; its alias kept).
    pub fn relation_as(&self, relation: &TableFactor, role: Role) -> TableFactor {
        let mut relation = relation.clone();
        let index = super::ast::occurrences_in(&relation);
        let roles: Vec<(usize, Role)> = index.into_iter().map(|i| (i, role)).collect();
        self.substitute(&mut relation, &roles, &[]);
        relation
    }

    /// The block's filters combined, when it has any.
    fn combined(&self, block: &Block) -> Option<Combined> {
        (!block.filters.is_empty()).then(|| {
            filters::combine(&block.filters, self.changed, &|r, role| {
                self.relation_as(r, role)
            })
        })
    }

    /// The flips of the changed one-row occurrences among `occ` in `select` (see
    /// [`flips::flip_of`]).
    fn flips(
        &self,
        select: &Select,
        occ: &[usize],
        shown: &[&Select],
        unread: &[&sqlparser::ast::Expr],
    ) -> Vec<Flip> {
        occ.iter()
            .filter(|i| (self.one_row)(**i))
            .filter_map(|i| match &self.inputs[*i] {
                Input::Stage(stage) => flips::flip_of(
                    select,
                    *i,
                    &self.names.change_set(*stage),
                    &(self.stage_columns)(*stage),
                    shown,
                    unread,
                ),
                Input::Table(_) => None,
            })
            .collect()
    }

    /// The occurrences in the block's FROM that may have changed.
    fn changeable(&self, block: &Block) -> Vec<usize> {
        let mut found = super::ast::occurrences_in(&block.select.from);
        found.dedup();
        found.into_iter().filter(|i| (self.changed)(*i)).collect()
    }

    /// Every term of the signed change of `block`'s rows: (coefficient, SELECT). For changed
    /// occurrences o1..on, the change is the sum over non-empty subsets U, and over inserted /
    /// deleted for each member, of (-1)^(|U|+1) · Π signs · the block with those occurrences
    /// read from change rows, with the block's filters as they were before; plus, when a
    /// filter's relation changed, the block's rows whose filter value flipped (+1 passes now,
    /// -1 passed before).
    /// `shown`: the selects whose rows the block's rows become (see [`flips::flip_of`]).
    pub fn signed_terms(
        &self,
        block: &Block,
        shown: &[&Select],
    ) -> Result<Vec<(i32, Select)>, Unsupported> {
        let occ = self.changeable(block);
        let count = 3usize.saturating_pow(occ.len() as u32).saturating_sub(1);
        if count > MAX_TERMS {
            return Err(Unsupported::new(format!(
                "a SELECT joining {} changing relations ({count} delta terms)",
                occ.len()
            )));
        }
        let combined = self.combined(block);
        let mut filtered = block.select.clone();
        if let Some(c) = &combined {
            restrict(&mut filtered, c.before.clone());
        }
        let flips = self.flips(&filtered, &occ, shown, &[]);
        let mut terms = Vec::new();
        for subset in 1u32..(1 << occ.len()) {
            let members: Vec<usize> = (0..occ.len())
                .filter(|b| subset & (1 << b) != 0)
                .map(|b| occ[b])
                .collect();
            // (Each term reading its inserted row has a twin reading its deleted one, with the
            // opposite coefficient: see [`flips`].)
            let flip = flips.iter().find(|f| members.contains(&f.occurrence));
            let base = if members.len() % 2 == 1 { 1 } else { -1 };
            for signs in 0u32..(1 << members.len()) {
                let mut coefficient = base;
                let roles: Vec<(usize, Role)> = members
                    .iter()
                    .enumerate()
                    .map(|(k, index)| {
                        if signs & (1 << k) != 0 {
                            coefficient = -coefficient;
                            (*index, Role::Deleted)
                        } else {
                            (*index, Role::Inserted)
                        }
                    })
                    .collect();
                let mut select = filtered.clone();
                if let Some(flip) = flip {
                    let inserted = roles
                        .iter()
                        .any(|(i, role)| *i == flip.occurrence && *role == Role::Inserted);
                    restrict(&mut select, flip.only_flipped(inserted));
                }
                self.substitute(&mut select, &roles, &block.padded);
                terms.push((coefficient, select));
            }
        }
        if let Some(Combined {
            now,
            before,
            touched_parts,
            ..
        }) = &combined
        {
            for (coefficient, condition) in touched_parts.iter().flat_map(|touched| {
                [
                    (
                        1,
                        super::ast::and(
                            super::ast::and(touched.clone(), now.clone()),
                            not(before.clone()),
                        ),
                    ),
                    (
                        -1,
                        super::ast::and(
                            super::ast::and(touched.clone(), not(now.clone())),
                            before.clone(),
                        ),
                    ),
                ]
            }) {
                let mut select = block.select.clone();
                restrict(&mut select, condition);
                self.substitute(&mut select, &[], &block.padded);
                terms.push((coefficient, select));
            }
        }
        Ok(terms)
    }

    /// SELECTs whose rows include every row of `block`'s old or new result that a change
    /// touched: each non-empty subset of changed occurrences read from all their change rows
    /// (filters as before or now), and the rows whose filter value flipped.
    /// `shown` as for [`Self::signed_terms`].
    pub fn touching_terms(
        &self,
        block: &Block,
        shown: &[&Select],
    ) -> Result<Vec<Select>, Unsupported> {
        let occ = self.changeable(block);
        if occ.len() > 12 {
            return Err(Unsupported::new(format!(
                "a SELECT joining {} changing relations",
                occ.len()
            )));
        }
        let combined = self.combined(block);
        let mut filtered = block.select.clone();
        if let Some(c) = &combined {
            restrict(
                &mut filtered,
                super::ast::or(c.before.clone(), c.now.clone()),
            );
        }
        // (Here the filters are read as before OR now: a row whose filter a change of its
        // relation flipped the other way than the stage's change would be lost between this
        // term and the filter's own, so a stage the filters read has no flip.)
        let unread: Vec<&sqlparser::ast::Expr> =
            combined.iter().flat_map(|c| [&c.before, &c.now]).collect();
        let flips = self.flips(&filtered, &occ, shown, &unread);
        let mut terms = Vec::new();
        for subset in 1u32..(1 << occ.len()) {
            let roles: Vec<(usize, Role)> = (0..occ.len())
                .filter(|b| subset & (1 << b) != 0)
                .map(|b| (occ[b], Role::Changed))
                .collect();
            let mut select = filtered.clone();
            // (A row the one-row stage's change leaves passing, or failing, is not touched by
            // it: the row does not show the stage's values.)
            if let Some(flip) = flips
                .iter()
                .find(|f| roles.iter().any(|(i, _)| *i == f.occurrence))
            {
                restrict(&mut select, flip.flipped());
            }
            self.substitute(&mut select, &roles, &block.padded);
            terms.push(select);
        }
        if let Some(Combined {
            now,
            before,
            touched_parts,
            ..
        }) = &combined
        {
            let differs = super::ast::expr_with(
                "__pgs_hole_0__ IS DISTINCT FROM __pgs_hole_1__",
                &[now, before],
            );
            for touched in touched_parts {
                let mut select = block.select.clone();
                restrict(
                    &mut select,
                    super::ast::and(touched.clone(), differs.clone()),
                );
                self.substitute(&mut select, &[], &block.padded);
                terms.push(select);
            }
        }
        Ok(terms)
    }
}
