//! One refresh as the stream table's owner, inside its snapshot: read what changed (analyzing
//! the query again after DDL), gather the facts the pure refresh decision asks for, carry out
//! the step it chose.

use super::executor::{AppliedChanges, Execution, FilledDeltas};
use super::mode;
use super::snapshot::{self, Params, RefreshSnapshot};
use super::{data_columns, identity_change, plan_cache, rederive_sources, retype};
use crate::capture::verified::{self, Verification};
use crate::catalog::{self, ChangeState, Position, StreamTable};
use crate::delta::{Identity, Names, Plan};
use crate::error::StreamError;
use crate::modes::{RefreshKind, RefreshMode};
use crate::refresh_decision::{self, Fact, Found, Next, Planned, Step};
use crate::refresh_reason::ChangeTrust;
use pgrx::prelude::*;
use std::collections::HashSet;

/// What `refresh_now` found out before the refresh's own snapshot.
#[derive(Clone, Copy)]
pub(super) struct RefreshContext {
    /// DDL happened since the last refresh.
    pub ddl_pending: bool,
    /// Capture was checked (and repaired where needed) before the refresh's snapshot, as it
    /// must be for Citus sources (its set-up locks come before the drain's). Otherwise the
    /// refresh checks it in its snapshot and repairs it there.
    pub capture_checked: bool,
    /// A refresh with nothing to do may be skipped.
    pub may_skip: bool,
    /// Capture objects of a source were missing or out of date and were put right just now:
    /// changes made meanwhile may not have been recorded.
    pub capture_repaired: bool,
    /// It reads Citus distributed or reference tables: Citus may refuse to run its delta.
    pub reads_citus: bool,
}

/// What one refresh did and the position it covered.
pub(super) struct Outcome {
    pub kind: RefreshKind,
    pub applied: AppliedChanges,
    pub covered: Position,
    /// Why it was FULL or SKIPPED (None for DIFFERENTIAL).
    pub reason: Option<String>,
}

/// Refreshes `table` in the current (sub)transaction as its owner: decides, runs, returns.
pub(super) fn refresh_as_owner(
    table: &StreamTable,
    owner: pg_sys::Oid,
    mode: RefreshMode,
    context: RefreshContext,
) -> Outcome {
    // Decided before the snapshot the verification reads in (see capture::verified).
    let verification = if context.reads_citus {
        Verification::always()
    } else {
        verified::before_refresh(
            table.id,
            table.consumed.as_ref().map(|p| p.snapshot.as_str()),
        )
    };
    // Taken first: DDL committed before it is in the catalogs read below, DDL after it is the
    // next refresh's.
    let first = RefreshSnapshot::take();
    let params = Params {
        snapshot: table.consumed.as_ref().map(|p| p.snapshot.clone()),
        own_xid: table.consumed.as_ref().and_then(|p| p.own_xid.clone()),
        own_seq: table.consumed.as_ref().and_then(|p| p.own_seq),
    };
    snapshot::connected(|| {
        let read = read_changes(table, &first, &params, owner, context, verification.verify);
        let intact = read.intact;
        let snapshot = read.after_ddl.as_ref().unwrap_or(&first);
        let mut refresh = Refresh {
            covered: covered_position(snapshot),
            table: read.table,
            owner,
            names: Names { id: table.id },
            snapshot,
            params: params.clone(),
            reads_citus: context.reads_citus,
            capture_repaired: context.capture_repaired || read.capture_repaired,
            kept_plan: KeptPlan {
                trusted_since: verification.trusted_since.filter(|_| intact),
                made_at: (intact && verification.recordable).then_some(verification.began),
            },
        };
        let mut found = refresh.found(mode, &read.state, read.meaning_changed, context);
        let changed: HashSet<u32> = read.state.changed.iter().copied().collect();
        let gathered = refresh.gather(&mut found, &read.state, &changed);
        let (step, filled) = match gathered.step {
            Some(step) => (step, None),
            None => refresh.weigh_changes(&mut found, gathered.plan.as_ref()),
        };
        let outcome = refresh.carry_out(step, gathered.plan.as_ref(), filled);
        if intact {
            verification.passed(table.id, &outcome.covered.snapshot);
        }
        outcome
    })
}

/// The change state a refresh acts on, read after the query was analyzed again if DDL ran and
/// after missing capture was put right.
struct ReadChanges {
    /// The catalog row as it is now (analyzing again rewrites it).
    table: StreamTable,
    state: ChangeState,
    /// What the query depends on changed.
    meaning_changed: bool,
    /// Capture objects of a source were missing or out of date and were put right just now:
    /// changes made meanwhile may not have been recorded.
    capture_repaired: bool,
    /// After DDL or a repair: the snapshot the state was read in, which the refresh runs in.
    after_ddl: Option<RefreshSnapshot>,
    /// No DDL, nothing repaired, capture complete: what the next refresh may trust.
    intact: bool,
}

/// Reads the change state of `table` in `snapshot` (its capture objects looked at when
/// `verify`); after DDL analyzes its query again, where capture is missing or out of date puts
/// it right, and then reads the state anew, capture verified, in a later snapshot.
fn read_changes(
    table: &StreamTable,
    snapshot: &RefreshSnapshot,
    params: &Params,
    owner: pg_sys::Oid,
    context: RefreshContext,
    verify: bool,
) -> ReadChanges {
    let state = catalog::change_state_in(snapshot, params, table.id, owner, verify);
    let capture_repaired = !context.capture_checked && super::repair_capture_of(table, &state);
    let ddl = context.ddl_pending || state.ddl_pending;
    if !ddl && !capture_repaired {
        let intact = state.capture_complete && state.row_capture_complete;
        return ReadChanges {
            table: table.clone(),
            state,
            meaning_changed: false,
            capture_repaired,
            after_ddl: None,
            intact,
        };
    }
    let meaning_changed = ddl && rederive_sources(table);
    let table = catalog::find_by_id(table.id).expect("the stream table being refreshed exists");
    if meaning_changed {
        retype::follow_query_types(&table);
    }
    // Capture objects may have changed (a buffer widened, made or rebuilt: its ALTER waited for
    // every transaction writing the old shape). Read in a snapshot taken now, in which those
    // writes are committed: none is left for a later refresh to read in a shape it was not
    // written in.
    let after_ddl = RefreshSnapshot::take();
    let state = catalog::change_state_in(&after_ddl, params, table.id, owner, true);
    ReadChanges {
        table,
        state,
        meaning_changed,
        capture_repaired,
        after_ddl: Some(after_ddl),
        intact: false,
    }
}

/// What the fact gathering ended with: the step when the decision told it without weighing the
/// changes, and the DIFFERENTIAL plan when one was made.
struct Gathered {
    step: Option<Step>,
    plan: Option<Plan>,
}

/// A refresh once its change state is read: the table as the catalog has it, the snapshot it
/// runs in and the position it covers.
struct Refresh<'a> {
    table: StreamTable,
    owner: pg_sys::Oid,
    names: Names,
    snapshot: &'a RefreshSnapshot,
    params: Params,
    covered: Position,
    reads_citus: bool,
    /// Capture was put right for this refresh: changes made meanwhile may be unrecorded.
    capture_repaired: bool,
    /// What it may do with the plan kept from this session's last refresh of the table.
    kept_plan: KeptPlan,
}

/// Whether a refresh may take a plan kept from this session's refreshes of its stream table
/// (it trusts a verification, which began at `trusted_since`, and found no DDL), and keep its
/// own, stamped `made_at` (it found no DDL and capture intact).
#[derive(Clone, Copy)]
struct KeptPlan {
    trusted_since: Option<u64>,
    made_at: Option<u64>,
}

impl Refresh<'_> {
    /// Whether only DDL happened since the last refresh (read again once the effective mode is
    /// decided: a changed one clears the covered position). Not after a capture repair: the
    /// writes made while a trigger was missing left no record to show.
    fn only_ddl(&self, state: &ChangeState) -> bool {
        self.table.consumed.is_some()
            && self.table.depends_only_on_sources
            && state.changed.is_empty()
            && !state.truncated
            && state.capture_complete
            && !self.capture_repaired
    }

    /// The facts known before the decision asks for more.
    fn found(
        &self,
        mode: RefreshMode,
        state: &ChangeState,
        meaning_changed: bool,
        context: RefreshContext,
    ) -> Found {
        Found {
            mode,
            recorded: self.table.effective_mode,
            meaning_changed,
            may_skip: context.may_skip,
            only_ddl: self.only_ddl(state),
            trust: ChangeTrust {
                covered_before: self.table.consumed.is_some(),
                meaning_changed,
                truncated: state.truncated,
                capture_complete: state.capture_complete && !self.capture_repaired,
                row_capture_complete: state.row_capture_complete && !self.capture_repaired,
            },
            decided: None,
            planned: None,
            volume: None,
        }
    }

    /// Finds out the facts the decision asks for, in its order, until it names a step or asks
    /// for the change volume (found last: it fills the change sets, unless their count sends
    /// the refresh to FULL, which the step then applies or discards).
    fn gather(
        &mut self,
        found: &mut Found,
        state: &ChangeState,
        changed: &HashSet<u32>,
    ) -> Gathered {
        let mut plan = None;
        loop {
            match refresh_decision::next(found) {
                Next::Do(step) => {
                    return Gathered {
                        step: Some(step),
                        plan,
                    }
                }
                Next::Find(Fact::ChangeVolume) => return Gathered { step: None, plan },
                Next::Find(Fact::EffectiveMode) => {
                    let decided = mode::decide_and_record(
                        &self.table,
                        found.mode,
                        self.table.effective_mode.is_none(),
                    );
                    self.table = catalog::find_by_id(self.table.id)
                        .expect("the stream table being refreshed exists");
                    found.only_ddl = self.only_ddl(state);
                    found.trust.covered_before = self.table.consumed.is_some();
                    found.decided = Some(decided);
                }
                Next::Find(Fact::Plan) => {
                    let (planned, made) = self.plan_changes(changed);
                    found.planned = Some(planned);
                    plan = made;
                }
            }
        }
    }

    /// Plans the changes of the sources in `changed`: what planning found, and the plan.
    fn plan_changes(&self, changed: &HashSet<u32>) -> (Planned, Option<Plan>) {
        let kept = self
            .kept_plan
            .trusted_since
            .and_then(|since| plan_cache::kept(&self.table, changed, since));
        let planned = kept.map(Ok).unwrap_or_else(|| {
            let planned = mode::plan(&self.table, Some(changed), true);
            if let (Ok(plan), Some(made_at)) = (&planned, self.kept_plan.made_at) {
                plan_cache::keep(&self.table, changed, plan, made_at);
            }
            planned
        });
        match planned {
            Ok(plan) => (
                Planned {
                    error: None,
                    identity_changed: plan.root_identity.identity != mode::identity_of(&self.table),
                    private_tables_exist: private_tables_exist(&plan, &self.names),
                    nothing_changed: changed.is_empty(),
                },
                Some(plan),
            ),
            Err(e) => (
                Planned {
                    error: Some(e.to_string()),
                    identity_changed: false,
                    private_tables_exist: true,
                    nothing_changed: false,
                },
                None,
            ),
        }
    }

    /// Weighs the change rows of `plan` against its sources' rows (cost-based AUTO) and fills
    /// its change sets unless that sends the refresh to FULL; returns the step the decision
    /// then names, with the filled sets.
    fn weigh_changes(
        &self,
        found: &mut Found,
        plan: Option<&Plan>,
    ) -> (Step, Option<FilledDeltas>) {
        let plan = plan.expect("the refresh decision weighed changes it had not planned");
        let execution = self.execution(plan, &mode::identity_of(&self.table));
        let thresholds = crate::gucs::full_fractions();
        let sources =
            crate::change_volume::threshold(found.mode, thresholds).map(|_| source_rows(plan));
        // Counted before anything is copied: a change set that sends the refresh to FULL is
        // not copied in vain (at 10 % of a million rows the copy cost a third of the FULL).
        let why = sources.and_then(|sources| {
            let limit = crate::change_volume::counting_limit(found.mode, sources, thresholds);
            let counted = planned_for_cached_data(|| execution.count_changes(limit));
            crate::change_volume::full_instead(found.mode, counted, sources, thresholds)
        });
        let filled = why
            .is_none()
            .then(|| planned_for_cached_data(|| execution.fill_deltas()));
        found.volume = Some(why);
        match refresh_decision::next(found) {
            Next::Do(step) => (step, filled),
            Next::Find(fact) => panic!("the refresh decision asked for {fact:?} last"),
        }
    }

    fn execution<'p>(&'p self, plan: &'p Plan, identity: &Identity) -> Execution<'p> {
        Execution {
            table: &self.table,
            owner: self.owner,
            plan,
            names: self.names,
            snapshot: self.snapshot,
            params: self.params.clone(),
            root_identity: identity.clone(),
            root_on_citus: crate::capture::citus::table_kind(self.table.relid),
            // SAFETY: a syscache lookup of a relation's kind.
            root_partitioned: unsafe { pg_sys::get_rel_relkind(self.table.relid) }
                == pg_sys::RELKIND_PARTITIONED_TABLE as std::ffi::c_char,
            reads_citus: self.reads_citus,
            root_constrained: std::cell::OnceCell::new(),
        }
    }

    fn outcome(
        &self,
        kind: RefreshKind,
        applied: AppliedChanges,
        reason: Option<String>,
    ) -> Outcome {
        Outcome {
            kind,
            applied,
            covered: self.covered.clone(),
            reason,
        }
    }

    /// FULL by `plan` into the table with identity `identity`, moved to it first if it has
    /// another.
    fn full(&self, plan: &Plan, identity: &Identity, reason: String) -> Outcome {
        let actual = mode::identity_of(&self.table);
        let deleted = if *identity != actual {
            identity_change::reidentify(&self.table, &actual, identity)
        } else {
            0
        };
        let mut applied = self.execution(plan, identity).full();
        applied.deleted += deleted;
        self.outcome(RefreshKind::Full, applied, Some(reason))
    }

    /// Carries out `step`: `plan` is the DIFFERENTIAL plan (if one was made), `filled` its
    /// change sets (if they were filled).
    fn carry_out(self, step: Step, plan: Option<&Plan>, filled: Option<FilledDeltas>) -> Outcome {
        let wrote = !matches!(step, Step::Skip { .. } | Step::NothingToApply);
        let outcome = self.run_step(step, plan, filled);
        // (Only until a refresh has committed: the check reads pg_stats, about 1 ms a call.)
        if wrote && !self.table.populated {
            analyze_if_never_analyzed(&self.table);
        }
        outcome
    }

    fn run_step(&self, step: Step, plan: Option<&Plan>, filled: Option<FilledDeltas>) -> Outcome {
        let table = &self.table;
        match step {
            Step::Skip { why } => {
                self.outcome(RefreshKind::Skipped, AppliedChanges::default(), Some(why))
            }
            Step::Full { why, new_identity } => {
                // The identity follows its sources' keys: looked at again after DDL on them.
                let identity = if new_identity {
                    crate::engine::identity_of(&table.defining_query)
                } else {
                    mode::identity_of(table)
                };
                let plan =
                    Plan::single(&table.defining_query, data_columns(table), identity.clone());
                self.full(&plan, &identity, why)
            }
            // Recompute every stage (building what it keeps), in the identity the plan has now
            // (its sources' keys may have changed, or the table is an older version's).
            Step::Recompute { why } if self.reads_citus => self.recompute_on_citus(why, filled),
            Step::Recompute { why } => self.run_step_plain_recompute(why, filled),
            Step::NothingToApply => {
                self.outcome(RefreshKind::Differential, AppliedChanges::default(), None)
            }
            Step::ApplyChanges => {
                let plan = plan.expect("changes are applied as planned");
                let filled = filled.expect("changes are applied once filled");
                if self.reads_citus {
                    return self.apply_or_recompute_on_citus(plan, filled);
                }
                let applied = planned_for_cached_data(|| {
                    self.execution(plan, &mode::identity_of(table))
                        .differential(filled)
                });
                self.outcome(RefreshKind::Differential, applied, None)
            }
        }
    }
}

impl Refresh<'_> {
    /// Applies the changes of a stream table over Citus tables, or recomputes it when Citus
    /// refuses a statement of the delta (a shape its planner cannot run with the refresh's
    /// temporary tables: 0A000, or 42P01 when it ships one to a worker). Nothing of the attempt
    /// stays (a subtransaction); the reason names Citus's refusal.
    fn apply_or_recompute_on_citus(&self, plan: &Plan, filled: FilledDeltas) -> Outcome {
        let kept = filled.clone();
        let attempt = super::subxact::in_subtransaction(std::panic::AssertUnwindSafe(|| {
            planned_for_cached_data(|| {
                self.execution(plan, &mode::identity_of(&self.table))
                    .differential(filled)
            })
        }));
        match attempt {
            Ok(applied) => self.outcome(RefreshKind::Differential, applied, None),
            Err(caught) if citus_refused(&caught) => {
                let why = format!(
                    "Citus cannot run this query's delta ({}): recomputed",
                    super::subxact::error_message(&caught)
                );
                pgrx::log!("pg_stream_dbt: {}: {why}", self.table.display_name());
                self.run_step(Step::Recompute { why }, None, Some(kept))
            }
            Err(caught) => (*caught).rethrow(),
        }
    }

    /// Recomputes every stage of a stream table over Citus tables, or, when Citus refuses a
    /// statement of the stages (their private tables live on the coordinator), the query alone
    /// into the stream table, as FULL would.
    fn recompute_on_citus(&self, why: String, filled: Option<FilledDeltas>) -> Outcome {
        let kept = filled.clone();
        // Planned outside the attempt: an engine error is not Citus's refusal.
        let plan = self.recompute_plan();
        let attempt = super::subxact::in_subtransaction(std::panic::AssertUnwindSafe(|| {
            if let Some(filled) = filled {
                filled.discard();
            }
            self.full(&plan, &plan.root_identity.identity, why.clone())
        }));
        match attempt {
            Ok(outcome) => outcome,
            Err(caught) if citus_refused(&caught) => {
                if let Some(kept) = kept {
                    kept.discard();
                }
                let why = format!(
                    "{why}; Citus cannot run its stages ({}): the query recomputed alone",
                    super::subxact::error_message(&caught)
                );
                pgrx::log!("pg_stream_dbt: {}: {why}", self.table.display_name());
                self.run_step(
                    Step::Full {
                        why,
                        new_identity: false,
                    },
                    None,
                    None,
                )
            }
            Err(caught) => (*caught).rethrow(),
        }
    }

    /// [`Step::Recompute`] as on one node.
    fn run_step_plain_recompute(&self, why: String, filled: Option<FilledDeltas>) -> Outcome {
        if let Some(filled) = filled {
            filled.discard();
        }
        let plan = self.recompute_plan();
        self.full(&plan, &plan.root_identity.identity, why)
    }

    /// The plan of every stage, to recompute them.
    fn recompute_plan(&self) -> Plan {
        mode::plan(&self.table, None, false).unwrap_or_else(|e| {
            StreamError::NotDifferential {
                name: self.table.display_name(),
                construct: e.to_string(),
            }
            .raise()
        })
    }
}

/// Whether a caught error is Citus refusing a statement of the refresh: a feature it does not
/// support, one of the refresh's own relations (temporary tables, private stage tables) it
/// looked for on a worker, or a statement its planner rewrote into one PostgreSQL cannot plan
/// (a whole-row reference to a relation Citus made a subquery of: "a column definition list is
/// required for functions returning record"; the same statement runs on one node).
fn citus_refused(caught: &pgrx::pg_sys::panic::CaughtError) -> bool {
    use pgrx::pg_sys::panic::CaughtError;
    let report = match caught {
        CaughtError::PostgresError(e) | CaughtError::ErrorReport(e) => e,
        CaughtError::RustPanic { ereport, .. } => ereport,
    };
    match report.sql_error_code() {
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED => true,
        PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE => {
            let message = report.message();
            message.contains("\"__pgs_") || message.contains("\"pgstream_changes.")
        }
        PgSqlErrorCode::ERRCODE_SYNTAX_ERROR => report
            .message()
            .contains("a column definition list is required"),
        _ => false,
    }
}

/// Runs `body` (the statements of a DIFFERENTIAL refresh) with random_page_cost at most 1.1, as
/// for data in memory: a change set probes the stream table, its private tables and its sources
/// by index, a few pages each, which the default 4 prices as if each page came from disk, so the
/// planner hashed the whole stream table in every statement instead (a 1 000-row change to a
/// 100 000-row join: 130 ms, 47 ms with 1.1; 10 %: no slower). FULL refreshes keep the setting.
fn planned_for_cached_data<R>(body: impl FnOnce() -> R) -> R {
    // SAFETY: GUC variables, read in the backend's one thread.
    let (random, sequential) = unsafe { (pg_sys::random_page_cost, pg_sys::seq_page_cost) };
    // (Never below a sequential page: random access is not cheaper than that.)
    let cached = sequential.max(1.1);
    if random <= cached {
        return body();
    }
    crate::settings::with_settings(&[(c"random_page_cost", &cached.to_string())], body)
}

/// Analyzes the stream table once, after the refresh that first fills it: until then the
/// planner has no statistics on its key index's hash expression and guesses hundreds of rows per
/// probe, so it applies changes by a scan of the whole table (a 100-row change to a 100 000-row
/// join took 80 ms instead of 10). Later statistics are autovacuum's, as for any table. A
/// partitioned stream table's partitions are left to it too. Asked by refreshes until one has
/// committed; "never" is read from the row count and the statistics both: a rolled-back ANALYZE
/// keeps its row count (written in place) but not its statistics. SKIP_LOCKED: a refresh does
/// not wait for a VACUUM or ANALYZE of the table (autovacuum analyzes it later instead).
fn analyze_if_never_analyzed(table: &StreamTable) {
    let never = Spi::get_one_with_args::<bool>(
        "SELECT c.relkind = 'r' \
                AND (c.reltuples < 0 \
                     OR (c.reltuples > 0 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stats s \
                                                         WHERE s.schemaname = n.nspname \
                                                           AND s.tablename = c.relname))) \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = $1",
        &[table.relid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if never {
        Spi::run(&format!("ANALYZE (SKIP_LOCKED) {}", table.qualified()))
            .unwrap_or_else(|e| panic!("analyzing {} failed: {e}", table.display_name()));
    }
}

/// The position a refresh covers, read in its snapshot.
pub(super) fn covered_position(snapshot: &RefreshSnapshot) -> Position {
    let row = snapshot.run_text(
        "SELECT snapshot, own_xid::pg_catalog.text, own_seq::pg_catalog.text FROM pgstream._covered_position()",
        &Params::default(),
    );
    Position {
        snapshot: row.first().cloned().flatten().expect("a covered snapshot"),
        own_xid: row.get(1).cloned().flatten(),
        own_seq: row.get(2).cloned().flatten().and_then(|s| s.parse().ok()),
    }
}

/// The planner's estimate of the rows of the sources `plan` reads changes of (0: unknown).
fn source_rows(plan: &Plan) -> f64 {
    let relids: Vec<pg_sys::Oid> = plan
        .deltas
        .iter()
        .map(|input| pg_sys::Oid::from(input.relid))
        .collect();
    Spi::get_one_with_args::<f64>(
        "SELECT COALESCE(pg_catalog.sum(GREATEST(c.reltuples, 0)), 0)::pg_catalog.float8 \
         FROM pg_catalog.pg_class c WHERE c.oid = ANY ($1)",
        &[relids.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(0.0)
}

/// Whether every private table `plan` keeps between refreshes exists with the columns the plan
/// reads (a table made for an earlier plan of the query has others: recomputed, it is made anew).
fn private_tables_exist(plan: &Plan, names: &Names) -> bool {
    let tables = plan.private_tables(names);
    if tables.is_empty() {
        return true;
    }
    let expected = serde_json::Value::Array(
        tables
            .into_iter()
            .map(|(table, columns)| serde_json::json!([table, columns]))
            .collect(),
    );
    crate::kept_plans::one::<bool>(
        "SELECT pg_catalog.bool_and(pg_catalog.to_regclass(e->>0) IS NOT NULL AND (\
             SELECT COALESCE(pg_catalog.jsonb_agg(a.attname::pg_catalog.text ORDER BY a.attnum), '[]') \
             FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid = pg_catalog.to_regclass(e->>0) AND a.attnum > 0 \
               AND NOT a.attisdropped AND a.attname <> '__pgs_row_id') = e->1) \
         FROM pg_catalog.jsonb_array_elements($1::pg_catalog.jsonb) e",
        &[pgrx::JsonB(expected).into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}
