//! pgstream-core: everything pg_stream_dbt decides without a database — names, schedules,
//! modes, query normalization and hashing, the materialize() decision, the scheduler's plan
//! and the delta planner — so it is built and tested in seconds with `cargo test -p pgstream-core`.

pub mod change_volume;
pub mod citus_table;
pub mod delta;
pub mod lock_keys;
pub mod materialize;
pub mod modes;
pub mod names;
pub mod normalize;
pub mod object_names;
pub mod partitioning;
pub mod query_settings;
pub mod refresh_decision;
pub mod refresh_reason;
pub mod relation_kind;
pub mod schedule;
pub mod scheduler;
pub mod sql_text;
pub mod work_table_stats;
