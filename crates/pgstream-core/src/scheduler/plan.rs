//! Which stream tables a scheduler tick refreshes and in what order: due by schedule, upstream
//! before downstream; and cycle detection for stream tables reading stream tables (pure).

use crate::schedule::Schedule;
use std::collections::{BTreeMap, BTreeSet};

/// A stream table as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub id: i64,
    pub schedule: String,
    /// Last refresh (or creation when never refreshed), PostgreSQL timestamptz microseconds.
    pub last_refresh: i64,
    pub active: bool,
    /// Ids of the stream tables this one reads.
    pub upstream: Vec<i64>,
}

/// The schedule each table is refreshed on: its own, or for a CALCULATED one the most frequent
/// (shortest minimum interval) effective schedule among the stream tables reading it,
/// directly or through other calculated ones. `None` for a calculated table nobody with a
/// schedule reads, and for a schedule that no longer parses.
pub fn effective_schedules(tables: &[Scheduled]) -> BTreeMap<i64, Option<Schedule>> {
    let own: BTreeMap<i64, Option<Schedule>> = tables
        .iter()
        .map(|t| (t.id, Schedule::parse(&t.schedule).ok()))
        .collect();
    let mut readers: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for t in tables {
        for up in &t.upstream {
            readers.entry(*up).or_default().push(t.id);
        }
    }
    fn resolve(
        id: i64,
        own: &BTreeMap<i64, Option<Schedule>>,
        readers: &BTreeMap<i64, Vec<i64>>,
        visiting: &mut BTreeSet<i64>,
    ) -> Option<Schedule> {
        match own.get(&id)? {
            Some(Schedule::Calculated) => {
                if !visiting.insert(id) {
                    return None; // a cycle of calculated tables has no schedule
                }
                let tightest = readers
                    .get(&id)
                    .into_iter()
                    .flatten()
                    .filter_map(|r| resolve(*r, own, readers, visiting))
                    .min_by_key(|s| s.min_interval_seconds());
                visiting.remove(&id);
                tightest
            }
            other => other.clone(),
        }
    }
    tables
        .iter()
        .map(|t| (t.id, resolve(t.id, &own, &readers, &mut BTreeSet::new())))
        .collect()
}

/// Ids of the due, active stream tables at `now`, ordered so a table comes after every stream
/// table it reads. Tables without an effective schedule are skipped.
pub fn due_in_order(tables: &[Scheduled], now: i64) -> Vec<i64> {
    let schedules = effective_schedules(tables);
    let due: BTreeSet<i64> = tables
        .iter()
        .filter(|t| t.active)
        .filter(|t| {
            schedules
                .get(&t.id)
                .cloned()
                .flatten()
                .and_then(|s| s.next_due_after(t.last_refresh))
                .is_some_and(|at| at <= now)
        })
        .map(|t| t.id)
        .collect();
    topological_order(tables)
        .into_iter()
        .filter(|id| due.contains(id))
        .collect()
}

/// Every table id, upstream before downstream (ties by id); tables on a cycle come last.
pub fn topological_order(tables: &[Scheduled]) -> Vec<i64> {
    let known: BTreeSet<i64> = tables.iter().map(|t| t.id).collect();
    let mut waiting_on: BTreeMap<i64, BTreeSet<i64>> = tables
        .iter()
        .map(|t| {
            let ups = t
                .upstream
                .iter()
                .copied()
                .filter(|u| known.contains(u) && *u != t.id);
            (t.id, ups.collect())
        })
        .collect();
    let mut order = Vec::with_capacity(tables.len());
    while !waiting_on.is_empty() {
        let ready: Vec<i64> = waiting_on
            .iter()
            .filter(|(_, ups)| ups.is_empty())
            .map(|(id, _)| *id)
            .collect();
        if ready.is_empty() {
            order.extend(waiting_on.keys().copied());
            break;
        }
        for id in &ready {
            waiting_on.remove(id);
        }
        for ups in waiting_on.values_mut() {
            for id in &ready {
                ups.remove(id);
            }
        }
        order.extend(ready);
    }
    order
}

/// If `table` reading `reads` would close a cycle, the cycle as a path from `table` back to
/// it. `edges` maps each stream table to the stream tables it reads.
pub fn cycle_through(
    table: i64,
    reads: &[i64],
    edges: &BTreeMap<i64, Vec<i64>>,
) -> Option<Vec<i64>> {
    fn walk(
        at: i64,
        target: i64,
        edges: &BTreeMap<i64, Vec<i64>>,
        path: &mut Vec<i64>,
        seen: &mut BTreeSet<i64>,
    ) -> bool {
        if at == target {
            return true;
        }
        if !seen.insert(at) {
            return false;
        }
        path.push(at);
        for next in edges.get(&at).into_iter().flatten() {
            if walk(*next, target, edges, path, seen) {
                return true;
            }
        }
        path.pop();
        false
    }
    for first in reads {
        let mut path = vec![table];
        let mut seen = BTreeSet::new();
        if walk(*first, table, edges, &mut path, &mut seen) {
            path.push(table);
            return Some(path);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(id: i64, schedule: &str, last: i64, upstream: &[i64]) -> Scheduled {
        Scheduled {
            id,
            schedule: schedule.into(),
            last_refresh: last,
            active: true,
            upstream: upstream.to_vec(),
        }
    }

    const SECOND: i64 = 1_000_000;

    #[test]
    fn only_due_tables_are_refreshed() {
        let tables = [table(1, "10s", 0, &[]), table(2, "1m", 0, &[])];
        assert_eq!(due_in_order(&tables, 5 * SECOND), Vec::<i64>::new());
        assert_eq!(due_in_order(&tables, 10 * SECOND), vec![1]);
        assert_eq!(due_in_order(&tables, 60 * SECOND), vec![1, 2]);
    }

    #[test]
    fn suspended_tables_are_skipped() {
        let mut suspended = table(1, "1s", 0, &[]);
        suspended.active = false;
        assert!(due_in_order(&[suspended], 100 * SECOND).is_empty());
    }

    #[test]
    fn a_chain_refreshes_upstream_first_whatever_the_ids() {
        let tables = [
            table(1, "1s", 0, &[3]),
            table(2, "1s", 0, &[]),
            table(3, "1s", 0, &[2]),
        ];
        assert_eq!(due_in_order(&tables, 5 * SECOND), vec![2, 3, 1]);
        assert_eq!(topological_order(&tables), vec![2, 3, 1]);
    }

    #[test]
    fn cycles_are_found_and_named() {
        let edges: BTreeMap<i64, Vec<i64>> = [(2, vec![3]), (3, vec![1])].into_iter().collect();
        assert_eq!(cycle_through(1, &[2], &edges), Some(vec![1, 2, 3, 1]));
        assert_eq!(cycle_through(1, &[3], &edges), Some(vec![1, 3, 1]));
        assert_eq!(cycle_through(4, &[2], &edges), None);
        assert_eq!(cycle_through(1, &[1], &BTreeMap::new()), Some(vec![1, 1]));
    }

    #[test]
    fn calculated_tables_follow_their_most_frequent_reader() {
        let tables = [
            table(1, "CALCULATED", 0, &[]),
            table(2, "10s", 0, &[1]),
            table(3, "CALCULATED", 0, &[1]),
            table(4, "2s", 0, &[3]),
            table(5, "CALCULATED", 0, &[]),
        ];
        let effective = effective_schedules(&tables);
        let seconds = |id: i64| effective[&id].as_ref().map(|s| s.min_interval_seconds());
        assert_eq!(seconds(3), Some(2));
        assert_eq!(seconds(1), Some(2), "through calculated table 3 to table 4");
        assert_eq!(seconds(5), None, "nobody reads it");
        assert_eq!(due_in_order(&tables, 3 * SECOND), vec![1, 3, 4]);
    }

    #[test]
    fn a_cycle_does_not_hang_the_order() {
        let tables = [
            table(1, "1s", 0, &[2]),
            table(2, "1s", 0, &[1]),
            table(3, "1s", 0, &[]),
        ];
        assert_eq!(topological_order(&tables), vec![3, 1, 2]);
    }
}
