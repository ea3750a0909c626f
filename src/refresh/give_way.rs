//! A scheduled refresh gives way to DDL: it locks what its query reads before anything else,
//! waiting less than `deadlock_timeout`, and is postponed to a later tick when DDL holds one.

use crate::catalog::StreamTable;
use crate::error::StreamError;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// Set when this backend's refresh gave way, until the scheduler reads it.
    static GAVE_WAY: Cell<bool> = const { Cell::new(false) };
}

/// Whether the refresh that just failed in this backend gave way to DDL (and forgets it): only
/// such a failure is put off to the next tick unrecorded; any other (a `lock_timeout` set on
/// the database, say) is recorded as a failure.
pub fn gave_way() -> bool {
    GAVE_WAY.with(|g| g.replace(false))
}

/// How long a scheduled refresh waits for a lock on a relation its query reads: half of
/// `deadlock_timeout`, so that it stops waiting before a DDL session waiting for it (dbt
/// replacing a view: the old one renamed away, then dropped CASCADE with the views on it)
/// runs its deadlock check and is the one aborted.
pub fn lock_wait_ms() -> i32 {
    (unsafe { pg_sys::DeadlockTimeout } / 2).max(1)
}

/// Takes the locks the refresh's statements take on the relations `table`'s query reads (views
/// expanded, each view's relations too), as analyzing the query does, waiting at most
/// [`lock_wait_ms`] for each. A lock held longer by another session raises LOCK_NOT_AVAILABLE
/// naming the stream table, before the refresh has read any of its sources or written
/// anything. (Partitions and relations read inside functions are locked later, when a
/// statement reads them, as is the engine's own; so is what a Citus source's capture check
/// locks before this.)
pub fn lock_query_relations(table: &StreamTable) {
    let wait = lock_wait_ms().to_string();
    let text = std::ffi::CString::new(table.defining_query.as_str())
        .expect("a stored query has no NUL byte");
    let locked = PgTryBuilder::new(|| {
        crate::settings::with_settings(&[(c"lock_timeout", wait.as_str())], || {
            // Its own SPI connection; the plan is only analyzed (and so locked), never planned.
            Spi::connect(|_client| unsafe {
                let plan = pg_sys::SPI_prepare(text.as_ptr(), 0, std::ptr::null_mut());
                if !plan.is_null() {
                    pg_sys::SPI_freeplan(plan);
                }
            })
        });
        true
    })
    .catch_when(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, |_| false)
    .execute();
    if !locked {
        GAVE_WAY.with(|g| g.set(true));
        StreamError::RelationLocked {
            name: table.display_name(),
            wait_ms: lock_wait_ms(),
        }
        .raise()
    }
}
