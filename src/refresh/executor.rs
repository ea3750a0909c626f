//! Carrying out a plan: every stage, lowest first, recomputed (FULL) or moved by the changes of
//! what it reads (DIFFERENTIAL) — its auxiliary table, or the stream table for the root — with
//! every statement in the refresh's one snapshot.

use super::snapshot::{Params, RefreshSnapshot};
use super::work_tables;
use crate::catalog::StreamTable;
use crate::delta::statements as sql;
use crate::delta::{Identity, Names, Plan, StagePlan, StageRefresh};
use crate::settings::{self, Restriction};
use pgrx::prelude::*;

mod full;

/// Rows one refresh changed in the stream table.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppliedChanges {
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
}

/// The delta tables a DIFFERENTIAL refresh filled, and how many change rows they hold.
#[derive(Clone)]
pub struct FilledDeltas {
    names: Vec<String>,
    pub rows: i64,
}

impl FilledDeltas {
    /// Lets go of them (after use, or when the refresh recomputes instead).
    pub fn discard(self) {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        work_tables::release(&names, self.rows);
    }
}

/// What the executor works with.
pub struct Execution<'a> {
    pub table: &'a StreamTable,
    pub owner: pg_sys::Oid,
    pub plan: &'a Plan,
    pub names: Names,
    pub snapshot: &'a RefreshSnapshot,
    pub params: Params,
    /// The stream table's identity as it stands (a legacy table may differ from the plan's).
    pub root_identity: Identity,
    /// What kind of Citus table the stream table is, if one (it is keyed: see
    /// [`Execution::apply_keyed_on_citus`]).
    pub root_on_citus: Option<crate::capture::citus::CitusKind>,
    /// The stream table is partitioned (its rows may move between partitions).
    pub root_partitioned: bool,
    /// The query reads Citus tables (Citus plans its statements: see [`Execution::full`]).
    pub reads_citus: bool,
    /// Whether the stream table has unique or exclusion indexes besides its identity (a user's
    /// constraint, checked row by row as a MERGE goes): looked up once, when an apply asks.
    pub root_constrained: std::cell::OnceCell<bool>,
}

impl Execution<'_> {
    /// `sql` evaluating the user's query: as the owner, a security-restricted operation.
    fn restricted(&self, statement: &str) -> (u64, Vec<Option<i64>>) {
        settings::as_user(self.owner, Restriction::RestrictedOperation, || {
            self.snapshot.run(statement, &self.params)
        })
    }

    /// `sql` on the engine's and the owner's own tables, as the owner.
    fn plain(&self, statement: &str) -> (u64, Vec<Option<i64>>) {
        self.snapshot.run(statement, &self.params)
    }

    /// The int8 `statement` returns (0 for NULL).
    fn count(&self, statement: &str) -> i64 {
        self.plain(statement)
            .1
            .first()
            .copied()
            .flatten()
            .unwrap_or(0)
    }

    fn relation_of(&self, stage: &StagePlan) -> String {
        if stage.index + 1 == self.plan.stages.len() {
            self.table.qualified()
        } else {
            self.names.aux_table(stage.index)
        }
    }

    fn is_root(&self, stage: &StagePlan) -> bool {
        stage.index + 1 == self.plan.stages.len()
    }

    fn identity_of(&self, stage: &StagePlan) -> Identity {
        if self.is_root(stage) {
            self.root_identity.clone()
        } else {
            stage.identity.clone()
        }
    }

    fn work(&self, kind: &str, stage: &StagePlan, definition: &str) -> String {
        work_tables::ensure(&format!("{kind}{}", stage.index), self.table, definition)
    }

    /// Copies the change rows of this refresh's window into the delta tables (analyzed where
    /// the planner's estimate is off, with the lookup indexes the plan asks for): every term
    /// then reads these small tables, with sizes the planner knows. Returns them with how many
    /// change rows they hold.
    pub fn fill_deltas(&self) -> FilledDeltas {
        let mut deltas: Vec<String> = Vec::new();
        let mut filled: Vec<i64> = Vec::new();
        for input in &self.plan.deltas {
            let name = work_tables::ensure_named(
                &self.names.delta_table(input.relid),
                &sql::delta_definition(input),
                self.table,
            );
            let fill = sql::delta_fill(&self.names, input);
            filled.push(window_scan(|| self.plain(&fill)).0 as i64);
            deltas.push(name);
        }
        for (relid, column) in &self.plan.delta_indexes {
            let (name, create) = sql::delta_index(&self.names, *relid, column);
            if !work_tables::exists(&name) {
                work_tables::run(&create);
            }
        }
        let sized: Vec<(&str, i64)> = deltas
            .iter()
            .map(String::as_str)
            .zip(filled.iter().copied())
            .collect();
        work_tables::analyze(&sized);
        FilledDeltas {
            names: deltas,
            rows: filled.iter().sum(),
        }
    }

    /// How many change rows [`Self::fill_deltas`] would copy, counted up to `limit` (when given:
    /// the count stops there).
    pub fn count_changes(&self, limit: Option<i64>) -> i64 {
        let mut counted = 0;
        for input in &self.plan.deltas {
            let left = limit.map(|limit| limit - counted);
            if left.is_some_and(|left| left <= 0) {
                break;
            }
            // (What is left of the limit, at its power of two: the statement's text stays.)
            let bound = left.map(|left| (left as u64).next_power_of_two() as i64);
            let rows = window_scan(|| self.count(&sql::delta_count(input, bound)));
            counted += left.map_or(rows, |left| rows.min(left));
        }
        counted
    }

    /// Applies every stage's changes from `deltas` ([`Self::fill_deltas`]), lowest first;
    /// returns what changed in the stream table.
    pub fn differential(&self, deltas: FilledDeltas) -> AppliedChanges {
        let mut applied = AppliedChanges::default();
        let mut change_sets: Vec<String> = Vec::new();
        self.ensure_aux_lookup_indexes();
        for stage in &self.plan.stages {
            if matches!(stage.refresh, StageRefresh::Unchanged) {
                continue;
            }
            let target = self.relation_of(stage);
            let change_set = stage.feeds.then(|| {
                let name = self.names.change_set(stage.index);
                work_tables::ensure_named(
                    &name,
                    &sql::change_set_work(&target, &stage.columns),
                    self.table,
                );
                let base = format!("__pgs_chg_{}_{}", self.names.id, stage.index);
                for column in &stage.lookup_columns {
                    let (index, create) = sql::lookup_index(&name, "pg_temp", &base, column);
                    if !work_tables::exists(&index) {
                        work_tables::run(&create);
                    }
                }
                change_sets.push(name.clone());
                name
            });
            let result = match &stage.refresh {
                StageRefresh::Unchanged => unreachable!("skipped above"),
                StageRefresh::Signed { delta_sql } => {
                    self.apply_signed(stage, &target, delta_sql, change_set.as_deref())
                }
                StageRefresh::Keys {
                    affected_sql,
                    fresh_sql,
                } => {
                    let (affected, fresh) = self.keyed_work(stage, &target);
                    let Identity::Key(key) = self.identity_of(stage) else {
                        unreachable!("keyed refreshes are planned for keyed relations")
                    };
                    let keys = self
                        .restricted(&sql::capture_keys(&affected, affected_sql, key.len()))
                        .0 as i64;
                    work_tables::analyze(&[(&affected, keys)]);
                    let rows = self
                        .restricted(&sql::capture_fresh(&fresh, fresh_sql, &stage.columns))
                        .0 as i64;
                    self.apply_keyed(
                        stage,
                        &target,
                        &affected,
                        (&fresh, rows),
                        &key,
                        change_set.as_deref(),
                    )
                }
                StageRefresh::Algebraic(plan) => {
                    self.apply_algebraic(stage, &target, plan, change_set.as_deref())
                }
                StageRefresh::Recompute => self.recompute(stage, &target, change_set.as_deref()),
            };
            if self.is_root(stage) {
                applied = result;
            }
        }
        for name in change_sets {
            work_tables::run(&format!("DELETE FROM {name}"));
        }
        deltas.discard();
        applied
    }

    fn keyed_work(&self, stage: &StagePlan, target: &str) -> (String, String) {
        let Identity::Key(key) = self.identity_of(stage) else {
            unreachable!("keyed work for a keyed relation")
        };
        let affected = work_tables::ensure_named(
            &self.names.affected(stage.index),
            &sql::keys_work(target, &key),
            self.table,
        );
        let fresh = self.work(
            "fresh",
            stage,
            &sql::shaped_like("", target, &stage.columns),
        );
        (affected, fresh)
    }

    /// Applies the recomputed rows of the affected keys, `fresh` (the table and how many rows
    /// it holds), and writes the change set first.
    fn apply_keyed(
        &self,
        stage: &StagePlan,
        target: &str,
        affected: &str,
        (fresh, fresh_rows): (&str, i64),
        key: &[String],
        change_set: Option<&str>,
    ) -> AppliedChanges {
        work_tables::analyze(&[(fresh, fresh_rows)]);
        if self.root_on_citus.is_some() && self.is_root(stage) {
            return self.apply_keyed_on_citus(stage, target, affected, fresh, key, change_set);
        }
        if change_set.is_none() && self.applies_at_once(stage) {
            let merge = sql::apply_keyed_at_once(target, affected, fresh, &stage.columns, key);
            let applied = self.merged_at_once(target, &merge);
            work_tables::release(&[affected, fresh], fresh_rows);
            return applied;
        }
        if let Some(change_set) = change_set {
            let written = self
                .plain(&sql::keyed_change_set(
                    change_set,
                    target,
                    affected,
                    fresh,
                    &stage.columns,
                    key,
                ))
                .0 as i64;
            // Stages above read it: with its size known.
            work_tables::analyze(&[(change_set, written)]);
        }
        let [delete, merge] = sql::apply_keyed(target, affected, fresh, &stage.columns, key);
        let deleted = self.plain(&delete).0 as i64;
        let (inserted, updated) =
            self.merge_counted(self.is_root(stage), target, fresh, key, &merge);
        work_tables::release(&[affected, fresh], fresh_rows);
        AppliedChanges {
            inserted,
            updated,
            deleted,
        }
    }

    /// Whether `stage` (with no stage above reading its change set) is applied by one MERGE
    /// ([`sql::apply_keyed_at_once`], [`sql::signed_at_once`]): the root, whose rows cannot move
    /// between partitions, that has no user's unique constraint that could see a new row before
    /// the deletion of the old one it replaces, and the transaction's statistics counters, read
    /// around it, tell inserted and deleted rows from updated ones.
    fn applies_at_once(&self, stage: &StagePlan) -> bool {
        // SAFETY: a plain setting read in the backend's own thread.
        let counted = unsafe { pg_sys::pgstat_track_counts };
        self.is_root(stage)
            && self.root_on_citus.is_none()
            && !self.root_partitioned
            && !self.root_constrained()
            && counted
    }

    /// Whether the stream table has a unique or exclusion index of a user's (the field of that
    /// name, looked up on the first call).
    fn root_constrained(&self) -> bool {
        *self.root_constrained.get_or_init(|| {
            crate::kept_plans::one::<bool>(
                "SELECT pg_catalog.count(*) > 1 FROM pg_catalog.pg_index \
                 WHERE indrelid = $1 AND (indisunique OR indisexclusion)",
                &[self.table.relid.into()],
            )
            .ok()
            .flatten()
            .unwrap_or(true)
        })
    }

    /// Runs `merge`, a keyed apply in one MERGE (see [`Self::applies_at_once`]), and tells its
    /// rows apart by the statistics counters.
    fn merged_at_once(&self, target: &str, merge: &str) -> AppliedChanges {
        let (merged, grew_inserted, grew_deleted) = self.counted(target, merge);
        // (Bounded by the MERGE's own count: a user's trigger writing to the stream table is
        // counted by the counters too.)
        let inserted = grew_inserted.clamp(0, merged);
        let deleted = grew_deleted.clamp(0, merged - inserted);
        AppliedChanges {
            inserted,
            updated: merged - inserted - deleted,
            deleted,
        }
    }

    /// Runs `statement` on `target` and returns its row count and how many rows the
    /// transaction's statistics counters say it inserted into and deleted from `target` (its
    /// leaf partitions when partitioned), read before and after.
    fn counted(&self, target: &str, statement: &str) -> (i64, i64, i64) {
        let written = || self.plain(&sql::written_rows(target)).1;
        let before = written();
        let processed = self.plain(statement).0 as i64;
        let after = written();
        let grew = |i: usize| {
            after.get(i).copied().flatten().unwrap_or(0)
                - before.get(i).copied().flatten().unwrap_or(0)
        };
        (processed, grew(0), grew(1))
    }

    /// Runs `merge` (inserting and updating rows of keyed `target` from `fresh`) and returns how
    /// many rows it inserted and how many it updated: for the root, from the transaction's
    /// statistics counters read around it, or where counters are off (`track_counts`) by
    /// counting the new keys of `fresh` first. An inner stage's counts are recorded nowhere:
    /// its MERGE runs alone.
    fn merge_counted(
        &self,
        root: bool,
        target: &str,
        fresh: &str,
        key: &[String],
        merge: &str,
    ) -> (i64, i64) {
        if !root {
            return (0, self.plain(merge).0 as i64);
        }
        // SAFETY: a plain setting read in the backend's own thread.
        if unsafe { pg_sys::pgstat_track_counts } {
            let (merged, grew_inserted, grew_deleted) = self.counted(target, merge);
            // A row moved to another partition is deleted from one and inserted into another:
            // updated. (Bounded by the MERGE's own count: a user's trigger writing to the stream
            // table is counted by the counters too.)
            let inserted = (grew_inserted - grew_deleted).clamp(0, merged);
            return (inserted, merged - inserted);
        }
        let inserted = self.count(&sql::new_keys_count(target, fresh, key));
        (inserted, self.plain(merge).0 as i64 - inserted)
    }

    /// [`Self::apply_keyed`] into a Citus table (Citus runs no MERGE from a coordinator table
    /// into a distributed or reference table, nor correlated subqueries between them). A
    /// distributed one: its old rows of the affected keys read into a work table, the change
    /// netted there, then applied by key lists. A reference one: its rows of the affected keys
    /// replaced (see [`sql::citus_replace_keys`]).
    fn apply_keyed_on_citus(
        &self,
        stage: &StagePlan,
        target: &str,
        affected: &str,
        fresh: &str,
        key: &[String],
        change_set: Option<&str>,
    ) -> AppliedChanges {
        let columns = &stage.columns;
        if self.root_on_citus == Some(crate::capture::citus::CitusKind::Reference) {
            // Every row of the affected keys replaced (counted as deleted and inserted).
            let [delete, insert] = sql::citus_replace_keys(target, affected, fresh, columns, key);
            let any_affected = self.count(&format!(
                "SELECT count(*)::pg_catalog.int8 FROM (SELECT FROM {affected} LIMIT 1) __pgs_any"
            )) > 0;
            let deleted = if any_affected {
                self.plain(&delete).0 as i64
            } else {
                0
            };
            let inserted = self.plain(&insert).0 as i64;
            work_tables::release(&[affected, fresh], 1);
            return AppliedChanges {
                inserted,
                updated: 0,
                deleted,
            };
        }
        let old = self.work("old", stage, &sql::shaped_like("", target, columns));
        let old_rows = self
            .plain(&sql::citus_old_rows(&old, target, affected, columns, key))
            .0 as i64;
        work_tables::analyze(&[(&old, old_rows)]);
        let netted = self.work("netted", stage, &sql::change_set_work(target, columns));
        self.plain(&sql::keyed_change_set(
            &netted, &old, affected, fresh, columns, key,
        ));
        if let Some(change_set) = change_set {
            let written = self
                .plain(&format!("INSERT INTO {change_set} SELECT * FROM {netted}"))
                .0 as i64;
            work_tables::analyze(&[(change_set, written)]);
        }
        let counts = self.plain(&sql::citus_change_counts(&netted, key)).1;
        let count = |i: usize| counts.get(i).copied().flatten().unwrap_or(0);
        let [delete, insert] = sql::citus_apply(target, &netted, columns, key);
        if count(1) + count(2) > 0 {
            self.plain(&delete);
        }
        if count(0) + count(1) > 0 {
            self.plain(&insert);
        }
        work_tables::release(&[affected, fresh, &old, &netted], 1);
        AppliedChanges {
            inserted: count(0),
            updated: count(1),
            deleted: count(2),
        }
    }

    /// Signed changed rows: netted by key for a keyed relation, by row copies for a multiset.
    fn apply_signed(
        &self,
        stage: &StagePlan,
        target: &str,
        delta_sql: &str,
        change_set: Option<&str>,
    ) -> AppliedChanges {
        let work = self.work("delta", stage, &sql::signed_work(target, &stage.columns));
        let captured = self
            .restricted(&sql::capture_signed(&work, delta_sql, &stage.columns))
            .0 as i64;
        work_tables::analyze(&[(&work, captured)]);
        let applied = match self.identity_of(stage) {
            Identity::Key(key)
                if change_set.is_none()
                    && self.applies_at_once(stage)
                    && captured < work_tables::LARGE =>
            {
                // No work tables between: the netted delta read once by the one MERGE. (Not for
                // a large delta: the planner knows the size of the keys and fresh rows only
                // from analyzed work tables, and would probe the stream table once per key.)
                let merge = sql::signed_at_once(target, &work, &stage.columns, &key);
                self.merged_at_once(target, &merge)
            }
            Identity::Key(key) => {
                let (affected, fresh) = self.keyed_work(stage, target);
                let [keys, rows] =
                    sql::signed_to_keyed(&work, &affected, &fresh, &stage.columns, &key)
                        .map(|statement| self.plain(&statement).0 as i64);
                work_tables::analyze(&[(&affected, keys)]);
                self.apply_keyed(stage, target, &affected, (&fresh, rows), &key, change_set)
            }
            Identity::Multiset => {
                if let Some(change_set) = change_set {
                    let written = self
                        .plain(&sql::multiset_change_set(change_set, &work, &stage.columns))
                        .0 as i64;
                    work_tables::analyze(&[(change_set, written)]);
                }
                let counts = self.plain(&sql::multiset_counts(&work)).1;
                let (inserted, deleted) = (
                    counts.first().copied().flatten().unwrap_or(0),
                    counts.get(1).copied().flatten().unwrap_or(0),
                );
                let ops = self.work(
                    "ops",
                    stage,
                    &sql::multiset_ops_work(target, &stage.columns),
                );
                self.plain(&sql::multiset_operations(
                    &work,
                    &ops,
                    target,
                    &stage.columns,
                ));
                work_tables::analyze(&[(&ops, inserted + deleted)]);
                self.plain(&sql::apply_multiset(&ops, target, &stage.columns));
                work_tables::release(&[&ops], inserted + deleted);
                AppliedChanges {
                    inserted,
                    updated: 0,
                    deleted,
                }
            }
        };
        work_tables::release(&[&work], captured);
        applied
    }

    /// Moves an algebraic stage's state by its input's change and applies the touched groups.
    fn apply_algebraic(
        &self,
        stage: &StagePlan,
        target: &str,
        plan: &crate::delta::algebraic::AlgebraicPlan,
        change_set: Option<&str>,
    ) -> AppliedChanges {
        let state = self.names.state_table(stage.index);
        let groups = self.work("groups", stage, &sql::groups_work(plan, &state));
        let touched = self.restricted(&sql::capture_groups(&groups, plan)).0 as i64;
        work_tables::analyze(&[(&groups, touched)]);
        let rescan = work_tables::ensure_named(
            &self.names.rescan(stage.index),
            &sql::keys_work(&state, &crate::delta::algebraic::key_columns(plan)),
            self.table,
        );
        let state_work = self.work(
            "statework",
            stage,
            &format!("AS SELECT * FROM {state} WITH NO DATA"),
        );
        if let Some([find, recompute]) =
            sql::capture_rescan(&groups, &rescan, &state_work, &state, plan)
        {
            let found = self.plain(&find).0;
            if found > 0 {
                work_tables::analyze(&[(&rescan, found as i64)]);
                self.restricted(&recompute);
            }
        }
        for statement in sql::update_state(plan, &state, &groups, &rescan, &state_work) {
            self.plain(&statement);
        }
        let Identity::Key(key) = self.identity_of(stage) else {
            unreachable!("algebraic stages are keyed")
        };
        let applied = if change_set.is_none() && self.applies_at_once(stage) {
            // The touched groups' rows read from the state by the one MERGE, no work tables.
            let (affected, fresh) = sql::algebraic_at_once(plan, &state, &groups, &stage.columns);
            let merge = sql::apply_keyed_at_once(target, &affected, &fresh, &stage.columns, &key);
            self.merged_at_once(target, &merge)
        } else {
            let (affected, fresh) = self.keyed_work(stage, target);
            let [_, rows] =
                sql::algebraic_outputs(plan, &state, &groups, &affected, &fresh, &stage.columns)
                    .map(|statement| self.plain(&statement).0 as i64);
            self.apply_keyed(stage, target, &affected, (&fresh, rows), &key, change_set)
        };
        work_tables::release(&[&groups, &rescan, &state_work], touched);
        applied
    }

    /// A top-k: recomputed from its input, the difference applied.
    fn recompute(
        &self,
        stage: &StagePlan,
        target: &str,
        change_set: Option<&str>,
    ) -> AppliedChanges {
        let columns = &stage.columns;
        let work = self.work("recompute", stage, &sql::signed_work(target, columns));
        // The new rows +1, the old ones -1: a signed delta netted like any other.
        let listed: Vec<String> = columns
            .iter()
            .map(|c| format!("__pgs_q.{}", crate::sql_text::quote_ident(c)))
            .collect();
        let listed = listed.join(", ");
        let quoted: Vec<String> = columns
            .iter()
            .map(|c| crate::sql_text::quote_ident(c))
            .collect();
        let quoted = quoted.join(", ");
        self.restricted(&format!(
            "INSERT INTO {work} (__pgs_w, __pgs_t, {quoted}) \
             SELECT 1, __pgs_q::pg_catalog.text, {listed} FROM ({}) __pgs_q ({quoted}) \
             UNION ALL SELECT -1, __pgs_q::pg_catalog.text, {listed} FROM (SELECT {quoted} FROM {target}) __pgs_q ({quoted})",
            stage.full_sql
        ));
        let delta = format!("SELECT __pgs_w, __pgs_t, {quoted} FROM {work}");
        let applied = self.apply_signed(stage, target, &delta, change_set);
        work_tables::release(&[&work], work_tables::LARGE);
        applied
    }
}

/// Runs `read`, a statement reading a change buffer's window, planned without sequential scans:
/// a buffer two or more readers share has a BRIN index on the writing transaction, through which
/// the window (the buffer's newest pages) is read without the pages before it, dead rows
/// earlier refreshes left until autovacuum comes (after a large change set, thousands of pages
/// whose first reader would also set their hint bits). The buffer has no statistics to choose by
/// (it is mostly empty when analyzed), and without them the two plans cost about the same.
fn window_scan<R>(read: impl FnOnce() -> R) -> R {
    settings::with_settings(&[(c"enable_seqscan", "off")], read)
}
