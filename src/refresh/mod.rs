//! Refreshing a stream table: serialization, deciding how (skip, FULL or DIFFERENTIAL), running
//! it in one snapshot, and the catalog bookkeeping.

pub mod executor;
pub mod failure_log;
pub mod give_way;
pub(crate) mod identity_change;
pub mod mode;
mod owner;
mod plan_cache;
pub mod plan_catalog;
mod retype;
pub mod snapshot;
pub mod subxact;
pub mod work_tables;

use crate::capture::verified::{self, Verification};
use crate::catalog::{self, RefreshStats, StreamTable};
use crate::error::StreamError;
use crate::modes::{EffectiveMode, RefreshKind, RefreshMode};
use crate::resolve;
use crate::settings::{self, Restriction};
use executor::AppliedChanges;
use owner::{covered_position, refresh_as_owner, Outcome, RefreshContext};
use pgrx::prelude::*;
use snapshot::RefreshSnapshot;

/// Takes the transaction-scoped advisory lock that serializes refresh, alter and drop of one
/// stream table.
pub fn lock_stream_table(table: &StreamTable) {
    crate::kept_plans::run(
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

/// Who asked for a refresh. Only the scheduler's may be skipped when no source changed (a
/// requested one always recomputes: it also repairs rows someone changed by hand), and only the
/// scheduler's gives way to DDL holding a relation its query reads (see `give_way`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Scheduler,
    Request,
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

/// Refreshes `table` now (as its owner), records what the refresh did, and returns the rows it
/// changed. A failure is recorded as `recording` says and raised.
pub fn refresh_now(
    table: &StreamTable,
    recording: FailureRecording,
    origin: Origin,
) -> AppliedChanges {
    lock_stream_table(table);
    // Another session may have altered or dropped it while we waited for the lock.
    let Some(table) = catalog::find_by_id(table.id) else {
        StreamError::NotFound {
            name: table.display_name(),
        }
        .raise()
    };
    // Like REFRESH MATERIALIZED VIEW: only the owner (or a member of the owning role) may
    // refresh, and the query runs with the owner's privileges, not the caller's.
    let owner = resolve::require_owner(&table);
    let clock = Clock::start();
    // Changes of Citus distributed sources wait beside their shards until a reader takes them;
    // a reader maintained DIFFERENTIAL also holds its Citus sources' writers off meanwhile. Its
    // capture is repaired first (the set-up's locks come before those).
    let reads_citus = crate::capture::citus::reads_citus_tables(table.id);
    let repaired = reads_citus.then(|| {
        let repaired = repair_capture(&table, owner);
        crate::capture::citus::drain_sources(table.id, table.refresh_mode != RefreshMode::Full);
        repaired
    });
    // Nothing to do when no source changed: for a scheduled refresh, and for any refresh of a
    // DIFFERENTIAL stream table (which a recompute would not change either). A manual FULL
    // refresh always recomputes (it also repairs rows someone changed by hand).
    let may_skip =
        origin == Origin::Scheduler || table.effective_mode == Some(EffectiveMode::Differential);
    if may_skip && skipped_unchanged(&table, &clock, reads_citus) {
        return AppliedChanges::default();
    }
    let context = match repaired {
        Some(checked) => RefreshContext {
            may_skip,
            reads_citus,
            ..checked
        },
        // Without Citus sources, capture is checked, and repaired where needed, in the refresh's
        // snapshot (one reading of the change state instead of one before it and one in it).
        None => RefreshContext {
            ddl_pending: false,
            capture_checked: false,
            may_skip,
            capture_repaired: false,
            reads_citus,
        },
    };
    let mode = table.refresh_mode;
    let refreshed = table.clone();
    let outcome = settings::as_user(owner, Restriction::None, move || {
        subxact::in_subtransaction(move || {
            with_query_settings(&refreshed, || {
                if origin == Origin::Scheduler {
                    give_way::lock_query_relations(&refreshed);
                }
                refresh_as_owner(&refreshed, owner, mode, context)
            })
        })
    });
    match outcome {
        Ok(outcome) => {
            catalog::record_success(table.id, &clock.stats(&outcome));
            outcome.applied
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

/// When a refresh started, for its statistics.
struct Clock {
    started_at: TimestampWithTimeZone,
    timer: std::time::Instant,
}

impl Clock {
    fn start() -> Clock {
        // What clock_timestamp() returns, without a statement.
        let now = unsafe { pg_sys::GetCurrentTimestamp() };
        Clock {
            started_at: TimestampWithTimeZone::try_from(now)
                .expect("the current time is a valid timestamp"),
            timer: std::time::Instant::now(),
        }
    }

    /// The statistics of a refresh that ended now with `outcome`.
    fn stats<'a>(&self, outcome: &'a Outcome) -> RefreshStats<'a> {
        RefreshStats {
            kind: outcome.kind,
            reason: outcome.reason.as_deref(),
            covered: outcome.covered.clone(),
            started_at: self.started_at,
            duration_ms: self.timer.elapsed().as_secs_f64() * 1000.0,
            rows_inserted: outcome.applied.inserted,
            rows_updated: outcome.applied.updated,
            rows_deleted: outcome.applied.deleted,
        }
    }
}

/// Records a SKIPPED refresh of `table` and returns true when nothing it reads changed since its
/// last refresh (the cheap path: no snapshot of its own, no planning).
fn skipped_unchanged(table: &StreamTable, clock: &Clock, reads_citus: bool) -> bool {
    let (true, Some(consumed)) = (table.depends_only_on_sources, table.consumed.as_ref()) else {
        return false;
    };
    let verification = if reads_citus {
        Verification::always()
    } else {
        verified::before_refresh(table.id, Some(consumed.snapshot.as_str()))
    };
    let covered = snapshot::connected(|| covered_position(&RefreshSnapshot::take()));
    if !catalog::unchanged_since(table.id, &consumed.snapshot, verification.verify) {
        return false;
    }
    verification.passed(table.id, &covered.snapshot);
    let skipped = Outcome {
        kind: RefreshKind::Skipped,
        applied: AppliedChanges::default(),
        covered,
        reason: Some("no source changed since the last refresh".to_string()),
    };
    catalog::record_success(table.id, &clock.stats(&skipped));
    true
}

/// Puts capture of `table`'s sources that is missing or out of date right before the refresh's
/// snapshot; returns what the refresh must know of it (skipping left to the caller).
fn repair_capture(table: &StreamTable, owner: pg_sys::Oid) -> RefreshContext {
    let consumed = table.consumed.as_ref().map(|p| p.snapshot.as_str());
    let changes = catalog::change_state(table.id, consumed, owner);
    let capture_repaired = repair_capture_of(table, &changes);
    RefreshContext {
        ddl_pending: changes.ddl_pending,
        capture_checked: true,
        may_skip: false,
        capture_repaired,
        reads_citus: false,
    }
}

/// Puts capture of `table`'s sources right when `changes` says it is missing or out of date
/// (and can be); returns whether it did.
fn repair_capture_of(table: &StreamTable, changes: &catalog::ChangeState) -> bool {
    let repaired = (!changes.capture_complete && catalog::capture_repairable(table.id))
        || (table.effective_mode == Some(EffectiveMode::Differential)
            && !changes.row_capture_complete);
    if repaired {
        catalog::sync_capture_of(table.id, &[]);
    }
    repaired
}
