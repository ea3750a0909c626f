//! The plan of a stream table's changes kept per session, for its next refresh here that trusts
//! this session's verification of its capture (`capture::verified`): then nothing the planner
//! read can have changed since (no DDL was recorded, none of the relations it read sent an
//! invalidation, no other session refreshed or redefined it), and planning again — the
//! relations the query names, their keys and columns, the delta SQL — would give the same plan.

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
    /// By stream table id: its last plan and what it was made from.
    static KEPT: RefCell<HashMap<i64, (Made, Plan)>> = RefCell::new(HashMap::new());
}

/// The plan kept for `table`'s changes of the sources in `changed`, if one was made from the
/// same query, settings and changed sources. Only for a refresh that trusts this session's
/// verification of its capture and found no DDL.
pub fn kept(table: &StreamTable, changed: &HashSet<u32>) -> Option<Plan> {
    let made = Made::of(table, changed);
    KEPT.with(|kept| {
        kept.borrow()
            .get(&table.id)
            .filter(|(kept_from, _)| *kept_from == made)
            .map(|(_, plan)| plan.clone())
    })
}

/// Keeps `plan` of `table`'s changes of `changed`, made by a refresh that found no DDL and its
/// capture intact.
pub fn keep(table: &StreamTable, changed: &HashSet<u32>, plan: &Plan) {
    let made = Made::of(table, changed);
    KEPT.with(|kept| kept.borrow_mut().insert(table.id, (made, plan.clone())));
}
