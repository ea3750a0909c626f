//! pgstream_dbt.materialize(): the whole dbt lifecycle decision in one call.

pub use pgstream_core::materialize::{config, dbt_empty, planner};

pub mod execute;
pub mod swap;
