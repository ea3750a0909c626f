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
    /// tables each reads (any, due or not: only the due ones are waited for).
    pub fn new(due: &[i64], upstream: &BTreeMap<i64, Vec<i64>>) -> Self {
        let due_set: BTreeSet<i64> = due.iter().copied().collect();
        let waits_for = due
            .iter()
            .map(|id| {
                let ups = upstream
                    .get(id)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|u| *u != *id && due_set.contains(u))
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
/// one per CPU core of the machine, `cores`).
pub fn parallel_refreshes(setting: i32, cores: usize) -> usize {
    if setting > 0 {
        setting as usize
    } else {
        cores.max(1)
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
    fn a_limit_of_zero_still_runs_one() {
        let mut d = Dispatch::new(&[1, 2], &BTreeMap::new());
        assert_eq!(d.start(0), vec![1]);
    }

    #[test]
    fn the_default_is_one_per_core() {
        assert_eq!(parallel_refreshes(0, 2), 2);
        assert_eq!(parallel_refreshes(0, 0), 1);
        assert_eq!(parallel_refreshes(3, 2), 3);
        assert_eq!(parallel_refreshes(1, 8), 1);
    }
}
