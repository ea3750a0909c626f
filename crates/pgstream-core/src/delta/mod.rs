//! Delta planning for DIFFERENTIAL refresh (pure, no SPI; tested with `cargo test`): a defining
//! query is cut into stages — one per aggregate, DISTINCT, top-k or decorrelated subquery below
//! the top, each materialized in an auxiliary table and maintained by the same refresh — and
//! each stage gets the SQL that turns the changes of its inputs (captured table rows, or the
//! change sets of the stages below) into the changes of its output.
//!
//! Layers, each using only those before it: `ir` (types and names) → `ast` (building and
//! substituting AST) → `expand` (views and CTEs inlined, tables marked) → `scope` (column names)
//! → `checks` (refusals) → `cut` (the stage DAG, subqueries decorrelated) → `blocks` / `filters`
//! (outer joins and EXISTS / IN as filters) → `terms` (inclusion–exclusion terms) →
//! `algebraic` / `keys` (aggregate state, row identity) → `render` (each stage's SQL) →
//! `statements` (what a refresh runs around it).

pub mod algebraic;
pub mod ast;
mod blocks;
mod checks;
mod cut;
mod expand;
mod filters;
#[cfg(test)]
mod golden;
mod identity;
pub mod ir;
pub mod keys;
pub mod render;
mod scope;
pub mod statements;
mod terms;
#[cfg(test)]
mod tests;

pub use identity::identity_of;
pub use ir::{Identity, IdentityChoice, Input, Names, StageIndex, TableInput};
pub use render::{Plan, StageKind, StagePlan, StageRefresh};

use std::collections::HashSet;

/// Where the query's own top level stands (not named in refusals).
pub const TOP_LEVEL: &str = "the query";

/// Why a query cannot be maintained differentially: the construct (as shown to users) and
/// where in the query it is (a CTE, subquery or view name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub construct: String,
    pub location: Option<String>,
}

impl Unsupported {
    pub fn new(construct: impl Into<String>) -> Self {
        Unsupported {
            construct: construct.into(),
            location: None,
        }
    }

    /// Says where, unless a more precise place was said already (the top level goes unsaid).
    pub fn at(mut self, location: &str) -> Self {
        if self.location.is_none() && !location.is_empty() && location != TOP_LEVEL {
            self.location = Some(location.to_string());
        }
        self
    }
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{} (in {location})", self.construct),
            None => f.write_str(&self.construct),
        }
    }
}

/// What a relation named in a query is, as far as delta planning cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// A table whose changes are captured into a change buffer.
    Table(TableInput),
    /// A view, with its definition (names schema-qualified) and its qualified name.
    View { name: String, definition: String },
    /// A relation whose changes cannot be captured, and why (e.g. "partitioned table").
    NotCapturable { reason: String },
}

/// What the planner needs to know from the database.
pub trait Catalog {
    /// The relation `name` (its parts as PostgreSQL folds them) refers to, if any.
    fn relation(&self, name: &[String]) -> Option<Relation>;
    /// Whether `name` (lower case, unqualified) is an aggregate function.
    fn is_aggregate(&self, name: &str) -> bool;
    /// The output columns (name, type) of `query` (SQL), as PostgreSQL sees it; None when the
    /// database cannot tell (tests).
    fn describe(&self, query: &str) -> Option<Vec<(String, String)>>;
    /// A key of table `relid` (its primary key, or a unique index on NOT NULL columns).
    fn table_key(&self, relid: u32) -> Option<Vec<String>>;
    /// Whether values of type `type_name` can make a key (a btree and a hash operator class).
    fn keyable(&self, type_name: &str) -> bool;
}

/// What a plan is for.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    /// The stream table the plan is for (names its auxiliary tables).
    pub names: Names,
    /// The base tables with changes to apply (None: any may have changed).
    pub changed: Option<&'a HashSet<u32>>,
    /// Render the delta terms (false when only checking that the query can be maintained).
    pub render_terms: bool,
}

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
