//! What refreshes did: a success's statistics and covered position, a failure's error streak
//! and suspension (columns of pgstream.pgs_stream_tables).

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

use super::{as_catalog_owner, run, Position};
use crate::modes::RefreshKind;
use crate::settings;

/// What one successful refresh did.
pub struct RefreshStats<'a> {
    /// Recomputed, changes applied, or skipped (nothing to do).
    pub kind: RefreshKind,
    /// Why it was FULL or SKIPPED.
    pub reason: Option<&'a str>,
    /// The source changes this refresh covered.
    pub covered: Position,
    pub started_at: TimestampWithTimeZone,
    pub duration_ms: f64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_deleted: i64,
}

/// Whether the catalog has the column `last_refresh_reason` (0.2.0 on; a database keeps 0.1.0's
/// catalog until ALTER EXTENSION pg_stream_dbt UPDATE, and refreshes must go on meanwhile).
fn has_reason_column() -> bool {
    unsafe {
        let namespace = pg_sys::get_namespace_oid(c"pgstream".as_ptr(), true);
        let relid = pg_sys::get_relname_relid(c"pgs_stream_tables".as_ptr(), namespace);
        relid != pg_sys::InvalidOid
            && pg_sys::get_attnum(relid, c"last_refresh_reason".as_ptr()) != 0
    }
}

/// The catalog update of a successful refresh: `$1` the id, then its figures and covered
/// position; `$11` the reason, in a catalog that has its column.
macro_rules! record_success_sql {
    ($reason:literal) => {
        concat!(
            "UPDATE pgstream.pgs_stream_tables SET \
             last_refresh_at = $2, last_refresh_duration_ms = $3, \
             last_rows_inserted = $4, last_rows_deleted = $5, last_rows_updated = $10, \
             total_refreshes = total_refreshes + 1, \
             total_refresh_time_ms = total_refresh_time_ms + $3, \
             consecutive_errors = 0, last_refresh_kind = $6, consumed_snapshot = $7::pg_snapshot, \
             consumed_own_xid = $8::xid8, consumed_own_seq = $9",
            $reason,
            " WHERE pgs_id = $1"
        )
    };
}
const RECORD_SUCCESS: &str = record_success_sql!("");
const RECORD_SUCCESS_WITH_REASON: &str = record_success_sql!(", last_refresh_reason = $11");

/// Records a successful refresh and clears the error streak.
pub fn record_success(id: i64, stats: &RefreshStats) {
    // Until ALTER EXTENSION ... UPDATE, a database may still have 0.1.0's catalog (no reason).
    let with_reason = has_reason_column();
    let args: [DatumWithOid; 11] = [
        id.into(),
        stats.started_at.into(),
        stats.duration_ms.into(),
        stats.rows_inserted.into(),
        stats.rows_deleted.into(),
        stats.kind.as_str().into(),
        stats.covered.snapshot.as_str().into(),
        stats.covered.own_xid.as_deref().into(),
        stats.covered.own_seq.into(),
        stats.rows_updated.into(),
        stats.reason.into(),
    ];
    as_catalog_owner(|| {
        let cleanup = if stats.kind == RefreshKind::Skipped {
            Cleanup::Nothing
        } else {
            cleanup_scope(id)
        };
        let (sql, args) = if with_reason {
            (RECORD_SUCCESS_WITH_REASON, &args[..])
        } else {
            (RECORD_SUCCESS, &args[..10])
        };
        crate::kept_plans::run(sql, args)
            .unwrap_or_else(|e| panic!("updating the pg_stream_dbt catalog failed: {e}"));
        forget_covered_changes(id, cleanup);
    })
}

/// What moving a stream table past its covered position may free.
enum Cleanup {
    /// Nothing: no source has a change this one had not covered and every other DIFFERENTIAL
    /// reader has, nor one every reader has covered and an earlier cleanup left.
    Nothing,
    /// The records and rows of these sources (the others' would be read in vain).
    Sources(Vec<i64>),
    /// Everything it reads: it was never refreshed, or reads no table (it must cover DDL
    /// records too), or its sources' cleanup cannot be told apart (SQL older than 0.4.0).
    All,
}

/// What moving stream table `id` past its covered position (read before it moves) may free:
/// the sources with a change record (one per writing transaction) this one had not covered and
/// every other DIFFERENTIAL reader of the source has. Where there is none, what every reader
/// has covered does not grow, and the cleanup, which reads every record and buffered row of
/// the source, would delete nothing: a reader refreshed every minute beside one refreshed
/// every hour paid for the whole hour's backlog on every refresh, and each of several readers
/// refreshed in turn paid for the others' backlog but the last's. The last reader to cover a
/// change frees it. A record every reader (of any mode) has covered already is one a cleanup
/// missed (two last readers committing at once each saw the other's old position; a cleanup
/// that found a stream table being created; the lagging reader dropped): any reader's next
/// refresh cleans it up. (A change only partly covered, by a refresh inside its own
/// transaction, counts as not covered: it goes with a later cleanup.)
fn cleanup_scope(id: i64) -> Cleanup {
    let row = crate::kept_plans::query(
            "SELECT s.consumed_snapshot IS NULL \
                    OR NOT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies t \
                                   WHERE t.pgs_id = s.pgs_id AND t.source_kind <> 'view'), \
                    ARRAY(SELECT mine.source_relid::pg_catalog.int8 FROM pgstream.pgs_dependencies mine \
                          WHERE mine.pgs_id = s.pgs_id AND mine.source_kind <> 'view' \
                            AND (EXISTS ( \
                                   SELECT 1 FROM pgstream_changes.statements c \
                                   WHERE c.source_relid = mine.source_relid \
                                     AND c.xid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin(s.consumed_snapshot) \
                                     AND NOT pg_catalog.pg_visible_in_snapshot(c.xid, s.consumed_snapshot) \
                                     AND NOT EXISTS ( \
                                       SELECT 1 FROM pgstream.pgs_dependencies d \
                                       JOIN pgstream.pgs_stream_tables r ON r.pgs_id = d.pgs_id \
                                       WHERE d.source_relid = c.source_relid AND r.pgs_id <> s.pgs_id \
                                         AND r.effective_mode = 'DIFFERENTIAL' \
                                         AND (r.consumed_snapshot IS NULL \
                                              OR NOT pg_catalog.pg_visible_in_snapshot(c.xid, r.consumed_snapshot)))) \
                                 OR EXISTS ( \
                                   SELECT 1 FROM pgstream_changes.statements c \
                                   WHERE c.source_relid = mine.source_relid \
                                     AND NOT EXISTS ( \
                                       SELECT 1 FROM pgstream.pgs_dependencies d \
                                       JOIN pgstream.pgs_stream_tables r ON r.pgs_id = d.pgs_id \
                                       WHERE d.source_relid = c.source_relid \
                                         AND (r.consumed_snapshot IS NULL \
                                              OR NOT pg_catalog.pg_visible_in_snapshot(c.xid, r.consumed_snapshot)))))), \
                    pg_catalog.to_regprocedure('pgstream._forget_covered(bigint, oid[])') IS NOT NULL \
             FROM pgstream.pgs_stream_tables s WHERE s.pgs_id = $1",
        &[id.into()],
        |rows| {
            let row = rows.first();
            Ok((
                row.get::<bool>(1)?.unwrap_or(true),
                row.get::<Vec<i64>>(2)?.unwrap_or_default(),
                row.get::<bool>(3)?.unwrap_or(false),
            ))
        },
    );
    match row {
        Err(_) | Ok((true, _, _)) => Cleanup::All,
        Ok((false, sources, _)) if sources.is_empty() => Cleanup::Nothing,
        Ok((false, sources, true)) => Cleanup::Sources(sources),
        Ok((false, _, false)) => Cleanup::All,
    }
}

/// Deletes the change records of stream table `id`'s sources (those `scope` names) that every
/// reader of those sources has covered, and the DDL records every stream table has covered.
fn forget_covered_changes(id: i64, scope: Cleanup) {
    match scope {
        Cleanup::Nothing => {}
        Cleanup::All => run("SELECT pgstream._forget_covered($1)", &[id.into()]),
        Cleanup::Sources(sources) => run(
            "SELECT pgstream._forget_covered($1, $2::pg_catalog.int8[]::pg_catalog.oid[])",
            &[id.into(), sources.into()],
        ),
    }
}

/// How a failed refresh counts towards suspending its stream table.
#[derive(Clone, Copy)]
pub struct Suspension {
    /// Failures in a row that suspend it.
    pub max_consecutive_errors: i32,
    /// Seconds after its last success (or creation) during which this failure does not suspend
    /// it (0: it may): a relation it reads was missing, as during a deployment.
    pub grace_seconds: i32,
}

/// Records a failed refresh of stream table `id` from a transaction of its own (the
/// scheduler's, or the error-recorder worker's); suspends the table once it has failed
/// `max_consecutive_errors` times in a row, outside the grace period. Returns whether this
/// failure suspended it, or `None` when the row is locked by another transaction (the failing
/// one) or gone.
pub fn record_failure(id: i64, message: &str, suspension: Suspension) -> Option<bool> {
    settings::with_settings(&[(c"search_path", "pg_catalog, pg_temp")], || {
        Spi::get_one_with_args::<bool>(
            "UPDATE pgstream.pgs_stream_tables s SET \
         total_refreshes = s.total_refreshes + 1, \
         failed_refreshes = s.failed_refreshes + 1, \
         consecutive_errors = s.consecutive_errors + 1, \
         last_error = $2, last_error_at = pg_catalog.clock_timestamp(), \
         status = CASE WHEN s.consecutive_errors + 1 >= $3 \
                            AND pg_catalog.clock_timestamp() - COALESCE(s.last_refresh_at, s.created_at) \
                                >= pg_catalog.make_interval(secs => $4) \
                       THEN 'SUSPENDED' ELSE s.status END \
         FROM (SELECT pgs_id, status AS old_status FROM pgstream.pgs_stream_tables \
               WHERE pgs_id = $1 FOR UPDATE SKIP LOCKED) locked \
         WHERE s.pgs_id = locked.pgs_id \
         RETURNING s.status = 'SUSPENDED' AND locked.old_status <> 'SUSPENDED'",
            &[
                id.into(),
                message.into(),
                suspension.max_consecutive_errors.into(),
                f64::from(suspension.grace_seconds).into(),
            ],
        )
        .ok()
        .flatten()
    })
}
