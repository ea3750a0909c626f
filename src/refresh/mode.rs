//! Deciding what refresh_mode means for one stream table: DIFFERENTIAL when its query can be
//! maintained from changes, otherwise FULL (AUTO) or an error naming why (DIFFERENTIAL).

use super::plan_catalog::SpiCatalog;
use crate::catalog::{self, StreamTable};
use crate::delta::{self, DeltaPlan, Unsupported};
use crate::error::StreamError;
use crate::modes::RefreshMode;
use std::collections::HashSet;

/// The refresh a stream table gets, with the delta plan when DIFFERENTIAL.
#[derive(Clone)]
pub enum Decision {
    Full { reason: Option<String> },
    Differential(Box<DeltaPlan>),
}

/// Plans `query` for DIFFERENTIAL refresh (in the current settings: run it with the stream
/// table's search_path). `changed` narrows the plan to sources with changes.
pub fn plan(
    query: &str,
    depends_only_on_sources: bool,
    changed: Option<&HashSet<u32>>,
    target: Option<pgrx::pg_sys::Oid>,
) -> Result<DeltaPlan, Unsupported> {
    if !depends_only_on_sources {
        return Err(Unsupported(
            "a function or value whose result can change between calls (now(), random(), \
             CURRENT_DATE, ...) or a read of a system catalog"
                .into(),
        ));
    }
    delta::plan(query, &SpiCatalog::for_table(target), changed)
}

/// Decides the effective mode of `table` under `mode`. DIFFERENTIAL that cannot be had is an
/// error; AUTO that cannot be had is FULL with the reason.
pub fn decide(table: &StreamTable, mode: RefreshMode) -> Decision {
    if mode == RefreshMode::Full {
        return Decision::Full { reason: None };
    }
    match plan(
        &table.defining_query,
        table.depends_only_on_sources,
        None,
        Some(table.relid),
    ) {
        Ok(plan) => Decision::Differential(Box::new(plan)),
        Err(unsupported) if mode == RefreshMode::Differential => StreamError::NotDifferential {
            name: table.display_name(),
            construct: unsupported.0,
        }
        .raise(),
        Err(unsupported) => Decision::Full {
            reason: Some(format!("{unsupported} cannot be maintained differentially")),
        },
    }
}

/// Decides and records the effective mode of `table` under `mode`; tells the user with a
/// NOTICE when AUTO falls back to FULL, and `announce` is set.
pub fn decide_and_record(table: &StreamTable, mode: RefreshMode, announce: bool) -> Decision {
    let decision = decide(table, mode);
    match &decision {
        Decision::Full { reason } => {
            if let (Some(reason), true) = (reason, announce) {
                pgrx::notice!(
                    "stream table {} is refreshed FULL: {reason} (refresh_mode AUTO)",
                    table.display_name()
                );
            }
            catalog::set_effective_mode(table.id, "FULL", reason.as_deref());
        }
        Decision::Differential(_) => catalog::set_effective_mode(table.id, "DIFFERENTIAL", None),
    }
    decision
}
