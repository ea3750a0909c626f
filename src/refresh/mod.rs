//! Refreshing a stream table: serialization, the refresh itself, and the catalog bookkeeping.

pub mod differential;
pub mod failure_log;
pub mod full;
pub mod mode;
pub mod plan_catalog;
pub mod subxact;
pub mod work_tables;

use crate::catalog::{self, Position, RefreshStats, StreamTable};
use crate::delta::statements::FullRows;
use crate::delta::{algebraic, Shape};
use crate::error::StreamError;
use crate::modes::RefreshMode;
use crate::resolve;
use crate::settings::{self, Restriction};
use mode::Decision;
use pgrx::prelude::*;
use std::collections::HashSet;

/// First key of the two-key advisory locks the engine takes on a stream table
/// (the second key is the table's oid).
pub const ADVISORY_LOCK_KEY: i32 = 0x7067_7364; // "pgsd"

/// Takes the transaction-scoped advisory lock that serializes refresh, alter and drop of one
/// stream table.
pub fn lock_stream_table(table: &StreamTable) {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock($1, $2::pg_catalog.int4)",
        &[
            ADVISORY_LOCK_KEY.into(),
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

/// Refreshes `table` now: waits for any concurrent refresh of it, recomputes, records the
/// outcome. A failure is recorded as asked and raised again.
/// Whether a refresh may be skipped when no source changed: only the scheduler's are. A
/// manual refresh always recomputes (it also repairs rows someone changed by hand).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Skipping {
    Allowed,
    Never,
}

/// After DDL, what the stored query reads may have changed (a view redefined, a table
/// renamed in): analyze it again and record its sources and capture triggers anew.
fn rederive_sources(table: &StreamTable) {
    let analyzed = crate::query::analyze(&table.display_name(), &table.defining_query);
    crate::query::drop_probe();
    let previous_sources = catalog::source_oids(table.id);
    catalog::update_sources(
        table.id,
        &analyzed.sources,
        analyzed.depends_only_on_sources,
    );
    catalog::sync_capture_of(table.id, &previous_sources);
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
    settings::with_settings(
        &[
            (c"search_path", search_path.as_str()),
            (c"extra_float_digits", "1"),
            // Refresh statements are many and small, their estimates rough (temporary work
            // tables): compiling them costs more than it saves.
            (c"jit", "off"),
            (c"bytea_output", "hex"),
        ],
        body,
    )
}

/// What one refresh did and the position it covered.
struct Outcome {
    kind: &'static str,
    applied: full::AppliedChanges,
    covered: Position,
}

/// Recomputes `table` FULL, identifying rows as `decision` needs.
fn full_refresh(table: &StreamTable, owner: pg_sys::Oid, decision: &Decision) -> Outcome {
    let rows = match decision {
        Decision::Differential(plan) if plan.shape == Shape::Keyed => FullRows::Keyed {
            full_sql: plan.full_sql.as_deref().expect("keyed plans have full SQL"),
        },
        _ => FullRows::Multiset {
            query: &table.defining_query,
        },
    };
    // An algebraic plan's state is recomputed in the same statement (same snapshot), into a
    // work table, and installed as the extension owner.
    let algebraic = match decision {
        Decision::Differential(plan) => plan.algebraic.as_ref(),
        _ => None,
    };
    let state_work = work_tables::transaction_table("state", table);
    let extra_cte = algebraic.map(|plan| {
        differential::run(
            table,
            &format!(
                "CREATE TEMPORARY TABLE {state_work} ON COMMIT DROP AS {} WITH NO DATA",
                plan.state_sql
            ),
        );
        format!(
            "__pgs_state AS (INSERT INTO {state_work} {} RETURNING 1)",
            plan.state_sql
        )
    });
    let (applied, covered) = full::refresh_full(table, owner, &rows, extra_cte.as_deref());
    if algebraic.is_some() {
        // (No NOTICE about the state table that the first install does not find.)
        settings::with_settings(&[(c"client_min_messages", "warning")], || {
            catalog::run_privileged(&algebraic::install_state(table.id, &state_work))
        });
        differential::run(table, &format!("DROP TABLE {state_work}"));
    }
    Outcome {
        kind: "FULL",
        applied,
        covered,
    }
}

/// Refreshes a stream table whose effective mode is DIFFERENTIAL: applies the changes since
/// the last refresh, or recomputes FULL where changes cannot be trusted (first refresh, DDL,
/// TRUNCATE, capture (re)installed).
fn differential_refresh(
    table: &StreamTable,
    owner: pg_sys::Oid,
    mode: RefreshMode,
    decided: Option<Decision>,
    changes: &catalog::ChangeState,
    trust_changes: bool,
) -> Outcome {
    // The plan of every source is needed only to recompute (keyed row ids, algebraic state).
    let full_refresh = |table: &StreamTable, owner: pg_sys::Oid| {
        let decision = decided.clone().unwrap_or_else(|| mode::decide(table, mode));
        full_refresh(table, owner, &decision)
    };
    let Some(consumed) = table.consumed.as_ref().filter(|_| trust_changes) else {
        return full_refresh(table, owner);
    };
    let changed: HashSet<u32> = changes.changed.iter().copied().collect();
    if changed.is_empty() {
        let covered = differential::current_position();
        if !catalog::delta_invalidated(table.id, &consumed.snapshot, &covered.snapshot, &[]) {
            return Outcome {
                kind: "DIFFERENTIAL",
                applied: full::AppliedChanges {
                    inserted: 0,
                    deleted: 0,
                },
                covered,
            };
        }
    }
    let planned: Vec<u32> = changed.iter().copied().collect();
    let plan = match mode::plan(
        &table.defining_query,
        table.depends_only_on_sources,
        Some(&changed),
        Some(table.relid),
    ) {
        Ok(plan) => plan,
        Err(_) => return full_refresh(table, owner),
    };
    // Algebraic state missing (never built): recompute, which builds it.
    if plan.algebraic.is_some()
        && !catalog::private_relation_exists(&algebraic::state_table(table.id))
    {
        return full_refresh(table, owner);
    }
    match differential::refresh_differential(table, owner, &plan, &planned, consumed) {
        Some((applied, covered)) => Outcome {
            kind: "DIFFERENTIAL",
            applied,
            covered,
        },
        None => full_refresh(table, owner),
    }
}

pub fn refresh_now(
    table: &StreamTable,
    recording: FailureRecording,
    skipping: Skipping,
) -> full::AppliedChanges {
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
        skipping == Skipping::Allowed || table.effective_mode.as_deref() == Some("DIFFERENTIAL");
    if let (true, true, Some(consumed)) = (
        may_skip,
        table.depends_only_on_sources,
        consumed_snapshot.as_deref(),
    ) {
        // The position first: a change committed after it is seen by the check below.
        let covered = differential::current_position();
        if catalog::unchanged_since(table.id, consumed) {
            catalog::record_success(
                table.id,
                &RefreshStats {
                    kind: "SKIPPED",
                    covered,
                    started_at,
                    duration_ms: timer.elapsed().as_secs_f64() * 1000.0,
                    rows_inserted: 0,
                    rows_deleted: 0,
                },
            );
            return full::AppliedChanges {
                inserted: 0,
                deleted: 0,
            };
        }
    }
    let changes = catalog::change_state(table.id, consumed_snapshot.as_deref(), owner);
    let ddl_pending = changes.ddl_pending;
    let capture_complete = changes.capture_complete;
    if !capture_complete {
        catalog::sync_capture_of(table.id, &[]);
    }
    let refreshed = table.clone();
    let outcome = settings::as_user(owner, Restriction::None, move || {
        subxact::in_subtransaction(move || {
            with_query_settings(&refreshed, || {
                let mut table = refreshed.clone();
                if ddl_pending {
                    rederive_sources(&table);
                    table = catalog::find_by_id(table.id)
                        .expect("the stream table being refreshed exists");
                }
                // None: DIFFERENTIAL as decided before, not planned yet.
                let decision = match (mode, table.effective_mode.as_deref()) {
                    (RefreshMode::Full, Some("FULL")) => Some(Decision::Full { reason: None }),
                    (RefreshMode::Auto, Some("FULL")) if !ddl_pending => {
                        Some(Decision::Full { reason: None })
                    }
                    (_, Some("DIFFERENTIAL")) if !ddl_pending => None,
                    (_, known) => {
                        let decision = mode::decide_and_record(&table, mode, known.is_none());
                        table = catalog::find_by_id(table.id)
                            .expect("the stream table being refreshed exists");
                        Some(decision)
                    }
                };
                match decision {
                    Some(decision @ Decision::Full { .. }) => {
                        full_refresh(&table, owner, &decision)
                    }
                    decided => {
                        let trust =
                            !ddl_pending && capture_complete && changes.row_capture_complete;
                        if !trust {
                            catalog::sync_capture_of(table.id, &[]);
                        }
                        differential_refresh(&table, owner, mode, decided, &changes, trust)
                    }
                }
            })
        })
    });
    match outcome {
        Ok(Outcome {
            kind,
            applied,
            covered,
        }) => {
            catalog::record_success(
                table.id,
                &RefreshStats {
                    kind,
                    covered,
                    started_at,
                    duration_ms: timer.elapsed().as_secs_f64() * 1000.0,
                    rows_inserted: applied.inserted,
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
