//! The delta planner's pipeline: a defining query expanded, checked, cut into stages and
//! rendered (delta planning).

use super::ir::{Catalog, PlanRequest, Unsupported};
use super::render::Plan;
use super::{checks, cut, expand, render};

/// Plans the DIFFERENTIAL refresh of `query`.
pub fn plan(
    query: &str,
    catalog: &dyn Catalog,
    request: &PlanRequest,
) -> Result<Plan, Unsupported> {
    let expanded = expand::expand(query, catalog)?;
    checks::check_constructs(&expanded.query)?;
    let drafts = cut::cut(expanded, catalog)?;
    render::render(drafts, catalog, request)
}
