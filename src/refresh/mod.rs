//! Refreshing a stream table: serialization, deciding how (skip, FULL or DIFFERENTIAL), running
//! it in one snapshot, and the catalog bookkeeping.

pub mod executor;
pub mod failure_log;
mod identity_change;
pub mod mode;
pub mod plan_catalog;
mod retype;
pub mod snapshot;
pub mod subxact;
pub mod work_tables;

use crate::catalog::{self, Position, RefreshStats, StreamTable};
use crate::delta::{Identity, Names, Plan};
use crate::error::StreamError;
use crate::modes::{EffectiveMode, RefreshKind, RefreshMode};
use crate::refresh_decision::{self, Fact, Found, Next, Planned, Step};
use crate::resolve;
use crate::settings::{self, Restriction};
use executor::{AppliedChanges, Execution};
use mode::Decision;
use pgrx::prelude::*;
use snapshot::{Params, RefreshSnapshot};
use std::collections::HashSet;

/// Takes the transaction-scoped advisory lock that serializes refresh, alter and drop of one
/// stream table.
pub fn lock_stream_table(table: &StreamTable) {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock($1, $2::pg_catalog.int4)",
        &[
            crate::lock_keys::STREAM_TABLE.into(),
            (table.relid.to_u32() as i32).into(),
        ],
    )
    .unwrap_or_else(|e| panic!("taking the refresh lock failed: {e}"));
}

/// Whether a failure is written to the catalog from outside the current transaction
/// (manual refresh) or not at all (the initial refresh inside create, which aborts as a whole).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FailureRecording {
    OutsideTransaction,
    None,
}

/// Whether a refresh may be skipped when no source changed: only the scheduler's are. A
/// manual refresh always recomputes (it also repairs rows someone changed by hand).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Skipping {
    Allowed,
    Never,
}

/// After DDL, what the stored query reads may have changed (a view redefined, a table
/// renamed in): analyze it again and record its sources, capture triggers and meaning anew.
/// Returns whether what it means changed (DDL elsewhere, or a view re-created the same, does
/// not change it).
fn rederive_sources(table: &StreamTable) -> bool {
    // Sources it did not read before are read from now on: no cleanup may take their change
    // records until this transaction ends.
    catalog::hold_off_change_cleanup();
    let analyzed = crate::query::analyze(&table.display_name(), &table.defining_query);
    crate::query::drop_probe();
    let previous_sources = catalog::source_oids(table.id);
    let changed = table.meaning.as_deref() != Some(analyzed.meaning.as_str());
    // The same meaning, mode and relations and columns read: their capture needs nothing new
    // (nothing later in this refresh syncs it), and readers of the same sources re-analyzing
    // after the same DDL do not wait for each other.
    let capture_unchanged = !changed
        && table.effective_mode.is_some()
        && catalog::records_sources(table.id, &analyzed.sources);
    if capture_unchanged {
        crate::capture::setup::share_setup_locks(previous_sources.iter().copied());
    } else {
        crate::capture::setup::lock_for_setup(
            previous_sources
                .iter()
                .copied()
                .chain(analyzed.sources.iter().map(|s| s.relid)),
        );
    }
    catalog::update_sources(table.id, &analyzed);
    if !capture_unchanged {
        catalog::sync_capture_of(table.id, &previous_sources);
    }
    if changed {
        pgrx::log!(
            "pg_stream_dbt: what the query of {} depends on changed; it is recomputed",
            table.display_name()
        );
    }
    changed
}

/// The settings a defining query is planned and run with: the search_path it was created with
/// (pg_temp last, so no temporary object can stand in for a table), and row text that does
/// not depend on how the session prints floats or bytea.
pub fn with_query_settings<R>(table: &StreamTable, body: impl FnOnce() -> R) -> R {
    let search_path = if table.search_path.is_empty() {
        "pg_temp".to_string()
    } else {
        format!("{}, pg_temp", table.search_path)
    };
    // The settings captured with it (time zone, date styles, locales, ...), so the result
    // never depends on who refreshes; a table without them gets the float digits they default to.
    let pinned: Vec<(std::ffi::CString, String)> =
        crate::query_settings::decode(&table.query_settings)
            .into_iter()
            .filter(|(name, _)| crate::query_settings::PINNED.contains(&name.as_str()))
            .filter_map(|(name, value)| Some((std::ffi::CString::new(name).ok()?, value)))
            .collect();
    let mut all: Vec<(&std::ffi::CStr, &str)> = vec![
        (c"search_path", search_path.as_str()),
        (c"extra_float_digits", "1"),
        // Refresh statements are many and small, their estimates rough (temporary work
        // tables): compiling them costs more than it saves.
        (c"jit", "off"),
        (c"bytea_output", "hex"),
    ];
    all.extend(
        pinned
            .iter()
            .map(|(name, value)| (name.as_c_str(), value.as_str())),
    );
    settings::with_settings(&all, body)
}

/// What one refresh did and the position it covered.
struct Outcome {
    kind: RefreshKind,
    applied: AppliedChanges,
    covered: Position,
    /// Why it was FULL or SKIPPED (None for DIFFERENTIAL).
    reason: Option<String>,
}

/// The stream table's data columns (every column but `__pgs_row_id`), in table order.
pub fn data_columns(table: &StreamTable) -> Vec<String> {
    Spi::connect_mut(|client| {
        client
            .update(
                "SELECT attname::text FROM pg_catalog.pg_attribute \
                 WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped \
                 AND attname <> '__pgs_row_id' ORDER BY attnum",
                None,
                &[table.relid.into()],
            )
            .map(|rows| {
                rows.filter_map(|row| row.get::<String>(1).ok().flatten())
                    .collect()
            })
    })
    .unwrap_or_else(|e| {
        panic!(
            "reading the columns of {} failed: {e}",
            table.display_name()
        )
    })
}

/// The position a refresh covers, read in its snapshot.
fn covered_position(snapshot: &RefreshSnapshot) -> Position {
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

/// Whether every private table `plan` keeps between refreshes exists.
fn private_tables_exist(plan: &Plan, names: &Names) -> bool {
    let tables = plan.private_tables(names);
    tables.is_empty()
        || Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.bool_and(pg_catalog.to_regclass(t) IS NOT NULL) FROM pg_catalog.unnest($1::pg_catalog.text[]) t",
            &[tables.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// What `refresh_now` found out before the refresh's own snapshot.
#[derive(Clone, Copy)]
struct RefreshContext {
    /// DDL happened since the last refresh.
    ddl_pending: bool,
    /// A refresh with nothing to do may be skipped.
    may_skip: bool,
    /// Capture objects of a source were missing or out of date and were put right just now:
    /// changes made meanwhile may not have been recorded.
    capture_repaired: bool,
}

/// Refreshes `table` in the current (sub)transaction as its owner: decides, runs, returns.
fn refresh_as_owner(
    table: &StreamTable,
    owner: pg_sys::Oid,
    mode: RefreshMode,
    context: RefreshContext,
) -> Outcome {
    let mut table = table.clone();
    let names = Names { id: table.id };
    // Taken first: DDL committed before it is in the catalogs read below, DDL after it is the
    // next refresh's.
    let snapshot = RefreshSnapshot::take();
    let params = Params {
        snapshot: table.consumed.as_ref().map(|p| p.snapshot.clone()),
        own_xid: table.consumed.as_ref().and_then(|p| p.own_xid.clone()),
        own_seq: table.consumed.as_ref().and_then(|p| p.own_seq),
    };
    snapshot::connected(|| {
        let first_state = catalog::change_state_in(&snapshot, &params, table.id, owner);
        let after_ddl;
        let (snapshot, state, meaning_changed) = if context.ddl_pending || first_state.ddl_pending {
            let changed = rederive_sources(&table);
            table = catalog::find_by_id(table.id).expect("the stream table being refreshed exists");
            if changed {
                retype::follow_query_types(&table);
            }
            // Capture objects may have changed (a buffer widened, made or rebuilt: its ALTER
            // waited for every transaction writing the old shape). Read in a snapshot taken
            // now, in which those writes are committed: none is left for a later refresh to
            // read in a shape it was not written in.
            after_ddl = RefreshSnapshot::take();
            let state = catalog::change_state_in(&after_ddl, &params, table.id, owner);
            (&after_ddl, state, changed)
        } else {
            (&snapshot, first_state, false)
        };
        let covered = covered_position(snapshot);
        // Only DDL since its last refresh (read again once the effective mode is decided: a
        // changed one clears the covered position).
        let only_ddl = |table: &StreamTable| {
            table.consumed.is_some()
                && table.depends_only_on_sources
                && state.changed.is_empty()
                && !state.truncated
                && state.capture_complete
        };
        let mut found = Found {
            mode,
            recorded: table.effective_mode,
            meaning_changed,
            may_skip: context.may_skip,
            only_ddl: only_ddl(&table),
            trust: crate::refresh_reason::ChangeTrust {
                covered_before: table.consumed.is_some(),
                meaning_changed,
                truncated: state.truncated,
                capture_complete: state.capture_complete && !context.capture_repaired,
                row_capture_complete: state.row_capture_complete && !context.capture_repaired,
            },
            decided: None,
            planned: None,
            volume: None,
        };
        let changed: HashSet<u32> = state.changed.iter().copied().collect();
        // The facts the decision asks for, found out in its order; the change volume last (it
        // fills the change sets, which the step then applies or discards).
        let mut differential_plan = None;
        let decided = loop {
            match refresh_decision::next(&found) {
                Next::Do(step) => break Some(step),
                Next::Find(Fact::ChangeVolume) => break None,
                Next::Find(Fact::EffectiveMode) => {
                    let decision =
                        mode::decide_and_record(&table, mode, table.effective_mode.is_none());
                    table = catalog::find_by_id(table.id)
                        .expect("the stream table being refreshed exists");
                    found.only_ddl = only_ddl(&table);
                    found.trust.covered_before = table.consumed.is_some();
                    found.decided = Some(match decision {
                        Decision::Full { reason } => (EffectiveMode::Full, reason),
                        Decision::Differential => (EffectiveMode::Differential, None),
                    });
                }
                Next::Find(Fact::Plan) => {
                    found.planned = Some(match mode::plan(&table, Some(&changed), true) {
                        Ok(plan) => {
                            let planned = Planned {
                                error: None,
                                identity_changed: plan.root_identity.identity
                                    != mode::identity_of(&table),
                                private_tables_exist: private_tables_exist(&plan, &names),
                                nothing_changed: changed.is_empty(),
                            };
                            differential_plan = Some(plan);
                            planned
                        }
                        Err(e) => Planned {
                            error: Some(e.to_string()),
                            identity_changed: false,
                            private_tables_exist: true,
                            nothing_changed: false,
                        },
                    });
                }
            }
        };
        let table = &table;
        let actual = mode::identity_of(table);
        fn execution<'a>(
            table: &'a StreamTable,
            owner: pg_sys::Oid,
            plan: &'a Plan,
            names: Names,
            snapshot: &'a RefreshSnapshot,
            params: &Params,
            root_identity: &Identity,
        ) -> Execution<'a> {
            Execution {
                table,
                owner,
                plan,
                names,
                snapshot,
                params: params.clone(),
                root_identity: root_identity.clone(),
            }
        }
        // The change sets, filled to weigh them (cost-based AUTO) before the step is decided.
        let (step, filled) = match (decided, &differential_plan) {
            (Some(step), _) => (step, None),
            (None, Some(plan)) => {
                let filled =
                    execution(table, owner, plan, names, snapshot, &params, &actual).fill_deltas();
                let thresholds = crate::gucs::full_fractions();
                found.volume = Some(crate::change_volume::threshold(mode, thresholds).and_then(
                    |_| {
                        crate::change_volume::full_instead(
                            mode,
                            filled.rows,
                            source_rows(plan),
                            thresholds,
                        )
                    },
                ));
                match refresh_decision::next(&found) {
                    Next::Do(step) => (step, Some(filled)),
                    Next::Find(fact) => panic!("the refresh decision asked for {fact:?} last"),
                }
            }
            (None, None) => panic!("the refresh decision weighed changes it had not planned"),
        };
        // FULL into the table with identity `identity`, moved to it first if it has another.
        let full = |plan: &Plan, identity: &Identity, reason: String| {
            let deleted = if *identity != actual {
                identity_change::reidentify(table, &actual, identity)
            } else {
                0
            };
            let mut applied =
                execution(table, owner, plan, names, snapshot, &params, identity).full();
            applied.deleted += deleted;
            Outcome {
                kind: RefreshKind::Full,
                applied,
                covered: covered.clone(),
                reason: Some(reason),
            }
        };
        let differential = |applied: AppliedChanges| Outcome {
            kind: RefreshKind::Differential,
            applied,
            covered: covered.clone(),
            reason: None,
        };
        match step {
            Step::Skip { why } => Outcome {
                kind: RefreshKind::Skipped,
                applied: AppliedChanges::default(),
                covered: covered.clone(),
                reason: Some(why),
            },
            Step::Full { why, new_identity } => {
                // The identity follows its sources' keys: looked at again after DDL on them.
                let identity = if new_identity {
                    crate::engine::identity_of(&table.defining_query)
                } else {
                    actual.clone()
                };
                let plan =
                    Plan::single(&table.defining_query, data_columns(table), identity.clone());
                full(&plan, &identity, why)
            }
            // Recompute every stage (building what it keeps), in the identity the plan has now
            // (its sources' keys may have changed, or the table is an older version's).
            Step::Recompute { why } => {
                if let Some(filled) = filled {
                    filled.discard();
                }
                let plan = mode::plan(table, None, false).unwrap_or_else(|e| {
                    StreamError::NotDifferential {
                        name: table.display_name(),
                        construct: e.to_string(),
                    }
                    .raise()
                });
                full(&plan, &plan.root_identity.identity, why)
            }
            Step::NothingToApply => differential(AppliedChanges::default()),
            Step::ApplyChanges => {
                let plan = differential_plan
                    .as_ref()
                    .expect("changes are applied as planned");
                let filled = filled.expect("changes are applied once filled");
                differential(
                    execution(table, owner, plan, names, snapshot, &params, &actual)
                        .differential(filled),
                )
            }
        }
    })
}

pub fn refresh_now(
    table: &StreamTable,
    recording: FailureRecording,
    skipping: Skipping,
) -> AppliedChanges {
    lock_stream_table(table);
    // Another session may have altered or dropped it while we waited for the lock.
    let Some(table) = catalog::find_by_id(table.id) else {
        StreamError::NotFound {
            name: table.display_name(),
        }
        .raise()
    };
    let mode = RefreshMode::parse(&table.refresh_mode).unwrap_or(RefreshMode::Full);
    // Like REFRESH MATERIALIZED VIEW: only the owner (or a member of the owning role) may
    // refresh, and the query runs with the owner's privileges, not the caller's.
    resolve::require_owner(&table);
    let owner = resolve::owner_of(&table);
    let started_at = Spi::get_one::<TimestampWithTimeZone>("SELECT pg_catalog.clock_timestamp()")
        .ok()
        .flatten()
        .expect("clock_timestamp() returned NULL");
    let timer = std::time::Instant::now();
    let consumed_snapshot = table.consumed.as_ref().map(|p| p.snapshot.clone());
    // Nothing to do when no source changed: for a scheduled refresh, and for any refresh of a
    // DIFFERENTIAL stream table (which a recompute would not change either). A manual FULL
    // refresh always recomputes (it also repairs rows someone changed by hand).
    let may_skip =
        skipping == Skipping::Allowed || table.effective_mode == Some(EffectiveMode::Differential);
    if let (true, true, Some(consumed)) = (
        may_skip,
        table.depends_only_on_sources,
        consumed_snapshot.as_deref(),
    ) {
        let covered = snapshot::connected(|| covered_position(&RefreshSnapshot::take()));
        if catalog::unchanged_since(table.id, consumed) {
            catalog::record_success(
                table.id,
                &RefreshStats {
                    kind: RefreshKind::Skipped,
                    reason: Some("no source changed since the last refresh"),
                    covered,
                    started_at,
                    duration_ms: timer.elapsed().as_secs_f64() * 1000.0,
                    rows_inserted: 0,
                    rows_updated: 0,
                    rows_deleted: 0,
                },
            );
            return AppliedChanges::default();
        }
    }
    // Capture that is missing or out of date is put right before the refresh's snapshot.
    let changes = catalog::change_state(table.id, consumed_snapshot.as_deref(), owner);
    let capture_repaired = (!changes.capture_complete && catalog::capture_repairable(table.id))
        || (table.effective_mode == Some(EffectiveMode::Differential)
            && !changes.row_capture_complete);
    if capture_repaired {
        catalog::sync_capture_of(table.id, &[]);
    }
    let ddl_pending = changes.ddl_pending;
    let refreshed = table.clone();
    let outcome = settings::as_user(owner, Restriction::None, move || {
        subxact::in_subtransaction(move || {
            with_query_settings(&refreshed, || {
                refresh_as_owner(
                    &refreshed,
                    owner,
                    mode,
                    RefreshContext {
                        ddl_pending,
                        may_skip,
                        capture_repaired,
                    },
                )
            })
        })
    });
    match outcome {
        Ok(Outcome {
            kind,
            applied,
            covered,
            reason,
        }) => {
            catalog::record_success(
                table.id,
                &RefreshStats {
                    kind,
                    reason: reason.as_deref(),
                    covered,
                    started_at,
                    duration_ms: timer.elapsed().as_secs_f64() * 1000.0,
                    rows_inserted: applied.inserted,
                    rows_updated: applied.updated,
                    rows_deleted: applied.deleted,
                },
            );
            applied
        }
        Err(caught) => {
            if recording == FailureRecording::OutsideTransaction {
                let message = subxact::error_message(&caught);
                failure_log::record_failure_outside_transaction(table.id, &message);
            }
            (*caught).rethrow()
        }
    }
}
