//! A per-database scheduler worker: each tick, refresh the due stream tables in dependency
//! order (several at once in refresh workers), each in its own transaction as the table's
//! owner; count and record failures.

use super::plan;
use super::{dispatch, pool};
use crate::catalog;
use crate::gucs;
use crate::modes::Status;
use crate::refresh::subxact::{error_message, missing_relation};
use crate::refresh::{self, FailureRecording, Origin};
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// A transaction that failed: its error message, whether it said a relation is missing, and
/// whether it was a scheduled refresh giving way to DDL.
struct Failure {
    message: String,
    missing_relation: bool,
    gave_way: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs `body` in its own transaction; an error aborts the transaction and is returned.
fn in_transaction<R>(body: impl FnOnce() -> R + std::panic::UnwindSafe) -> Result<R, Failure> {
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let result = PgTryBuilder::new(move || Ok(body()))
        .catch_others(|caught| {
            Err(Failure {
                message: error_message(&caught),
                missing_relation: missing_relation(&caught),
                gave_way: crate::refresh::give_way::gave_way(),
            })
        })
        .execute();
    unsafe {
        if result.is_ok() {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        } else {
            pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
            pg_sys::AbortOutOfAnyTransaction();
        }
    }
    result
}

/// Whether the extension is installed here; `None` when that could not be read (an error is
/// not taken as "dropped").
fn extension_installed() -> Option<bool> {
    in_transaction(|| {
        Spi::get_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_stream_dbt')",
        )
        .ok()
        .flatten()
    })
    .ok()
    .flatten()
}

fn take_database_lock(database: pg_sys::Oid) -> bool {
    in_transaction(move || {
        Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.pg_try_advisory_lock($1, $2::pg_catalog.int4)",
            &[
                crate::lock_keys::SCHEDULER_WORKER.into(),
                (database.to_u32() as i32).into(),
            ],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    })
    .unwrap_or(false)
}

/// Refreshes stream table `id` (as its owner: refresh_now switches); returns its name.
fn refresh_scheduled(id: i64) -> Option<String> {
    let table = catalog::find_by_id(id)?;
    if table.status != Status::Active {
        return None;
    }
    refresh::refresh_now(&table, FailureRecording::None, Origin::Scheduler);
    Some(table.display_name())
}

/// One tick: refresh what is due, upstream first; several at once (refresh workers) when
/// `pgstream.max_parallel_refreshes` allows. False when the postmaster died.
fn tick(database: pg_sys::Oid) -> bool {
    // A restored dump's stream tables are adopted before they are scheduled.
    if let Err(message) = in_transaction(catalog::adopt_restored_rows) {
        log!("pg_stream_dbt scheduler: adopting a restored catalog failed: {message}");
    }
    let Ok(tables) =
        in_transaction(catalog::schedule).map_err(|e| log!("pg_stream_dbt scheduler: {e}"))
    else {
        return true;
    };
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let due = plan::due_in_order(&tables, now);
    let parallel = dispatch::parallel_refreshes(
        gucs::MAX_PARALLEL_REFRESHES.get(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        unsafe { pg_sys::max_worker_processes },
    );
    pool::settle(parallel);
    if parallel <= 1 || due.len() <= 1 {
        for id in due {
            pgrx::check_for_interrupts!();
            refresh_and_record(id);
        }
        return true;
    }
    let upstream: BTreeMap<i64, Vec<i64>> =
        tables.iter().map(|t| (t.id, t.upstream.clone())).collect();
    pool::refresh_in_parallel(database, &due, &upstream, parallel)
}

/// Refreshes stream table `id` in a transaction of its own and records a failure (suspending the
/// table after too many in a row) in another.
pub(super) fn refresh_and_record(id: i64) {
    let Err(failure) = in_transaction(move || refresh_scheduled(id)) else {
        return;
    };
    let name = in_transaction(move || catalog::find_by_id(id).map(|t| t.display_name()))
        .ok()
        .flatten()
        .unwrap_or_else(|| format!("#{id}"));
    if failure.gave_way {
        // It gave way to DDL before reading its sources or writing anything: not a failure.
        log!("pg_stream_dbt scheduler: {failure}; tried again at the next tick");
        return;
    }
    log!("pg_stream_dbt scheduler: refresh of {name} failed: {failure}");
    let max = gucs::MAX_CONSECUTIVE_ERRORS.get();
    let suspension = catalog::Suspension {
        max_consecutive_errors: max,
        grace_seconds: if failure.missing_relation {
            gucs::MISSING_RELATION_GRACE.get()
        } else {
            0
        },
    };
    let message = failure.message;
    let outcome = in_transaction(move || catalog::record_failure(id, &message, suspension));
    if let Ok(Some(true)) = outcome {
        warning!(
            "pg_stream_dbt: stream table {name} suspended after {max} consecutive failed \
             refreshes; resume with pgstream.alter_stream_table('{name}', status => 'ACTIVE')"
        );
    }
}

extern "C-unwind" {
    /// PostgreSQL's SIGTERM handler for backends (`die`), unwrapped: it only sets flags.
    #[link_name = "die"]
    fn postgres_die(signal: std::ffi::c_int);
}

/// SIGTERM must interrupt a running refresh too (fast shutdown, pg_terminate_backend, DROP
/// DATABASE ... WITH (FORCE)): PostgreSQL's own handler ends the worker at the next interrupt
/// check.
pub(super) fn die_on_sigterm() {
    // (PostgreSQL 18 names the backend's pqsignal pqsignal_be.)
    #[cfg(not(feature = "pg18"))]
    unsafe {
        pg_sys::pqsignal(libc::SIGTERM, Some(postgres_die))
    };
    #[cfg(feature = "pg18")]
    unsafe {
        pg_sys::pqsignal_be(libc::SIGTERM, Some(postgres_die))
    };
}

/// Entry point of a per-database worker; its argument is the database oid.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pgstream_scheduler_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
    die_on_sigterm();
    let database = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(database), None);
    if !gucs::ENABLED.get() {
        return;
    }
    if extension_installed() == Some(false) {
        // The launcher starts a worker here again when CREATE EXTENSION asks for a rescan.
        super::remember_without_extension(database.to_u32());
        return;
    }
    if !take_database_lock(database) {
        log!(
            "pg_stream_dbt scheduler: another worker serves database {}",
            database.to_u32()
        );
        return;
    }
    pool::stop_workers_on_exit();
    log!(
        "pg_stream_dbt scheduler started for database {}",
        database.to_u32()
    );
    loop {
        pgrx::check_for_interrupts!();
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if !gucs::ENABLED.get() {
            log!("pg_stream_dbt scheduler stopping: pgstream.enabled is off");
            return;
        }
        if extension_installed() == Some(false) {
            log!("pg_stream_dbt scheduler stopping: the extension was dropped");
            super::remember_without_extension(database.to_u32());
            return;
        }
        let interval = gucs::SCHEDULER_INTERVAL_MS.get().max(10) as u64;
        if !tick(database) || !BackgroundWorker::wait_latch(Some(Duration::from_millis(interval))) {
            log!("pg_stream_dbt scheduler stopping: the postmaster died");
            return;
        }
    }
}
