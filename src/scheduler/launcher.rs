//! The launcher worker: keeps one scheduler worker per database that has the extension,
//! noticing new databases and CREATE EXTENSION without a restart.

use super::WORKER_TYPE;
use crate::gucs;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, BgWorkerStartTime,
    DynamicBackgroundWorker, SignalWakeFlags,
};
use pgrx::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Shortest time between two starts of a worker for the same database.
const RESTART_PACE: Duration = Duration::from_secs(1);

/// Databases the launcher may start a worker for, read straight from pg_database (the
/// launcher is not connected to a database, so it cannot run SQL).
fn connectable_databases() -> BTreeSet<u32> {
    let mut databases = BTreeSet::new();
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        let relation = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as _);
        let scan = pg_sys::table_beginscan_catalog(relation, 0, std::ptr::null_mut());
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let database = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tuple);
            if (*database).datallowconn && !(*database).datistemplate {
                databases.insert((*database).oid.to_u32());
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(relation, pg_sys::AccessShareLock as _);
        pg_sys::CommitTransactionCommand();
    }
    databases
}

fn start_worker(database: u32) -> Option<DynamicBackgroundWorker> {
    BackgroundWorkerBuilder::new(&format!("{WORKER_TYPE} for database {database}"))
        .set_type(WORKER_TYPE)
        .set_library("pg_stream_dbt")
        .set_function("pgstream_scheduler_main")
        .set_argument(Some(pg_sys::Datum::from(database)))
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic()
        .map_err(|e| {
            log!("pg_stream_dbt launcher: could not start a worker for database {database}: {e:?}")
        })
        .ok()
}

/// Entry point of the launcher.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pgstream_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    log!("pg_stream_dbt launcher started");
    let mut workers: BTreeMap<u32, DynamicBackgroundWorker> = BTreeMap::new();
    // When each database last had a worker started, to pace restarts of a failing worker.
    let mut last_start: BTreeMap<u32, Instant> = BTreeMap::new();
    let mut seen_generation = super::rescan_generation();
    let mut was_enabled = true;
    let mut first = true;
    loop {
        if !first {
            let interval = gucs::SCHEDULER_INTERVAL_MS.get().max(10) as u64;
            if !BackgroundWorker::wait_latch(Some(Duration::from_millis(interval))) {
                break;
            }
        }
        first = false;
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        // A stopped worker is started again on a later tick unless it found no extension
        // (it remembers that in shared memory until CREATE EXTENSION asks for a rescan) or
        // its database is gone.
        workers.retain(|_, worker| !matches!(worker.pid(), Err(BackgroundWorkerStatus::Stopped)));
        let enabled = gucs::ENABLED.get();
        let generation = super::rescan_generation();
        if generation != seen_generation || (enabled && !was_enabled) {
            seen_generation = generation;
            super::forget_databases_without_extension();
        }
        was_enabled = enabled;
        if !enabled {
            continue; // workers notice the setting themselves and exit
        }
        for database in connectable_databases() {
            let paced = last_start
                .get(&database)
                .is_some_and(|at| at.elapsed() < RESTART_PACE);
            if workers.contains_key(&database) || paced || super::known_without_extension(database)
            {
                continue;
            }
            last_start.insert(database, Instant::now());
            if let Some(worker) = start_worker(database) {
                workers.insert(database, worker);
            }
        }
    }
    // Exit non-zero: after pg_terminate_backend the postmaster starts the launcher again
    // (at shutdown it does not). Its workers stay; each holds its database's lock.
    log!("pg_stream_dbt launcher stopping");
    unsafe { pg_sys::proc_exit(1) };
}
