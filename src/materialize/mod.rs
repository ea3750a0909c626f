//! pgstream_dbt.materialize(): the whole dbt lifecycle decision in one call.

pub mod config;
pub mod execute;
pub mod planner;
pub mod swap;
