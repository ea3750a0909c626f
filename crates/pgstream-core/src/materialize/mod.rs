//! The pure half of pgstream_dbt.materialize(): its config, its decision, and undoing dbt's
//! `--empty` rendering.

pub mod config;
pub mod dbt_empty;
pub mod planner;
