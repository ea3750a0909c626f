//! Refreshing a stream table: serialization, the refresh itself, and the catalog bookkeeping.

pub mod failure_log;
pub mod full;
pub mod subxact;

use crate::catalog::{self, RefreshStats, StreamTable};
use crate::error::StreamError;
use crate::modes::RefreshMode;
use crate::resolve;
use crate::settings::{self, Restriction};
use pgrx::prelude::*;

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

/// `pg_current_snapshot()` as text, with this transaction counted as still running: its
/// own changes (made before or after the refresh) must never count as covered.
const COVERED_SNAPSHOT_SQL: &str = "\
    SELECT CASE WHEN me IS NULL THEN snap::text ELSE format('%s:%s:%s', \
               LEAST(pg_catalog.pg_snapshot_xmin(snap)::text::int8, me::text::int8), \
               GREATEST(pg_catalog.pg_snapshot_xmax(snap)::text::int8, me::text::int8 + 1), \
               (SELECT string_agg(x::text, ',' ORDER BY x) FROM \
                    (SELECT x::text::int8 AS x FROM pg_catalog.pg_snapshot_xip(snap) x \
                     UNION SELECT me::text::int8) ids)) END \
    FROM (SELECT pg_catalog.pg_current_snapshot() AS snap, \
                 pg_catalog.pg_current_xact_id_if_assigned() AS me) s";

/// After DDL, what the stored query reads may have changed (a view redefined, a table
/// renamed in): analyze it again and record its sources and capture triggers anew.
fn rederive_sources(table: &StreamTable) {
    let analyzed = crate::query::analyze(&table.display_name(), &table.defining_query);
    crate::query::drop_probe();
    catalog::update_sources(
        table.id,
        &analyzed.sources,
        analyzed.depends_only_on_sources,
    );
    catalog::sync_capture();
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
    if mode != RefreshMode::Full {
        StreamError::ModeNotAvailable {
            mode: mode.to_string(),
        }
        .raise();
    }
    // Like REFRESH MATERIALIZED VIEW: only the owner (or a member of the owning role) may
    // refresh, and the query runs with the owner's privileges, not the caller's.
    resolve::require_owner(&table);
    let owner = resolve::owner_of(&table);
    let started_at = Spi::get_one::<TimestampWithTimeZone>("SELECT pg_catalog.clock_timestamp()")
        .ok()
        .flatten()
        .expect("clock_timestamp() returned NULL");
    let timer = std::time::Instant::now();
    // Every committed change to a source outside this snapshot is seen by the recompute
    // below (which reads with a snapshot taken later), so the next refresh starts from it.
    let covered_snapshot = Spi::get_one::<String>(COVERED_SNAPSHOT_SQL)
        .ok()
        .flatten()
        .expect("pg_current_snapshot() returned NULL");
    let ddl_pending = catalog::ddl_since(table.consumed_snapshot.as_deref());
    if !catalog::capture_complete(table.id) {
        catalog::sync_capture();
    } else if skipping == Skipping::Allowed && table.depends_only_on_sources && !ddl_pending {
        if let Some(consumed) = &table.consumed_snapshot {
            if !catalog::sources_changed_since(table.id, consumed) {
                let skipped = full::AppliedChanges {
                    inserted: 0,
                    deleted: 0,
                };
                catalog::record_success(
                    table.id,
                    &RefreshStats {
                        kind: "SKIPPED",
                        covered_snapshot,
                        started_at,
                        duration_ms: timer.elapsed().as_secs_f64() * 1000.0,
                        rows_inserted: 0,
                        rows_deleted: 0,
                    },
                );
                return skipped;
            }
        }
    }
    let refreshed = table.clone();
    // The query means what it meant at create (its search_path, with pg_temp last so no
    // temporary object can stand in for a table), and row ids do not depend on how this
    // session prints floats or bytea.
    let search_path = if table.search_path.is_empty() {
        "pg_temp".to_string()
    } else {
        format!("{}, pg_temp", table.search_path)
    };
    let outcome = settings::as_user(owner, Restriction::None, move || {
        subxact::in_subtransaction(move || {
            settings::with_settings(
                &[
                    (c"search_path", search_path.as_str()),
                    (c"extra_float_digits", "1"),
                    (c"bytea_output", "hex"),
                ],
                || {
                    if ddl_pending {
                        rederive_sources(&refreshed);
                    }
                    full::refresh_full(&refreshed, owner)
                },
            )
        })
    });
    match outcome {
        Ok(applied) => {
            catalog::record_success(
                table.id,
                &RefreshStats {
                    kind: "FULL",
                    covered_snapshot,
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
