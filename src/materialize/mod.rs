//! pgstream_dbt.materialize(): the whole dbt lifecycle decision in one call.

pub mod config;
pub mod dbt_empty;
pub mod execute;
pub mod planner;
pub mod swap;
