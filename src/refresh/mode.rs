//! Deciding what refresh_mode means for one stream table — DIFFERENTIAL when its query can be
//! maintained from changes, otherwise FULL (AUTO) or an error naming why (DIFFERENTIAL) — and
//! planning its refreshes.

use super::plan_catalog::SpiCatalog;
use crate::catalog::{self, StreamTable};
use crate::delta::{self, Identity, Names, Plan, PlanRequest, Unsupported};
use crate::error::StreamError;
use crate::modes::{EffectiveMode, RefreshMode};
use std::collections::HashSet;

/// The refresh a stream table gets: its effective mode, with why when it is FULL under AUTO.
pub type Decision = (EffectiveMode, Option<String>);

/// The identity a stream table has (its catalog row says).
pub fn identity_of(table: &StreamTable) -> Identity {
    match &table.row_key {
        Some(key) => Identity::Key(key.clone()),
        None => Identity::Multiset,
    }
}

/// Plans `table`'s DIFFERENTIAL refresh (in the current settings: run it with the stream
/// table's search_path). `changed` narrows the terms to sources with changes; without
/// `render_terms` only whether it can be planned, and its FULL SQL, are worked out.
pub fn plan(
    table: &StreamTable,
    changed: Option<&HashSet<u32>>,
    render_terms: bool,
) -> Result<Plan, Unsupported> {
    let changes_by_itself = match (&table.changes_by_itself, table.depends_only_on_sources) {
        (Some(what), _) => Some(what.clone()),
        (None, false) => Some("a function or value whose result can change between calls".into()),
        (None, true) => None,
    };
    plan_query(
        &table.defining_query,
        changes_by_itself.as_deref(),
        &PlanRequest {
            names: Names { id: table.id },
            changed,
            render_terms,
        },
    )
}

/// Plans `query` (see [`plan`]).
/// `changes_by_itself`: what makes the query's result change without its sources (refused).
pub fn plan_query(
    query: &str,
    changes_by_itself: Option<&str>,
    request: &PlanRequest,
) -> Result<Plan, Unsupported> {
    if let Some(what) = changes_by_itself {
        return Err(Unsupported::new(format!(
            "{what}, whose result can change without any source changing"
        )));
    }
    delta::plan(query, &SpiCatalog::default(), request)
}

/// Decides the effective mode of `table` under `mode`. DIFFERENTIAL that cannot be had is an
/// error; AUTO that cannot be had is FULL with the reason.
pub fn decide(table: &StreamTable, mode: RefreshMode) -> Decision {
    if mode == RefreshMode::Full {
        return (EffectiveMode::Full, None);
    }
    match plan(table, None, false) {
        Ok(_) => (EffectiveMode::Differential, None),
        Err(unsupported) if mode == RefreshMode::Differential => StreamError::NotDifferential {
            name: table.display_name(),
            construct: unsupported.to_string(),
        }
        .raise(),
        Err(unsupported) => (
            EffectiveMode::Full,
            Some(format!("{unsupported} cannot be maintained differentially")),
        ),
    }
}

/// Decides and records the effective mode of `table` under `mode`; tells the user with a
/// NOTICE when AUTO falls back to FULL, and `announce` is set.
pub fn decide_and_record(table: &StreamTable, mode: RefreshMode, announce: bool) -> Decision {
    let (effective, reason) = decide(table, mode);
    if let (Some(reason), true) = (&reason, announce) {
        pgrx::notice!(
            "stream table {} is refreshed FULL: {reason} (refresh_mode AUTO)",
            table.display_name()
        );
    }
    catalog::set_effective_mode(table.id, effective, reason.as_deref());
    (effective, reason)
}
