//! Which due stream tables a scheduler tick may start refreshing now, when several refresh at
//! once: at most a limit running, never one twice, never before the due stream tables it reads
//! have finished (pure; the worker runs the refreshes).

use std::collections::{BTreeMap, BTreeSet};

/// The refreshes of one tick: due tables in order, what each waits for, what runs.
#[derive(Debug)]
pub struct Dispatch {
    /// Not started yet, in the tick's order (upstream first).
    pending: Vec<i64>,
    /// For each table, the due tables it reads (finished ones are removed).
    waits_for: BTreeMap<i64, BTreeSet<i64>>,
    running: BTreeSet<i64>,
}

impl Dispatch {
    /// `due`: the tick's tables, upstream first (`plan::due_in_order`); `upstream`: the stream
    /// tables each reads (any, due or not). A table waits only for the due tables it reads that
    /// come before it in `due`, so a cycle of stream tables cannot make the tick wait forever:
    /// its tables run in the tick's order, as they would one at a time.
    pub fn new(due: &[i64], upstream: &BTreeMap<i64, Vec<i64>>) -> Self {
        let position: BTreeMap<i64, usize> =
            due.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let waits_for = due
            .iter()
            .enumerate()
            .map(|(at, id)| {
                let ups = upstream
                    .get(id)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|u| position.get(u).is_some_and(|p| *p < at))
                    .collect();
                (*id, ups)
            })
            .collect();
        Dispatch {
            pending: due.to_vec(),
            waits_for,
            running: BTreeSet::new(),
        }
    }

    /// The tables to start now so that at most `limit` run, in the tick's order; they count as
    /// running from here on.
    pub fn start(&mut self, limit: usize) -> Vec<i64> {
        let mut started = Vec::new();
        let mut i = 0;
        while i < self.pending.len() && self.running.len() < limit.max(1) {
            let id = self.pending[i];
            let ready = self.waits_for.get(&id).is_none_or(BTreeSet::is_empty);
            if ready {
                self.pending.remove(i);
                self.running.insert(id);
                started.push(id);
            } else {
                i += 1;
            }
        }
        started
    }

    /// `id` finished (refreshed, failed or was stopped): its readers stop waiting for it.
    pub fn finish(&mut self, id: i64) {
        if self.running.remove(&id) {
            for ups in self.waits_for.values_mut() {
                ups.remove(&id);
            }
        }
    }

    /// Whether every table has finished.
    pub fn done(&self) -> bool {
        self.pending.is_empty() && self.running.is_empty()
    }

    /// The tables running now.
    pub fn running(&self) -> impl Iterator<Item = i64> + '_ {
        self.running.iter().copied()
    }
}

/// The number of refreshes to run at once for `setting` (`pgstream.max_parallel_refreshes`; 0:
/// one per CPU core of the machine, `cores`, but at most a quarter of `max_worker_processes`,
/// which parallel query, logical replication and other extensions share).
pub fn parallel_refreshes(setting: i32, cores: usize, max_worker_processes: i32) -> usize {
    if setting > 0 {
        setting as usize
    } else {
        let quarter = usize::try_from(max_worker_processes / 4).unwrap_or(0);
        cores.min(quarter).max(1)
    }
}

/// What a refresh worker is started with (its `bgw_extra`): the database's oid, the generation
/// of its shared-memory slot and the pid of the scheduler worker that owns the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerExtra {
    pub database: u32,
    pub generation: u32,
    pub scheduler: i32,
}

impl std::fmt::Display for WorkerExtra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.database, self.generation, self.scheduler
        )
    }
}

impl WorkerExtra {
    /// Reads what `to_string` wrote; `None` for anything else.
    pub fn parse(extra: &str) -> Option<Self> {
        let mut parts = extra.split(' ');
        let database = parts.next()?.parse().ok()?;
        let generation = parts.next()?.parse().ok()?;
        let scheduler = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(WorkerExtra {
            database,
            generation,
            scheduler,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(pairs: &[(i64, &[i64])]) -> BTreeMap<i64, Vec<i64>> {
        pairs.iter().map(|(id, ups)| (*id, ups.to_vec())).collect()
    }

    #[test]
    fn independent_tables_start_up_to_the_limit_in_order() {
        let mut d = Dispatch::new(&[1, 2, 3, 4, 5], &BTreeMap::new());
        assert_eq!(d.start(2), vec![1, 2]);
        assert_eq!(d.start(2), Vec::<i64>::new());
        d.finish(2);
        assert_eq!(d.start(2), vec![3]);
        d.finish(1);
        d.finish(3);
        assert_eq!(d.start(2), vec![4, 5]);
        d.finish(4);
        d.finish(5);
        assert!(d.done());
    }

    #[test]
    fn a_reader_waits_for_the_due_tables_it_reads_only() {
        // 3 reads 1 (due) and 9 (not due); 4 reads 3.
        let ups = upstream(&[(3, &[1, 9]), (4, &[3])]);
        let mut d = Dispatch::new(&[1, 2, 3, 4], &ups);
        assert_eq!(d.start(4), vec![1, 2]);
        d.finish(2);
        assert_eq!(d.start(4), Vec::<i64>::new(), "3 waits for 1");
        d.finish(1);
        assert_eq!(d.start(4), vec![3]);
        assert_eq!(d.running().collect::<Vec<_>>(), vec![3]);
        d.finish(3);
        assert_eq!(d.start(4), vec![4]);
        d.finish(4);
        assert!(d.done());
    }

    #[test]
    fn a_table_is_never_started_twice_and_finishing_an_unknown_one_changes_nothing() {
        let mut d = Dispatch::new(&[1, 2], &BTreeMap::new());
        assert_eq!(d.start(1), vec![1]);
        d.finish(7);
        assert_eq!(d.start(1), Vec::<i64>::new());
        d.finish(1);
        d.finish(1);
        assert_eq!(d.start(5), vec![2]);
        d.finish(2);
        assert!(d.done());
    }

    #[test]
    fn a_cycle_of_stream_tables_runs_in_the_ticks_order_instead_of_waiting_forever() {
        // 1 reads 2 and 2 reads 1: the tick's order puts 1 first, so only 2 waits.
        let ups = upstream(&[(1, &[2]), (2, &[1])]);
        let mut d = Dispatch::new(&[1, 2], &ups);
        assert_eq!(d.start(4), vec![1]);
        d.finish(1);
        assert_eq!(d.start(4), vec![2]);
        d.finish(2);
        assert!(d.done());
    }

    #[test]
    fn a_limit_of_zero_still_runs_one() {
        let mut d = Dispatch::new(&[1, 2], &BTreeMap::new());
        assert_eq!(d.start(0), vec![1]);
    }

    #[test]
    fn a_worker_extra_reads_back_what_was_written_and_nothing_else() {
        let extra = WorkerExtra {
            database: 16384,
            generation: u32::MAX,
            scheduler: 4242,
        };
        assert_eq!(WorkerExtra::parse(&extra.to_string()), Some(extra));
        assert!(extra.to_string().len() <= 96, "fits bgw_extra (128 bytes)");
        for bad in ["", "16384 7", "x 7 1", "-1 7 1", "1 2 3 4", "1  2 3"] {
            assert_eq!(WorkerExtra::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_default_is_one_per_core_within_a_quarter_of_the_worker_processes() {
        assert_eq!(parallel_refreshes(0, 2, 8), 2);
        assert_eq!(parallel_refreshes(0, 16, 8), 2);
        assert_eq!(parallel_refreshes(0, 16, 64), 16);
        assert_eq!(parallel_refreshes(0, 0, 8), 1);
        assert_eq!(parallel_refreshes(0, 4, 3), 1);
        assert_eq!(parallel_refreshes(3, 2, 8), 3);
        assert_eq!(parallel_refreshes(1, 8, 8), 1);
    }
}
