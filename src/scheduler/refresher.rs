//! Refresh workers: dynamic background workers a database's scheduler worker keeps to refresh
//! several due stream tables at once; each serves one shared-memory slot, refreshing the stream
//! tables handed to it one after the other (warm caches and plans), and leaves when idle for a
//! minute or when its scheduler worker is gone.

use super::dispatch::WorkerExtra;
use super::slots::{self, ASSIGNED, DONE, EXITED, IDLE};
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, BgWorkerStartTime,
    DynamicBackgroundWorker, SignalWakeFlags,
};
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// `backend_type` of the refresh workers.
pub const REFRESHER_TYPE: &str = "pg_stream_dbt refresh";

/// A refresh worker with nothing handed to it for this long leaves (its slot is taken again by
/// the next tick that needs it).
const IDLE_EXIT: Duration = Duration::from_secs(60);

/// Starts the refresh worker of slot `index` (generation `generation`) for `database`; `None`
/// when no worker slot is free (max_worker_processes).
pub fn start(
    database: pg_sys::Oid,
    index: usize,
    generation: u32,
) -> Option<DynamicBackgroundWorker> {
    let scheduler = unsafe { pg_sys::MyProcPid };
    BackgroundWorkerBuilder::new(&format!("{REFRESHER_TYPE} worker {index}"))
        .set_type(REFRESHER_TYPE)
        .set_library("pg_stream_dbt")
        .set_function("pgstream_refresher_main")
        .set_argument((index as i64).into_datum())
        .set_extra(
            &WorkerExtra {
                database: database.to_u32(),
                generation,
                scheduler,
            }
            .to_string(),
        )
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .set_notify_pid(scheduler)
        .load_dynamic()
        .map_err(|e| log!("pg_stream_dbt scheduler: no refresh worker could start: {e:?}"))
        .ok()
}

/// Whether `worker` has exited or will never start.
pub fn stopped(worker: &DynamicBackgroundWorker) -> bool {
    matches!(
        worker.pid(),
        Err(BackgroundWorkerStatus::Stopped | BackgroundWorkerStatus::PostmasterDied)
    )
}

/// Shows in pg_stat_activity what the worker does: `active` with the stream table it refreshes,
/// or `idle`.
fn report_activity(refreshing: Option<i64>) {
    let (state, text) = match refreshing {
        Some(id) => (
            pg_sys::BackendState::STATE_RUNNING,
            format!("refresh of stream table #{id}"),
        ),
        None => (pg_sys::BackendState::STATE_IDLE, String::new()),
    };
    let text = std::ffi::CString::new(text).unwrap_or_default();
    unsafe { pg_sys::pgstat_report_activity(state, text.as_ptr()) };
}

#[pg_guard]
unsafe extern "C-unwind" fn detach_on_exit(_code: std::ffi::c_int, index: pg_sys::Datum) {
    if let Some(slot) = slots::slot(index.value()) {
        slot.detach_worker();
    }
}

/// Entry point of a refresh worker: its argument is its slot's index, its extra the database's
/// oid, the slot's generation and the scheduler worker's pid.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pgstream_refresher_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
    super::worker::die_on_sigterm();
    let Some(WorkerExtra {
        database,
        generation,
        scheduler,
    }) = WorkerExtra::parse(BackgroundWorker::get_extra())
    else {
        log!("pg_stream_dbt refresh worker: started without its slot");
        return;
    };
    let index = unsafe { i64::from_datum(arg, false) }.unwrap_or(-1);
    let Some(slot) = usize::try_from(index).ok().and_then(slots::slot) else {
        return;
    };
    if !slot.attach_worker(generation) {
        return; // the slot was claimed again before this worker started
    }
    // However it exits (FATAL included), its pid leaves the slot.
    unsafe { pg_sys::before_shmem_exit(Some(detach_on_exit), pg_sys::Datum::from(index as usize)) };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(database)), None);
    report_activity(None);
    let mut idle_since = Instant::now();
    loop {
        pgrx::check_for_interrupts!();
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if slot.owner() != scheduler || !slots::alive(scheduler) {
            break;
        }
        match slot.state(generation) {
            Some(ASSIGNED) => {
                let id = slot.table();
                report_activity(Some(id));
                super::worker::refresh_and_record(id);
                report_activity(None);
                slot.transition(generation, ASSIGNED, DONE);
                slots::wake(scheduler);
                idle_since = Instant::now();
                continue;
            }
            Some(EXITED) | None => break, // asked to leave, or the slot is no longer its own
            Some(_) => {}
        }
        if idle_since.elapsed() >= IDLE_EXIT && slot.transition(generation, IDLE, EXITED) {
            break;
        }
        if !BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
            break; // the postmaster died
        }
    }
    // (detach_on_exit clears its pid from the slot as the worker exits.)
}
