//! Delta planning for DIFFERENTIAL refresh (pure, no SPI; tested with `cargo test`): a defining
//! query is cut into stages — one per aggregate, DISTINCT, top-k or decorrelated subquery below
//! the top, each materialized in an auxiliary table and maintained by the same refresh — and
//! each stage gets the SQL that turns the changes of its inputs (captured table rows, or the
//! change sets of the stages below) into the changes of its output.
//!
//! Layers, each using only those before it: `ir` (types and names) → `ast` (building and
//! substituting AST) → `expand` (views and CTEs inlined, tables marked) / `scope` (column names)
//! / `checks` (refusals) / `algebraic` (aggregate state) → `cut` (the stage DAG, subqueries
//! decorrelated, COUNT(DISTINCT) split) → `blocks` / `keys` / `flips` (outer joins, row
//! identity, flipping filters) → `filters` (EXISTS / IN as filters) → `terms`
//! (inclusion–exclusion terms) → `render` (each stage's SQL) → `statements` (what a refresh runs
//! around it) → `pipeline` (`plan`: all of them in order) → `identity` (a query's row identity,
//! through `plan`). This file only declares and re-exports them.

pub mod algebraic;
pub mod ast;
mod blocks;
mod checks;
mod cut;
mod expand;
mod filters;
mod flips;
#[cfg(test)]
mod golden;
mod identity;
pub mod ir;
pub mod keys;
mod pipeline;
pub mod render;
mod scope;
pub mod statements;
mod terms;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_distinct;

pub use identity::identity_of;
pub use ir::{
    Catalog, Identity, IdentityChoice, Input, Names, PlanRequest, Relation, StageIndex, TableInput,
    Unsupported, TOP_LEVEL,
};
pub use pipeline::plan;
pub use render::{Plan, StageKind, StagePlan, StageRefresh};
