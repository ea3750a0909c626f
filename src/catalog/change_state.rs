//! The change records of pgstream_changes as a refresh reads them: what changed since a
//! position, and the DDL and cleanup records the engine writes itself.

use pgrx::prelude::*;

use super::{as_catalog_owner, run};

/// What a refresh needs to know about its sources' changes since the last one.
pub struct ChangeState {
    /// DDL ran since (or there was no last refresh): sources must be derived anew.
    pub ddl_pending: bool,
    /// Every source has its statement trigger.
    pub capture_complete: bool,
    /// Every table source has a current row capture the owner may read.
    pub row_capture_complete: bool,
    /// A source was truncated.
    pub truncated: bool,
    /// The sources with changes since (empty when never refreshed).
    pub changed: Vec<u32>,
}

/// The change state of stream table `id` since `snapshot` (None: never refreshed), for a
/// refresh running as `owner`.
pub fn change_state(id: i64, snapshot: Option<&str>, owner: pg_sys::Oid) -> ChangeState {
    Spi::connect_mut(|client| {
        let row = client
            .update(
                "SELECT ddl_pending, capture_complete, row_capture_complete, changed::int8[], truncated \
                 FROM pgstream._change_state($1, $2::pg_catalog.pg_snapshot, $3)",
                None,
                &[id.into(), snapshot.into(), owner.into()],
            )?
            .first();
        Ok::<_, pgrx::spi::Error>(ChangeState {
            ddl_pending: row.get::<bool>(1)?.unwrap_or(true),
            capture_complete: row.get::<bool>(2)?.unwrap_or(false),
            row_capture_complete: row.get::<bool>(3)?.unwrap_or(false),
            changed: row
                .get::<Vec<i64>>(4)?
                .unwrap_or_default()
                .into_iter()
                .map(|r| r as u32)
                .collect(),
            truncated: row.get::<bool>(5)?.unwrap_or(true),
        })
    })
    .unwrap_or_else(|e| panic!("reading the change state failed: {e}"))
}

/// The change state read in a refresh's snapshot (`$1`: the snapshot last covered); capture
/// objects looked at only when `verify` (see [`crate::capture::verified`]).
pub fn change_state_in(
    snapshot: &crate::refresh::snapshot::RefreshSnapshot,
    params: &crate::refresh::snapshot::Params,
    id: i64,
    owner: pg_sys::Oid,
    verify: bool,
) -> ChangeState {
    // (Verifying, without the argument: a database not updated to 0.4.0 yet has no `verify`.)
    let row = snapshot.run_text(
        &format!(
            "SELECT ddl_pending, capture_complete, row_capture_complete, truncated, changed::pg_catalog.text \
             FROM pgstream._change_state({id}, $1::pg_catalog.pg_snapshot, {}::pg_catalog.oid{})",
            owner.to_u32(),
            if verify { "" } else { ", false" }
        ),
        params,
    );
    let flag = |i: usize, default: bool| match row.get(i).cloned().flatten().as_deref() {
        Some("t") => true,
        Some("f") => false,
        _ => default,
    };
    let changed = row
        .get(4)
        .cloned()
        .flatten()
        .unwrap_or_default()
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|s| s.trim().parse::<u32>().ok())
        .collect();
    ChangeState {
        ddl_pending: flag(0, true),
        capture_complete: flag(1, false),
        row_capture_complete: flag(2, false),
        truncated: flag(3, true),
        changed,
    }
}

/// Whether nothing stream table `id` reads changed since `snapshot` (no change record, no DDL,
/// every source captured: looked at only when `verify`).
pub fn unchanged_since(id: i64, snapshot: &str, verify: bool) -> bool {
    // (Verifying, without the argument: a database not updated to 0.4.0 yet has no `verify`.)
    let sql = if verify {
        "SELECT pgstream._unchanged_since($1, $2::pg_catalog.pg_snapshot)"
    } else {
        "SELECT pgstream._unchanged_since($1, $2::pg_catalog.pg_snapshot, false)"
    };
    crate::kept_plans::one::<bool>(sql, &[id.into(), snapshot.into()])
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Records DDL the engine ran itself that still changes what other stream tables' queries
/// mean (their next refresh analyzes its query again), like the DDL event trigger does.
pub fn record_ddl(tag: &str) {
    as_catalog_owner(|| {
        run(
            "INSERT INTO pgstream_changes.statements (source_relid, operation) VALUES (0, $1) \
             ON CONFLICT DO NOTHING",
            &[tag.into()],
        )
    })
}

/// Taken by create and redefine: no change-record cleanup may run until this transaction ends
/// (the stream table reads sources other transactions cannot see it reading yet).
pub fn hold_off_change_cleanup() {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock_shared($1, 0)",
        &[crate::lock_keys::CHANGE_CLEANUP.into()],
    )
    .unwrap_or_else(|e| panic!("taking the capture lock failed: {e}"));
}
