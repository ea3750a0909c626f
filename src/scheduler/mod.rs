//! The scheduler: a launcher background worker that keeps one worker per database with the
//! extension, each refreshing that database's due stream tables in dependency order.

pub mod launcher;
pub use pgstream_core::scheduler::{dispatch, plan};
mod pool;
pub mod refresher;
mod slots;
use slots::REFRESH_SLOTS;
pub mod worker;

use pgrx::bgworkers::{BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgAtomic};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// `backend_type` of the per-database workers (pg_stat_stream_tables looks for it).
pub const WORKER_TYPE: &str = "pg_stream_dbt scheduler";

/// Set in the postmaster when the library is in shared_preload_libraries; inherited by backends.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Bumped by CREATE EXTENSION so the launcher looks for databases that now need a worker.
static RESCAN_GENERATION: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"pgstream_rescan") };

/// How many databases without the extension the launcher remembers (beyond that, it checks
/// the others again every tick).
const REMEMBERED_DATABASES: usize = 1024;

/// Databases whose worker found no extension there (0 = free slot); cleared on rescan.
#[repr(C)]
pub struct DatabasesWithoutExtension {
    slots: [AtomicU32; REMEMBERED_DATABASES],
}

// SAFETY: a fixed-size array of atomics, valid for any bit pattern and shared lock-free.
unsafe impl pgrx::shmem::PGRXSharedMemory for DatabasesWithoutExtension {}

impl Default for DatabasesWithoutExtension {
    fn default() -> Self {
        DatabasesWithoutExtension {
            slots: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

static WITHOUT_EXTENSION: PgAtomic<DatabasesWithoutExtension> =
    unsafe { PgAtomic::new(c"pgstream_without_extension") };

/// A worker found no extension in `database`: the launcher leaves it alone until a rescan.
pub fn remember_without_extension(database: u32) {
    for slot in &WITHOUT_EXTENSION.get().slots {
        if slot.load(Ordering::SeqCst) == database
            || slot
                .compare_exchange(0, database, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            return;
        }
    }
}

/// Whether a worker found no extension in `database` since the last rescan.
pub fn known_without_extension(database: u32) -> bool {
    WITHOUT_EXTENSION
        .get()
        .slots
        .iter()
        .any(|slot| slot.load(Ordering::SeqCst) == database)
}

/// Forgets every database remembered as having no extension.
pub fn forget_databases_without_extension() {
    for slot in &WITHOUT_EXTENSION.get().slots {
        slot.store(0, Ordering::SeqCst);
    }
}

/// Whether the library was loaded through shared_preload_libraries (so the scheduler runs).
pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

/// Asks the launcher to look at every database again once the current transaction commits
/// (before that, a worker would not see the new extension). No-op without preload.
pub fn request_rescan() {
    if preloaded() {
        pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, || {
            RESCAN_GENERATION.get().fetch_add(1, Ordering::SeqCst);
        });
    }
}

/// The launcher's view of the rescan counter.
pub fn rescan_generation() -> u64 {
    RESCAN_GENERATION.get().load(Ordering::SeqCst)
}

/// Called from `_PG_init` during shared_preload_libraries: shared memory and the launcher.
pub fn register_at_preload() {
    PRELOADED.store(true, Ordering::Relaxed);
    pg_shmem_init!(RESCAN_GENERATION = AtomicU64::new(0));
    pg_shmem_init!(WITHOUT_EXTENSION = DatabasesWithoutExtension::default());
    pg_shmem_init!(REFRESH_SLOTS = slots::Slots::default());
    BackgroundWorkerBuilder::new("pg_stream_dbt launcher")
        .set_type("pg_stream_dbt launcher")
        .set_library("pg_stream_dbt")
        .set_function("pgstream_launcher_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}
