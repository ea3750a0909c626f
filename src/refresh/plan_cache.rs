//! The plan of a stream table's changes kept per session, for its next refresh here that trusts
//! this session's verification of its capture (`capture::verified`) and finds no DDL: what the
//! planner read cannot have changed since. DDL on what the query reads (views, functions,
//! types, keys, columns) is recorded by the event triggers, and a refresh that finds a record
//! takes no kept plan; what they do not record (the engine's buffers, another session's
//! refresh, a rollback) makes the refresh verify again. A plan is taken only if it was made no
//! earlier than the verification trusted began, and kept only by a refresh that found no DDL
//! and its capture intact.

use crate::catalog::StreamTable;
use crate::delta::Plan;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// What a plan was made from besides the catalog.
#[derive(PartialEq)]
struct Made {
    query: String,
    meaning: Option<String>,
    search_path: String,
    settings: Vec<String>,
    changed: Vec<u32>,
}

impl Made {
    fn of(table: &StreamTable, changed: &HashSet<u32>) -> Made {
        let mut changed: Vec<u32> = changed.iter().copied().collect();
        changed.sort_unstable();
        Made {
            query: table.defining_query.clone(),
            meaning: table.meaning.clone(),
            search_path: table.search_path.clone(),
            settings: table.query_settings.clone(),
            changed,
        }
    }
}

thread_local! {
    /// By stream table id: its last plan, what it was made from and when (the invalidation
    /// clock of `capture::verified` when its refresh began).
    static KEPT: RefCell<HashMap<i64, (Made, u64, Plan)>> = RefCell::new(HashMap::new());
}

/// The plan kept for `table`'s changes of the sources in `changed`, if one was made from the
/// same query, settings and changed sources, no earlier than `trusted_since` (when the
/// verification the refresh trusts began).
pub fn kept(table: &StreamTable, changed: &HashSet<u32>, trusted_since: u64) -> Option<Plan> {
    let made = Made::of(table, changed);
    KEPT.with(|kept| {
        kept.borrow()
            .get(&table.id)
            .filter(|(kept_from, made_at, _)| *kept_from == made && *made_at >= trusted_since)
            .map(|(_, _, plan)| plan.clone())
    })
}

/// Keeps `plan` of `table`'s changes of `changed`, made by a refresh that began at `made_at`.
pub fn keep(table: &StreamTable, changed: &HashSet<u32>, plan: &Plan, made_at: u64) {
    let made = Made::of(table, changed);
    KEPT.with(|kept| {
        kept.borrow_mut()
            .insert(table.id, (made, made_at, plan.clone()))
    });
}
