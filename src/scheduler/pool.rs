//! A scheduler worker's refresh workers: kept between ticks (warm), handed due stream tables
//! through their shared-memory slots in dependency order (`dispatch`), stopped with it.

use super::dispatch::Dispatch;
use super::refresher;
use super::slots::{self, DONE, EXITED, IDLE};
use super::worker::refresh_and_record;
use pgrx::bgworkers::{BackgroundWorker, DynamicBackgroundWorker};
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

/// One refresh worker of this scheduler worker.
struct PoolWorker {
    index: usize,
    generation: u32,
    handle: DynamicBackgroundWorker,
    /// The stream table it refreshes now.
    busy: Option<i64>,
    /// It left while idle (its slot said so); dropped once its process is gone.
    left: bool,
}

impl PoolWorker {
    fn slot(&self) -> &'static slots::Slot {
        slots::slot(self.index).expect("a claimed slot exists")
    }
}

#[derive(Default)]
struct Pool {
    workers: Vec<PoolWorker>,
    /// Where the workers' handles live; reset whenever no worker is left.
    handles: Option<pg_sys::MemoryContext>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Registers the exit callback that stops this scheduler worker's refresh workers with it.
pub fn stop_workers_on_exit() {
    unsafe { pg_sys::before_shmem_exit(Some(stop_workers), pg_sys::Datum::from(0)) };
}

#[pg_guard]
unsafe extern "C-unwind" fn stop_workers(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    // From shared memory, not the pool: a FATAL exit can come while the pool is borrowed.
    slots::release_owned();
}

/// At every tick: drops the workers that left and asks idle ones beyond `parallel` to leave
/// (all of them when refreshes run one at a time), so a lowered limit takes effect and unused
/// slots go back to the cluster.
pub fn settle(parallel: usize) {
    POOL.with_borrow_mut(|pool| {
        let keep = if parallel <= 1 { 0 } else { parallel };
        let mut serving = 0;
        for worker in pool.workers.iter_mut().filter(|w| !w.left) {
            serving += 1;
            if serving > keep && worker.busy.is_none() {
                let slot = worker.slot();
                if slot.transition(worker.generation, IDLE, EXITED) {
                    slots::wake(slot.worker());
                }
                worker.left = true;
            }
        }
        // Between ticks no worker is busy: collecting only drops the stopped ones.
        collect(pool, &mut Dispatch::new(&[], &BTreeMap::new()));
    })
}

/// Starts refresh workers until `wanted` serve this scheduler worker (fewer when the shared
/// slots or max_worker_processes run out).
fn grow(pool: &mut Pool, database: pg_sys::Oid, wanted: usize) {
    while pool.workers.iter().filter(|w| !w.left).count() < wanted {
        let Some((index, generation)) = slots::claim() else {
            log!(
                "pg_stream_dbt scheduler: all {} refresh worker slots are taken",
                slots::SLOTS
            );
            return;
        };
        let context = *pool.handles.get_or_insert_with(|| unsafe {
            pg_sys::AllocSetContextCreateExtended(
                pg_sys::TopMemoryContext,
                c"pg_stream_dbt refresh workers".as_ptr(),
                pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
                pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
                pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
            )
        });
        let started = unsafe {
            PgMemoryContexts::For(context)
                .switch_to(|_| refresher::start(database, index, generation))
        };
        let Some(handle) = started else {
            slots::slot(index).expect("a claimed slot exists").release();
            return;
        };
        pool.workers.push(PoolWorker {
            index,
            generation,
            handle,
            busy: None,
            left: false,
        });
    }
}

/// Notes the refreshes that ended (the dispatch's readers may start) and drops the workers
/// that left, giving their slots up; returns how many left.
fn collect(pool: &mut Pool, dispatch: &mut Dispatch) -> usize {
    let before = pool.workers.len();
    pool.workers.retain_mut(|worker| {
        let slot = worker.slot();
        let stopped = refresher::stopped(&worker.handle);
        if let Some(id) = worker.busy {
            if slot.state(worker.generation) == Some(DONE) {
                slot.transition(worker.generation, DONE, IDLE);
                worker.busy = None;
                dispatch.finish(id);
            } else if stopped {
                log!(
                    "pg_stream_dbt scheduler: the refresh worker of stream table #{id} stopped \
                     before finishing it; it is due again at the next tick"
                );
                worker.busy = None;
                dispatch.finish(id);
            }
        }
        if stopped {
            slot.release();
        }
        !stopped
    });
    if pool.workers.is_empty() {
        if let Some(context) = pool.handles {
            unsafe { pg_sys::MemoryContextReset(context) };
        }
    }
    before - pool.workers.len()
}

/// Refreshes `due` (upstream first; `upstream`: the stream tables each reads) with up to
/// `parallel` refresh workers; this worker refreshes the rest itself when none can start.
/// Returns false when the postmaster died.
pub fn refresh_in_parallel(
    database: pg_sys::Oid,
    due: &[i64],
    upstream: &BTreeMap<i64, Vec<i64>>,
    parallel: usize,
) -> bool {
    POOL.with_borrow_mut(|pool| {
        let mut dispatch = Dispatch::new(due, upstream);
        let wanted = parallel.min(due.len()).min(slots::SLOTS);
        grow(pool, database, wanted);
        loop {
            pgrx::check_for_interrupts!();
            let left = collect(pool, &mut dispatch);
            if dispatch.done() {
                return true;
            }
            if left > 0 {
                // A worker was terminated or failed: another takes its place for this tick.
                grow(pool, database, wanted);
            }
            if pool.workers.is_empty() {
                // No refresh worker (slots or max_worker_processes ran out): one at a time here.
                for id in dispatch.start(1) {
                    refresh_and_record(id);
                    dispatch.finish(id);
                }
                continue;
            }
            let limit = pool
                .workers
                .iter()
                .filter(|w| !w.left)
                .count()
                .min(parallel)
                .max(1);
            for id in dispatch.start(limit) {
                let idle = pool
                    .workers
                    .iter_mut()
                    .find(|w| w.busy.is_none() && !w.left);
                match idle {
                    Some(worker) if worker.slot().assign(worker.generation, id) => {
                        worker.busy = Some(id);
                    }
                    idle => {
                        // The idle worker left just now: refreshed here instead.
                        if let Some(worker) = idle {
                            worker.left = true;
                        }
                        refresh_and_record(id);
                        dispatch.finish(id);
                    }
                }
            }
            if !BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
                return false;
            }
        }
    })
}
