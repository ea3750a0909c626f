//! pgstream.create_stream_table / alter_stream_table / drop_stream_table / refresh_stream_table.

use super::required;
use crate::catalog::{self, display_name, NewStreamTable};
use crate::error::{OrRaise, StreamError};
use crate::modes::{RefreshMode, Status};
use crate::query;
use crate::refresh::{self, FailureRecording};
use crate::resolve;
use crate::schedule::Schedule;
use pgrx::prelude::*;

/// Refuses refresh modes this version cannot run yet, instead of silently using another.
fn require_available(mode: RefreshMode) {
    if mode != RefreshMode::Full {
        StreamError::ModeNotAvailable {
            mode: mode.to_string(),
        }
        .raise();
    }
}

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
    let schedule = required(schedule, "schedule");
    let mode = RefreshMode::parse(required(refresh_mode, "refresh_mode")).or_raise();
    let initialize = required(initialize, "initialize");
    Schedule::parse(schedule).or_raise();
    require_available(mode);

    let (schema, table) = resolve::creation_target(name);
    let shown = display_name(&schema, &table);
    let analyzed = query::analyze(&shown, query);
    let qualified = pgrx::spi::quote_qualified_identifier(&schema, &table);
    Spi::connect_mut(|client| {
        client.update(
            &format!(
                "CREATE TABLE {qualified} AS SELECT __pgs_q.*, NULL::pg_catalog.int8 AS \"__pgs_row_id\" \
                 FROM {probe} __pgs_q WITH NO DATA",
                probe = query::PROBE_VIEW
            ),
            None,
            &[],
        )?;
        client.update(
            &format!("ALTER TABLE {qualified} ALTER COLUMN \"__pgs_row_id\" SET NOT NULL"),
            None,
            &[],
        )?;
        client.update(
            &format!("CREATE UNIQUE INDEX ON {qualified} (\"__pgs_row_id\")"),
            None,
            &[],
        )?;
        Ok::<_, pgrx::spi::Error>(())
    })
    .unwrap_or_else(|e| panic!("creating table {shown} failed: {e}"));
    query::drop_probe();

    let relid = resolve::relation_oid(&schema, &table).expect("the table just created exists");
    let id = catalog::insert(
        &NewStreamTable {
            relid,
            schema: &schema,
            name: &table,
            defining_query: &analyzed.statement,
            schedule: schedule.trim(),
            refresh_mode: mode.as_str(),
        },
        &analyzed.sources,
    );
    if initialize {
        let created = catalog::find_by_id(id).expect("the catalog row just inserted exists");
        refresh::refresh_now(&created, FailureRecording::None);
    }
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
    if let Some(schedule) = schedule {
        Schedule::parse(schedule).or_raise();
    }
    let mode = refresh_mode.map(|m| RefreshMode::parse(m).or_raise());
    let status = status.map(|s| Status::parse(s).or_raise());
    if let Some(mode) = mode {
        require_available(mode);
    }
    let table = resolve::existing_stream_table(name);
    resolve::require_owner(&table);
    refresh::lock_stream_table(&table);
    catalog::update_settings(
        table.id,
        schedule.map(str::trim),
        mode.map(RefreshMode::as_str),
        status.map(Status::as_str),
    );
}

/// Drops a stream table: its table, data and catalog entries.
#[pg_extern(volatile, schema = "pgstream")]
fn drop_stream_table(name: Option<&str>) {
    let table = resolve::existing_stream_table(required(name, "name"));
    refresh::lock_stream_table(&table);
    // DROP TABLE checks ownership and refuses when other objects depend on the table.
    Spi::run(&format!("DROP TABLE {}", table.qualified()))
        .unwrap_or_else(|e| panic!("dropping {} failed: {e}", table.display_name()));
    catalog::delete(table.id);
}

/// Refreshes a stream table now. A failure is recorded in the catalog and raised.
#[pg_extern(volatile, schema = "pgstream")]
fn refresh_stream_table(name: Option<&str>) {
    let table = resolve::existing_stream_table(required(name, "name"));
    refresh::refresh_now(&table, FailureRecording::OutsideTransaction);
}
