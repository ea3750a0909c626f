//! Recording a failed refresh so the record survives the caller's transaction, which the
//! error is about to abort: a short-lived background worker writes it in its own transaction.

use crate::catalog;
use crate::gucs;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;

/// Longest error text kept in the catalog, in bytes.
const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// Writes the failure of stream table `id` to the catalog from a separate transaction and waits
/// for it. Logs a WARNING (and does not fail) when no worker can be started.
pub fn record_failure_outside_transaction(id: i64, message: &str) {
    let mut end = message.len().min(MAX_MESSAGE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let bytes = &message.as_bytes()[..end];
    unsafe {
        // The message travels in a dynamic shared memory segment: [len: u64][bytes].
        let segment = pg_sys::dsm_create(8 + bytes.len(), 0);
        let base = pg_sys::dsm_segment_address(segment) as *mut u8;
        std::ptr::copy_nonoverlapping((bytes.len() as u64).to_ne_bytes().as_ptr(), base, 8);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(8), bytes.len());
        let extra = format!(
            "{} {} {}",
            pg_sys::MyDatabaseId.to_u32(),
            pg_sys::dsm_segment_handle(segment),
            id
        );
        let worker = BackgroundWorkerBuilder::new("pg_stream_dbt refresh error recorder")
            .set_type("pg_stream_dbt error recorder")
            .set_library("pg_stream_dbt")
            .set_function("pgstream_refresh_error_recorder_main")
            .set_extra(&extra)
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(None)
            .set_notify_pid(pg_sys::MyProcPid)
            .load_dynamic();
        match worker {
            Ok(worker) => {
                if worker.wait_for_shutdown().is_err() {
                    warning!("pg_stream_dbt: the refresh error recorder did not finish; the failure may be missing from the catalog");
                }
            }
            Err(_) => warning!(
                "pg_stream_dbt: could not start a background worker to record the refresh failure \
                 (raise max_worker_processes); the failure is not recorded in the catalog"
            ),
        }
        pg_sys::dsm_detach(segment);
    }
}

/// Entry point of the recorder worker: reads the failure from shared memory, writes it, exits.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pgstream_refresh_error_recorder_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGTERM);
    let extra = BackgroundWorker::get_extra().to_string();
    let fields: Vec<&str> = extra.split_whitespace().collect();
    let [database, handle, id] = fields.as_slice() else {
        log!("pg_stream_dbt error recorder: malformed arguments \"{extra}\"");
        return;
    };
    let (Ok(database), Ok(handle), Ok(id)) = (
        database.parse::<u32>(),
        handle.parse::<u32>(),
        id.parse::<i64>(),
    ) else {
        log!("pg_stream_dbt error recorder: malformed arguments \"{extra}\"");
        return;
    };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(database)), None);
    let message = unsafe {
        let segment = pg_sys::dsm_attach(handle as pg_sys::dsm_handle);
        if segment.is_null() {
            log!("pg_stream_dbt error recorder: the failure message is gone");
            return;
        }
        let base = pg_sys::dsm_segment_address(segment) as *const u8;
        let mut len_bytes = [0u8; 8];
        std::ptr::copy_nonoverlapping(base, len_bytes.as_mut_ptr(), 8);
        let len = u64::from_ne_bytes(len_bytes) as usize;
        let text =
            String::from_utf8_lossy(std::slice::from_raw_parts(base.add(8), len)).into_owned();
        pg_sys::dsm_detach(segment);
        text
    };
    let max = gucs::MAX_CONSECUTIVE_ERRORS.get();
    // (A refresh someone ran by hand and saw fail counts at once.)
    let suspension = catalog::Suspension {
        max_consecutive_errors: max,
        grace_seconds: 0,
    };
    let outcome =
        BackgroundWorker::transaction(|| catalog::record_failure(id, &message, suspension));
    if outcome == Some(true) {
        warning!(
            "pg_stream_dbt: stream table {id} suspended after {max} consecutive failed refreshes; \
             resume with pgstream.alter_stream_table(..., status => 'ACTIVE')"
        );
    }
    if outcome.is_none() {
        log!(
            "pg_stream_dbt error recorder: stream table {id} was not updated (its catalog row is \
             locked by the failing transaction or does not exist outside it)"
        );
    }
}
