//! pg_stream_dbt: stream tables (incrementally maintained tables) for dbt on PostgreSQL.

pub use pgstream_core::{
    change_volume, citus_table, delta, lock_keys, modes, names, normalize, partitioning,
    query_settings, refresh_decision, refresh_reason, relation_kind, schedule, sql_text,
    work_table_stats,
};

pub mod api;
pub mod capture;
pub mod catalog;
pub mod distributed;
pub mod engine;
pub mod error;
pub mod gucs;
pub mod kept_plans;
pub mod materialize;
pub mod partitioned;
pub mod query;
pub mod refresh;
pub mod resolve;
pub mod scheduler;
pub mod settings;
pub mod stability;

pgrx::pg_module_magic!(name, version);

#[cfg(any(feature = "pg13", feature = "pg14"))]
compile_error!("pg_stream_dbt needs PostgreSQL 15 or later (changes are applied with MERGE)");

/// Schema of the stream-table engine (functions, catalog, monitoring view).
#[pgrx::pg_schema]
mod pgstream {}

/// Schema of the dbt entry points.
#[pgrx::pg_schema]
mod pgstream_dbt {}

pgrx::extension_sql_file!(
    "../sql/catalog.sql",
    name = "catalog",
    requires = [pgstream, pgstream_dbt]
);
pgrx::extension_sql_file!(
    "../sql/capture.sql",
    name = "capture",
    requires = ["catalog"]
);
// sql/monitoring.sql is placed in src/api/schedules.rs, beside the functions its view calls.
pgrx::extension_sql_file!("../sql/ddl_events.sql", name = "ddl_events", finalize);

/// Registers the settings; under shared_preload_libraries also the scheduler.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Errors reach clients as PostgreSQL errors, never with a Rust backtrace in their DETAIL:
    // pgrx captures one for every error passing through Rust whenever RUST_BACKTRACE is set in
    // the server's environment. RUST_LIB_BACKTRACE=0 turns that capture off (set before any
    // error can happen in this process; backends inherit it).
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    gucs::register();
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        scheduler::register_at_preload();
    }
}

#[cfg(test)]
pub mod pg_test {
    /// Called once by `cargo pgrx test` before the tests run.
    pub fn setup(_options: Vec<&str>) {}

    /// postgresql.conf settings for the test cluster.
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;
