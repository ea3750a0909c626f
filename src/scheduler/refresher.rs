//! Refresh workers: dynamic background workers a database's scheduler worker starts to refresh
//! several due stream tables at once, one stream table each (the worker waits for them).

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, BgWorkerStartTime,
    DynamicBackgroundWorker, SignalWakeFlags,
};
use pgrx::prelude::*;

/// `backend_type` of the refresh workers.
pub const REFRESHER_TYPE: &str = "pg_stream_dbt refresh";

/// Starts a refresh worker for stream table `id` of `database`; `None` when no worker slot is
/// free (max_worker_processes).
pub fn start(database: pg_sys::Oid, id: i64) -> Option<DynamicBackgroundWorker> {
    BackgroundWorkerBuilder::new(&format!("{REFRESHER_TYPE} of stream table {id}"))
        .set_type(REFRESHER_TYPE)
        .set_library("pg_stream_dbt")
        .set_function("pgstream_refresher_main")
        .set_argument(id.into_datum())
        .set_extra(&database.to_u32().to_string())
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic()
        .map_err(|e| {
            log!("pg_stream_dbt scheduler: no refresh worker for stream table {id}: {e:?}")
        })
        .ok()
}

/// Whether `worker` has exited (done, failed, terminated) or will never start.
pub fn finished(worker: &DynamicBackgroundWorker) -> bool {
    matches!(
        worker.pid(),
        Err(BackgroundWorkerStatus::Stopped | BackgroundWorkerStatus::PostmasterDied)
    )
}

/// Entry point of a refresh worker: its argument is the stream table's id, its extra the
/// database's oid.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pgstream_refresher_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
    super::worker::die_on_sigterm();
    let Ok(database) = BackgroundWorker::get_extra().parse::<u32>() else {
        log!("pg_stream_dbt refresh worker: no database given");
        return;
    };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(database)), None);
    let id = unsafe { i64::from_datum(arg, false) }.unwrap_or_default();
    super::worker::refresh_and_record(id);
}
