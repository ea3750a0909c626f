//! pgstream.create_stream_table / alter_stream_table / drop_stream_table / refresh_stream_table.

use super::required;
use crate::engine;
use crate::error::OrRaise;
use crate::modes::{RefreshMode, Status};
use crate::refresh::{self, FailureRecording, Skipping};
use crate::resolve;
use pgrx::prelude::*;

/// Creates stream table `name` defined by `query`, and populates it when `initialize`.
#[pg_extern(volatile, schema = "pgstream")]
fn create_stream_table(
    name: Option<&str>,
    query: Option<&str>,
    schedule: default!(Option<&str>, "'1m'"),
    refresh_mode: default!(Option<&str>, "'DIFFERENTIAL'"),
    initialize: default!(Option<bool>, true),
) {
    let name = required(name, "name");
    let query = required(query, "query");
    // A NULL schedule is a calculated one: as often as the stream tables reading it.
    let schedule = schedule.unwrap_or(crate::schedule::CALCULATED);
    let mode = RefreshMode::parse(required(refresh_mode, "refresh_mode")).or_raise();
    let initialize = required(initialize, "initialize");
    let schedule = engine::validate_schedule(schedule);
    engine::require_available(mode);
    let (schema, table) = resolve::creation_target(name);
    engine::create(
        &schema,
        &table,
        &engine::Definition {
            query,
            schedule: &schedule,
            refresh_mode: mode,
            status: None,
        },
        initialize,
    );
}

/// Changes a stream table's schedule, refresh mode or status; NULL keeps the current value.
#[pg_extern(volatile, schema = "pgstream")]
fn alter_stream_table(
    name: Option<&str>,
    schedule: default!(Option<&str>, "NULL"),
    refresh_mode: default!(Option<&str>, "NULL"),
    status: default!(Option<&str>, "NULL"),
) {
    let name = required(name, "name");
    let schedule = schedule.map(engine::validate_schedule);
    let mode = refresh_mode.map(|m| RefreshMode::parse(m).or_raise());
    let status = status.map(|s| Status::parse(s).or_raise());
    if let Some(mode) = mode {
        engine::require_available(mode);
    }
    let table = resolve::existing_stream_table(name);
    engine::alter(&table, schedule.as_deref(), mode, status);
}

/// Drops a stream table: its table, data and catalog entries.
#[pg_extern(volatile, schema = "pgstream")]
fn drop_stream_table(name: Option<&str>) {
    let table = resolve::existing_stream_table(required(name, "name"));
    engine::drop(&table, false);
}

/// Refreshes a stream table now. A failure is recorded in the catalog and raised.
#[pg_extern(volatile, schema = "pgstream")]
fn refresh_stream_table(name: Option<&str>) {
    let table = resolve::existing_stream_table(required(name, "name"));
    refresh::refresh_now(
        &table,
        FailureRecording::OutsideTransaction,
        Skipping::Never,
    );
}
