//! Capture this session has verified, per stream table: trusted by its next refresh until an
//! invalidation of a relation the verification read arrives (about 1 ms of every refresh).
//!
//! Every refresh checks that its sources' capture is intact: the statement and row triggers,
//! enabled; the buffer with every column the readers need, of the right type; the reading view;
//! every partition's triggers; nothing that blocks capture. Most of that is catalog state that
//! only changes through DDL, and DDL is seen twice over: the event triggers record it (the
//! refresh then always verifies), and it sends relcache invalidations of the relations it
//! changes, which every backend processes before it takes a lock or, here, before it decides.
//! The second covers what the event triggers do not record: DDL on the engine's own buffers,
//! commands in sessions where event triggers do not fire, subscriptions (their catalog sends
//! a cache invalidation of its own, taken as one of everything).
//!
//! A verification made by the refresh that covered snapshot S is trusted by the next refresh of
//! the same stream table in this session when the stream table still starts from S (no other
//! session refreshed it, the refresh was not rolled back) and no invalidation of the relations
//! it read (sources, their partitions, buffers, reading views) or of every relation has been
//! processed since the verification began. An invalidation is sent after the change commits,
//! so a change committed before the verification's snapshot is seen by it, and one committed
//! after is processed later than the verification began: it makes the next refresh verify. (A
//! change seen by a refresh's snapshot whose invalidation has not been sent yet, a window of
//! microseconds in the committing backend, can be missed by that refresh only; the next one
//! sees the invalidation. DDL the event triggers record is caught by its record whatever the
//! timing.) A refresh in a REPEATABLE READ or SERIALIZABLE transaction reads in the
//! transaction's snapshot, which may predate invalidations processed since: it always verifies
//! and leaves nothing to trust.

use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Above this many relations remembered, the memory of invalidations is folded into one of
/// everything (a backend that touched that many relations verifies once more).
const REMEMBERED: usize = 50_000;

thread_local! {
    /// Counts invalidations processed by this backend; each one's count is its time.
    static CLOCK: Cell<u64> = const { Cell::new(0) };
    /// When an invalidation of every relation (or one not told apart) was last processed.
    static EVERYTHING_AT: Cell<u64> = const { Cell::new(0) };
    /// When each relation was last invalidated.
    static INVALIDATED_AT: RefCell<HashMap<u32, u64>> = RefCell::new(HashMap::new());
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// By stream table id.
    static VERIFIED: RefCell<HashMap<i64, Verified>> = RefCell::new(HashMap::new());
}

/// A verification that found capture intact.
struct Verified {
    /// The clock when it began: an invalidation counted later may not be in what it read.
    began: u64,
    /// The snapshot the refresh that made it covered: the one its trust is for starts there.
    covered: String,
    /// The relations it read.
    relations: Vec<u32>,
}

/// Whether a refresh looks at its sources' capture objects again, and when it decided that.
#[derive(Debug, Clone, Copy)]
pub struct Verification {
    pub verify: bool,
    /// The clock when the refresh decided (after the invalidations sent by then).
    pub began: u64,
    /// When the verification it trusts began (None: it verifies).
    pub trusted_since: Option<u64>,
    /// What it finds may be trusted later (and plans it makes kept).
    pub recordable: bool,
}

impl Verification {
    /// A refresh that verifies and leaves nothing to trust: over Citus sources (their metadata
    /// is not watched here), or in a transaction whose snapshot may predate the invalidations
    /// processed.
    pub fn always() -> Verification {
        Verification {
            verify: true,
            began: CLOCK.get(),
            trusted_since: None,
            recordable: false,
        }
    }
}

fn tick() -> u64 {
    let now = CLOCK.get() + 1;
    CLOCK.set(now);
    now
}

unsafe extern "C-unwind" fn relation_invalidated(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let now = tick();
    if relid == pg_sys::InvalidOid {
        EVERYTHING_AT.set(now);
        return;
    }
    let remembered = INVALIDATED_AT.with(|at| {
        let Ok(mut at) = at.try_borrow_mut() else {
            return false;
        };
        if at.len() >= REMEMBERED {
            at.clear();
            return false;
        }
        at.insert(relid.to_u32(), now);
        true
    });
    if !remembered {
        EVERYTHING_AT.set(now);
    }
}

unsafe extern "C-unwind" fn subscriptions_invalidated(
    _arg: pg_sys::Datum,
    _cache: std::ffi::c_int,
    _hash: u32,
) {
    EVERYTHING_AT.set(tick());
}

fn register() {
    if REGISTERED.get() {
        return;
    }
    // SAFETY: registered once per backend; the callbacks only touch this module's state.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relation_invalidated), pg_sys::Datum::from(0));
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::SUBSCRIPTIONRELMAP as std::ffi::c_int,
            Some(subscriptions_invalidated),
            pg_sys::Datum::from(0),
        );
    }
    REGISTERED.set(true);
}

/// Whether a refresh of stream table `id` starting from `consumed` (None: never refreshed) must
/// verify its capture. Call before the snapshot the verification would read in.
pub fn before_refresh(id: i64, consumed: Option<&str>) -> Verification {
    // SAFETY: reads the transaction's isolation level.
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Verification::always();
    }
    register();
    // SAFETY: what taking a lock does; outside any catalog scan.
    unsafe { pg_sys::AcceptInvalidationMessages() };
    let began = CLOCK.get();
    let trusted_since = consumed.and_then(|consumed| {
        VERIFIED.with(|verified| {
            verified.borrow().get(&id).and_then(|entry| {
                // (An invalidation at the clock's reading when the verification began had been
                // processed by then.)
                let valid = entry.covered == consumed
                    && EVERYTHING_AT.get() <= entry.began
                    && INVALIDATED_AT.with(|at| {
                        let at = at.borrow();
                        entry
                            .relations
                            .iter()
                            .all(|r| at.get(r).is_none_or(|&t| t <= entry.began))
                    });
                valid.then_some(entry.began)
            })
        })
    });
    Verification {
        verify: trusted_since.is_none(),
        began,
        trusted_since,
        recordable: true,
    }
}

impl Verification {
    /// Every check passed; the refresh covered `covered`. Its next refresh may trust that.
    pub fn passed(self, id: i64, covered: &str) {
        if !self.recordable {
            return;
        }
        let relations = if self.verify {
            match relations_read(id) {
                Some(relations) => relations,
                None => return,
            }
        } else {
            VERIFIED.with(|verified| {
                verified
                    .borrow()
                    .get(&id)
                    .map(|entry| entry.relations.clone())
                    .unwrap_or_default()
            })
        };
        // A trusted verification keeps its start: nothing since invalidated what it read.
        let began = self.trusted_since.unwrap_or(self.began);
        VERIFIED.with(|verified| {
            verified.borrow_mut().insert(
                id,
                Verified {
                    began,
                    covered: covered.to_string(),
                    relations,
                },
            )
        });
    }
}

/// The relations the capture checks of stream table `id` read: its table sources, their
/// partitions, their buffers and reading views. None in a database whose extension is not
/// updated to 0.4.0 yet (its checks cannot be left out), or when they could not be read
/// (nothing is trusted then; the refresh itself succeeded). Partitions are read from pg_inherits
/// here (no extension function: an older one lacks it): `pg_partition_tree` locks them without
/// their parent, in the order opposite to DETACH PARTITION's, and a refresh deadlocked with a
/// DETACH.
fn relations_read(id: i64) -> Option<Vec<u32>> {
    crate::catalog::as_catalog_owner(|| {
        crate::kept_plans::one::<Vec<pg_sys::Oid>>(
            "WITH RECURSIVE members (root, relid) AS ( \
                 SELECT i.inhparent, i.inhrelid FROM pg_catalog.pg_inherits i \
                 WHERE i.inhparent IN (SELECT s.source_relid FROM pgstream.pgs_dependencies s WHERE s.pgs_id = $1) \
               UNION \
                 SELECT m.root, i.inhrelid FROM members m JOIN pg_catalog.pg_inherits i ON i.inhparent = m.relid) \
             SELECT CASE WHEN pg_catalog.to_regprocedure('pgstream._change_state(bigint, pg_catalog.pg_snapshot, oid, boolean)') IS NOT NULL \
                         AND pg_catalog.to_regprocedure('pgstream._unchanged_since(bigint, pg_catalog.pg_snapshot, boolean)') IS NOT NULL \
                    THEN COALESCE(pg_catalog.array_agg(DISTINCT r.oid), '{}') END \
             FROM pgstream.pgs_dependencies d, LATERAL ( \
                 SELECT d.source_relid \
                 UNION ALL SELECT m.relid FROM members m WHERE m.root = d.source_relid \
                 UNION ALL SELECT pg_catalog.to_regclass(pg_catalog.format('pgstream_changes.%I', 'rows_' || d.source_relid)) \
                 UNION ALL SELECT pg_catalog.to_regclass(pg_catalog.format('pgstream_changes.%I', 'shard_rows_' || d.source_relid)) \
                 UNION ALL SELECT pg_catalog.to_regclass(pg_catalog.format('pgstream.%I', '_rows_' || d.source_relid)) \
             ) r (oid) \
             WHERE d.pgs_id = $1 AND d.source_kind <> 'view' AND r.oid IS NOT NULL",
            &[id.into()],
        )
    })
    .ok()
    .flatten()
    .map(|relations| relations.into_iter().map(|oid| oid.to_u32()).collect())
}
