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
}
