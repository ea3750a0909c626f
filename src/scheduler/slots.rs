//! Shared-memory slots through which a scheduler worker hands stream tables to its refresh
//! workers: one slot per refresh worker, a lock-free state word that carries the slot's
//! generation, so a worker of an earlier owner can never report into a slot claimed since.

use pgrx::prelude::*;
use pgrx::PgAtomic;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};

/// Refresh workers that can run at once in the whole cluster (all databases).
pub const SLOTS: usize = 64;

/// Waiting for a stream table.
pub const IDLE: u32 = 0;
/// A stream table was handed over (`table`), not yet refreshed.
pub const ASSIGNED: u32 = 1;
/// The handed-over stream table was refreshed (or its refresh failed and was recorded).
pub const DONE: u32 = 2;
/// The worker left (idle too long, or its scheduler went away).
pub const EXITED: u32 = 3;

/// One refresh worker's slot.
#[repr(C)]
#[derive(Default)]
pub struct Slot {
    /// Generation (high 32 bits) and state (low 32 bits); every transition compares both.
    word: AtomicU64,
    /// Pid of the scheduler worker that owns the slot; 0 when free.
    owner: AtomicI32,
    /// Pid of the refresh worker serving it once started; 0 when none.
    worker: AtomicI32,
    /// The stream table handed over (read only in state ASSIGNED).
    table: AtomicI64,
}

// SAFETY: atomics only, valid for any bit pattern and shared lock-free.
unsafe impl pgrx::shmem::PGRXSharedMemory for Slots {}

/// All slots.
#[repr(C)]
pub struct Slots {
    slots: [Slot; SLOTS],
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }
}

pub static REFRESH_SLOTS: PgAtomic<Slots> = unsafe { PgAtomic::new(c"pgstream_refresh_slots") };

fn word(generation: u32, state: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(state)
}

/// Whether a backend with `pid` runs (0: none).
pub fn alive(pid: i32) -> bool {
    pid != 0 && !unsafe { pg_sys::BackendPidGetProc(pid) }.is_null()
}

/// Wakes the backend with `pid`, if it runs.
pub fn wake(pid: i32) {
    unsafe {
        let proc = pg_sys::BackendPidGetProc(pid);
        if !proc.is_null() {
            pg_sys::SetLatch(&mut (*proc).procLatch);
        }
    }
}

/// Releases every slot this backend owns and asks their refresh workers to stop (SIGTERM to
/// the pid each worker registered for itself and clears when it exits).
pub fn release_owned() {
    let me = unsafe { pg_sys::MyProcPid };
    for slot in &REFRESH_SLOTS.get().slots {
        if slot.owner.load(Ordering::SeqCst) != me {
            continue;
        }
        let worker = slot.worker.load(Ordering::SeqCst);
        if alive(worker) {
            unsafe { libc::kill(worker, libc::SIGTERM) };
        }
        slot.release();
    }
}

/// Slot `index` (which the caller got from `claim` or as its worker argument).
pub fn slot(index: usize) -> Option<&'static Slot> {
    REFRESH_SLOTS.get().slots.get(index)
}

/// Claims a free slot for this scheduler worker (one whose owner and worker are both gone);
/// returns its index and new generation.
pub fn claim() -> Option<(usize, u32)> {
    let me = unsafe { pg_sys::MyProcPid };
    for (index, slot) in REFRESH_SLOTS.get().slots.iter().enumerate() {
        let owner = slot.owner.load(Ordering::SeqCst);
        if alive(owner) || alive(slot.worker.load(Ordering::SeqCst)) {
            continue;
        }
        if slot
            .owner
            .compare_exchange(owner, me, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            let generation = (slot.word.load(Ordering::SeqCst) >> 32) as u32;
            let generation = generation.wrapping_add(1);
            slot.worker.store(0, Ordering::SeqCst);
            slot.table.store(0, Ordering::SeqCst);
            slot.word.store(word(generation, IDLE), Ordering::SeqCst);
            return Some((index, generation));
        }
    }
    None
}

impl Slot {
    /// The state of generation `generation`; `None` once the slot was claimed again.
    pub fn state(&self, generation: u32) -> Option<u32> {
        let current = self.word.load(Ordering::SeqCst);
        ((current >> 32) as u32 == generation).then_some(current as u32)
    }

    /// Moves generation `generation` from state `from` to `to`; false when it was not in `from`.
    pub fn transition(&self, generation: u32, from: u32, to: u32) -> bool {
        self.word
            .compare_exchange(
                word(generation, from),
                word(generation, to),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// Hands stream table `id` to an idle worker; false when the worker has left.
    pub fn assign(&self, generation: u32, id: i64) -> bool {
        self.table.store(id, Ordering::SeqCst);
        if !self.transition(generation, IDLE, ASSIGNED) {
            return false;
        }
        wake(self.worker.load(Ordering::SeqCst));
        true
    }

    /// The stream table handed over.
    pub fn table(&self) -> i64 {
        self.table.load(Ordering::SeqCst)
    }

    /// Pid of the owning scheduler worker.
    pub fn owner(&self) -> i32 {
        self.owner.load(Ordering::SeqCst)
    }

    /// Pid of the refresh worker serving the slot (0: none yet or gone).
    pub fn worker(&self) -> i32 {
        self.worker.load(Ordering::SeqCst)
    }

    /// The refresh worker of generation `generation` starts serving; false when the slot is no
    /// longer that generation's. (Its pid is set first and the generation checked after, so a
    /// worker of an earlier generation starting late never keeps the current one out.)
    pub fn attach_worker(&self, generation: u32) -> bool {
        let me = unsafe { pg_sys::MyProcPid };
        for _ in 0..100 {
            if self.state(generation).is_none() {
                return false;
            }
            if self
                .worker
                .compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                if self.state(generation).is_some() {
                    return true;
                }
                self.detach_worker();
                return false;
            }
            // A late worker of an earlier generation holds the pid field for a moment.
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }

    /// The refresh worker leaves (its pid is cleared if the slot is still its own).
    pub fn detach_worker(&self) {
        let me = unsafe { pg_sys::MyProcPid };
        let _ = self
            .worker
            .compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The owning scheduler worker gives the slot up (on exit).
    pub fn release(&self) {
        let me = unsafe { pg_sys::MyProcPid };
        let _ = self
            .owner
            .compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}
