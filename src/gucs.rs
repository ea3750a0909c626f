//! The extension's settings (GUCs) and their typed accessors.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Whether the scheduler refreshes stream tables (`pgstream.enabled`).
pub static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Milliseconds between scheduler ticks (`pgstream.scheduler_interval_ms`).
pub static SCHEDULER_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
/// Shortest schedule accepted at create/alter, in seconds (`pgstream.min_schedule_seconds`).
pub static MIN_SCHEDULE_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(10);
/// Failures in a row after which a stream table is suspended (`pgstream.max_consecutive_errors`).
pub static MAX_CONSECUTIVE_ERRORS: GucSetting<i32> = GucSetting::<i32>::new(3);

/// Due stream tables of one database refreshed at once (`pgstream.max_parallel_refreshes`; 0:
/// one per CPU core; 1: one after the other in the database's scheduler worker).
pub static MAX_PARALLEL_REFRESHES: GucSetting<i32> = GucSetting::<i32>::new(0);

/// Seconds since its last success during which failures of a scheduled refresh because a
/// relation its query reads does not exist never suspend it (`pgstream.missing_relation_grace`):
/// a deployment re-creating views (dbt drops a view's dependents with CASCADE and makes them again
/// later in the run) is not a broken stream table.
pub static MISSING_RELATION_GRACE: GucSetting<i32> = GucSetting::<i32>::new(900);

/// Change rows over source rows above which an AUTO refresh recomputes
/// (`pgstream.auto_full_fraction`).
pub static AUTO_FULL_FRACTION: GucSetting<f64> = GucSetting::<f64>::new(0.05);
/// The same for DIFFERENTIAL stream tables, opt-in (`pgstream.differential_full_fraction`).
pub static DIFFERENTIAL_FULL_FRACTION: GucSetting<f64> = GucSetting::<f64>::new(0.0);

/// The change-volume thresholds in effect.
pub fn full_fractions() -> crate::change_volume::Thresholds {
    crate::change_volume::Thresholds {
        auto: AUTO_FULL_FRACTION.get(),
        differential: DIFFERENTIAL_FULL_FRACTION.get(),
    }
}

/// Registers every GUC; called from `_PG_init`.
pub fn register() {
    GucRegistry::define_bool_guc(
        c"pgstream.enabled",
        c"Whether the pg_stream_dbt scheduler refreshes stream tables.",
        c"When off, scheduler workers stop; manual refresh keeps working.",
        &ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pgstream.scheduler_interval_ms",
        c"Milliseconds between pg_stream_dbt scheduler ticks.",
        c"Each tick refreshes the stream tables that are due.",
        &SCHEDULER_INTERVAL_MS,
        10,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"pgstream.min_schedule_seconds",
        c"Shortest stream-table schedule accepted, in seconds.",
        c"create_stream_table, alter_stream_table and materialize refuse shorter schedules.",
        &MIN_SCHEDULE_SECONDS,
        1,
        86_400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"pgstream.max_consecutive_errors",
        c"Failed refreshes in a row after which a stream table is suspended.",
        c"A successful refresh resets the count; alter_stream_table(status => 'ACTIVE') resumes.",
        &MAX_CONSECUTIVE_ERRORS,
        1,
        1_000_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pgstream.max_parallel_refreshes",
        c"Due stream tables of one database refreshed at once, each by a refresh worker (0: one per CPU core).",
        c"1 refreshes them one after the other in the database's scheduler worker. Each refresh worker takes a max_worker_processes slot; without one the scheduler worker refreshes the table itself.",
        &MAX_PARALLEL_REFRESHES,
        0,
        1024,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pgstream.missing_relation_grace",
        c"Seconds after its last success during which a scheduled refresh failing because a relation its query reads does not exist does not count towards suspension.",
        c"Deployments (dbt run) drop and re-create views; 0 counts every failure.",
        &MISSING_RELATION_GRACE,
        0,
        86_400 * 7,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_float_guc(
        c"pgstream.auto_full_fraction",
        c"Change rows, as a fraction of the rows of the sources they change, above which an AUTO stream table is recomputed instead.",
        c"0 never recomputes for volume. The refresh's reason (last_refresh_reason) says so.",
        &AUTO_FULL_FRACTION,
        0.0,
        1_000.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"pgstream.differential_full_fraction",
        c"The same fraction for DIFFERENTIAL stream tables (0, the default: always apply changes).",
        c"Opt-in: a DIFFERENTIAL refresh over it recomputes, and says so in last_refresh_reason.",
        &DIFFERENTIAL_FULL_FRACTION,
        0.0,
        1_000.0,
        GucContext::Userset,
        GucFlags::default(),
    );
}
