//! pgstream.create_stream_table / alter_stream_table / drop_stream_table / add_partition /
//! distribute_stream_table / refresh_stream_table.

use super::required;
use crate::engine;
use crate::error::{OrRaise, StreamError};
use crate::modes::{RefreshMode, Status};
use crate::partitioning::{PartitionSpec, ACCEPTED_PARTITION_BY};
use crate::refresh::{self, FailureRecording, Origin};
use crate::resolve;
use pgrx::prelude::*;

/// Creates stream table `name` defined by `query`, and populates it when `initialize`; a
/// partitioned table when `partition_by` is given. (SQL `pgstream.create_stream_table` since
/// 0.4.0, which added `partition_by`.)
#[pg_extern(volatile, schema = "pgstream", name = "create_stream_table")]
fn create_stream_table_v4(
    name: Option<&str>,
    query: Option<&str>,
    schedule: default!(Option<&str>, "'1m'"),
    refresh_mode: default!(Option<&str>, "'DIFFERENTIAL'"),
    initialize: default!(Option<bool>, true),
    partition_by: default!(Option<&str>, "NULL"),
) {
    let name = required(name, "name");
    let query = required(query, "query");
    // A NULL schedule is a calculated one: as often as the stream tables reading it.
    let schedule = schedule.unwrap_or(crate::schedule::CALCULATED);
    let mode = RefreshMode::parse(required(refresh_mode, "refresh_mode")).or_raise();
    let initialize = required(initialize, "initialize");
    let schedule = engine::validate_schedule(schedule);
    let partition_by = partition_by.map(|text| {
        PartitionSpec::parse(text).unwrap_or_else(|e| {
            StreamError::InvalidParameter {
                message: e.to_string(),
                hint: format!("partition_by accepts {ACCEPTED_PARTITION_BY}."),
            }
            .raise()
        })
    });
    let (schema, table) = resolve::creation_target(name);
    engine::create(
        &schema,
        &table,
        &engine::Definition {
            query,
            schedule: &schedule,
            refresh_mode: mode,
            status: None,
            partition_by: partition_by.as_ref(),
            citus: None,
        },
        initialize,
    );
}

/// The five-argument `create_stream_table` of versions before 0.4.0: its C symbol stays for
/// their SQL definitions, which point at it until `ALTER EXTENSION pg_stream_dbt UPDATE`.
#[pg_extern(volatile, sql = false)]
fn create_stream_table(
    name: Option<&str>,
    query: Option<&str>,
    schedule: Option<&str>,
    refresh_mode: Option<&str>,
    initialize: Option<bool>,
) {
    create_stream_table_v4(name, query, schedule, refresh_mode, initialize, None)
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
    let table = resolve::existing_stream_table(name);
    engine::alter(&table, schedule.as_deref(), mode, status);
}

/// Drops a stream table: its table, data and catalog entries.
#[pg_extern(volatile, schema = "pgstream")]
fn drop_stream_table(name: Option<&str>) {
    let table = resolve::existing_stream_table(required(name, "name"));
    engine::drop(&table, false);
}

/// Stream table `name`, its owner checked, under its refresh lock and read again (a recreate
/// may have replaced it meanwhile).
fn owned_and_locked(name: &str) -> crate::catalog::StreamTable {
    let table = resolve::existing_stream_table(name);
    resolve::require_owner(&table);
    refresh::lock_stream_table(&table);
    crate::catalog::find_by_id(table.id).unwrap_or_else(|| {
        StreamError::NotFound {
            name: table.display_name(),
        }
        .raise()
    })
}

/// Adds a partition to a RANGE or LIST partitioned stream table (a LIST one takes `in_values`,
/// a RANGE one `from_values` and `to_values`, MINVALUE / MAXVALUE allowed), moving the rows it
/// takes from the DEFAULT partition; returns how many it moved.
#[pg_extern(volatile, schema = "pgstream")]
fn add_partition(
    stream_table: Option<&str>,
    partition: Option<&str>,
    in_values: default!(Option<Vec<Option<String>>>, "NULL"),
    from_values: default!(Option<Vec<Option<String>>>, "NULL"),
    to_values: default!(Option<Vec<Option<String>>>, "NULL"),
) -> i64 {
    let table = owned_and_locked(required(stream_table, "stream_table"));
    let (schema, name) = resolve::creation_target(required(partition, "partition"));
    let shown = table.display_name();
    let Some(spec) = crate::partitioned::spec_of(table.relid) else {
        StreamError::InvalidParameter {
            message: format!("stream table {shown} is not partitioned"),
            hint: "Create it with partition_by to partition it.".into(),
        }
        .raise()
    };
    let bound = crate::partitioned::bound_clause(
        &shown,
        &spec,
        in_values.as_deref(),
        from_values.as_deref(),
        to_values.as_deref(),
    );
    crate::partitioned::add_partition(&table, &schema, &name, &bound)
}

/// Makes a keyed stream table a Citus distributed table by `distribution_column`, or a Citus
/// reference table when it is NULL (on a Citus coordinator; owner only; waits for a running
/// refresh).
#[pg_extern(volatile, schema = "pgstream")]
fn distribute_stream_table(
    name: Option<&str>,
    distribution_column: default!(Option<&str>, "NULL"),
) {
    let table = owned_and_locked(required(name, "name"));
    crate::distributed::distribute(&table, distribution_column);
}

/// Refreshes a stream table now. A failure is recorded in the catalog and raised.
#[pg_extern(volatile, schema = "pgstream")]
fn refresh_stream_table(name: Option<&str>) {
    let table = resolve::existing_stream_table(required(name, "name"));
    refresh::refresh_now(
        &table,
        FailureRecording::OutsideTransaction,
        Origin::Request,
    );
}

/// How a stream table is refreshed: refresh and effective mode, why not DIFFERENTIAL, how its
/// rows are identified, its sources, and its stages — each with what it computes and the SQL a
/// DIFFERENTIAL refresh runs for it when every source changed.
#[pg_extern(volatile, schema = "pgstream")]
fn explain_stream_table(
    name: Option<&str>,
) -> TableIterator<'static, (name!(property, String), name!(value, Option<String>))> {
    let table = resolve::existing_stream_table(required(name, "name"));
    let mode = table.refresh_mode;
    let mut rows: Vec<(String, Option<String>)> = vec![
        ("refresh_mode".into(), Some(mode.as_str().to_string())),
        (
            "effective_mode".into(),
            table.effective_mode.map(|m| m.as_str().to_string()),
        ),
    ];
    let planned = refresh::with_query_settings(&table, || refresh::mode::plan(&table, None, true));
    let reason = match (&planned, mode) {
        (_, RefreshMode::Full) => Some("refresh_mode is FULL".to_string()),
        (Err(unsupported), _) => Some(format!("the query uses {unsupported}")),
        (Ok(_), _) => None,
    };
    rows.push(("reason".into(), reason));
    let identity = match &table.row_key {
        Some(key) if key.is_empty() => "one row (no key needed)".to_string(),
        Some(key) => format!(
            "key ({}): a unique index on them; changed rows are updated in place",
            key.join(", ")
        ),
        None => "multiset: __pgs_row_id (hash of the row text + copy number)".to_string(),
    };
    rows.push(("row_identity".into(), Some(identity)));
    if let Some(spec) = crate::partitioned::spec_of(table.relid) {
        let own = crate::partitioned::own_partitions_of(table.relid);
        let partitioning = format!(
            "PARTITION BY {}; the engine's partitions: {}",
            spec.describe(),
            own.join(", ")
        );
        rows.push(("partitioning".into(), Some(partitioning)));
    }
    let identity_reason = match &planned {
        Ok(plan) => plan.root_identity.reason.clone(),
        Err(_) => refresh::with_query_settings(&table, || {
            crate::engine::identity_of_choice(&table.defining_query).reason
        }),
    };
    rows.push(("row_identity_reason".into(), Some(identity_reason)));
    rows.push((
        "settings".into(),
        Some(table.query_settings.join("; ")).filter(|s| !s.is_empty()),
    ));
    for source in crate::catalog::sources_of(table.id) {
        rows.push(("source".into(), Some(source)));
    }
    if let Ok(plan) = planned {
        for stage in &plan.stages {
            rows.push(("stage".into(), Some(stage.summary())));
            let sql = stage.refresh_sql();
            rows.push(("stage_sql".into(), sql));
        }
    }
    TableIterator::new(rows)
}
