//! Stream-table lifecycle operations shared by the pgstream API and materialize(): create,
//! alter, drop, with validation done by the callers' parsers.

use crate::catalog::{self, display_name, NewStreamTable, StreamTable};
use crate::delta::Identity;
use crate::error::{OrRaise, StreamError};
use crate::gucs;
use crate::modes::{RefreshMode, Status};
use crate::normalize;
use crate::partitioning::PartitionSpec;
use crate::query;
use crate::refresh::{self, FailureRecording, Origin};
use crate::resolve;
use crate::schedule::Schedule;
use crate::scheduler;
use pgrx::prelude::*;

/// The schemas of the current search_path, quoted, as a search_path value; stored with a
/// stream table so its query means the same whoever refreshes it.
pub fn current_search_path() -> String {
    Spi::get_one::<String>(
        "SELECT COALESCE(pg_catalog.string_agg(pg_catalog.quote_ident(s), ', ' ORDER BY o), '') \
         FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS u(s, o)",
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Parses `text` as a schedule and refuses one shorter than pgstream.min_schedule_seconds;
/// returns the text to store (as given, trimmed; `CALCULATED` in capitals).
pub fn validate_schedule(text: &str) -> String {
    let schedule = Schedule::parse(text).or_raise();
    let minimum = gucs::MIN_SCHEDULE_SECONDS.get().max(1) as u64;
    if schedule.min_interval_seconds() < minimum {
        StreamError::InvalidParameter {
            message: format!(
                "schedule \"{}\" is shorter than pgstream.min_schedule_seconds ({minimum} seconds)",
                text.trim()
            ),
            hint: "Use a longer schedule, or lower pgstream.min_schedule_seconds (superuser)."
                .into(),
        }
        .raise();
    }
    match schedule {
        Schedule::Calculated => schedule.text(),
        _ => text.trim().to_string(),
    }
}

/// What a new stream table is made from.
pub struct Definition<'a> {
    pub query: &'a str,
    pub schedule: &'a str,
    pub refresh_mode: RefreshMode,
    pub status: Option<Status>,
    /// Make it a partitioned table (`None`: a plain table).
    pub partition_by: Option<&'a PartitionSpec>,
    /// The Citus table materialize() makes it (after creating it; `None`: a local table).
    pub citus: Option<&'a crate::citus_table::CitusTable>,
}

/// Creates stream table `schema.name` (the name must be free) and populates it when
/// `initialize`. Everything happens in the caller's transaction.
pub fn create(schema: &str, name: &str, definition: &Definition, initialize: bool) -> StreamTable {
    let analyzed = query::analyze(&display_name(schema, name), definition.query);
    create_from_probe(schema, name, &analyzed, definition, initialize)
}

/// Like [`create`], for a query [`query::analyze`] has already turned into the probe view.
pub fn create_from_probe(
    schema: &str,
    name: &str,
    analyzed: &query::AnalyzedQuery,
    definition: &Definition,
    initialize: bool,
) -> StreamTable {
    let shown = display_name(schema, name);
    catalog::hold_off_change_cleanup();
    let qualified = pgrx::spi::quote_qualified_identifier(schema, name);
    let identity = identity_of(&analyzed.statement);
    let index = free_identity_index_name(schema, name, &identity);
    if let Some(spec) = definition.partition_by {
        crate::partitioned::require_result_columns(&shown, spec, &query::probe_columns());
    }
    for statement in table_statements(
        &qualified,
        index.as_deref(),
        &identity,
        definition.partition_by,
    ) {
        Spi::run(&statement).unwrap_or_else(|e| panic!("creating table {shown} failed: {e}"));
    }
    if let Some(spec) = definition.partition_by {
        crate::partitioned::create_own_partitions(schema, name, spec);
    }
    query::drop_probe();
    let row_key = match &identity {
        Identity::Key(key) => Some(key.clone()),
        Identity::Multiset => None,
    };

    let relid = resolve::relation_oid(schema, name).expect("the table just created exists");
    let hash = normalize::query_hash(&analyzed.statement);
    let search_path = current_search_path();
    let id = catalog::insert(
        &NewStreamTable {
            relid,
            schema,
            name,
            defining_query: &analyzed.statement,
            query_hash: &hash,
            search_path: &search_path,
            changes_by_itself: analyzed.changes_by_itself.as_deref(),
            query_settings: &analyzed.settings,
            meaning: &analyzed.meaning,
            schedule: definition.schedule,
            refresh_mode: definition.refresh_mode,
            status: definition.status.unwrap_or(Status::Active),
            row_key: row_key.as_deref(),
        },
        &analyzed.sources,
    );
    // (Deciding the mode below puts the change capture on the sources.)
    let created = catalog::find_by_id(id).expect("the catalog row just inserted exists");
    if !scheduler::preloaded() {
        notice!(
            "pg_stream_dbt is not in shared_preload_libraries, so no scheduler runs: stream table {shown} \
             refreshes only when pgstream.refresh_stream_table() is called"
        );
    }
    refresh::with_query_settings(&created, || {
        refresh::mode::decide_and_record(&created, definition.refresh_mode, true)
    });
    if initialize {
        refresh::refresh_now(&created, FailureRecording::None, Origin::Request);
    }
    catalog::find_by_id(id).expect("the catalog row just inserted exists")
}

/// How a stream table of `query` identifies its rows (planned in the current settings).
pub fn identity_of(query: &str) -> Identity {
    identity_of_choice(query).identity
}

/// [`identity_of`] with the reason for it.
pub fn identity_of_choice(query: &str) -> crate::delta::IdentityChoice {
    crate::delta::identity_of(query, &crate::refresh::plan_catalog::SpiCatalog::default())
}

/// The name stream table `schema.name`'s identity index gets, unless a relation has it already
/// (then PostgreSQL chooses one).
pub fn free_identity_index_name(schema: &str, name: &str, identity: &Identity) -> Option<String> {
    let index = crate::names::identity_index_name(name, matches!(identity, Identity::Key(_)));
    resolve::relation_oid(schema, &index)
        .is_none()
        .then_some(index)
}

/// The statements creating a stream table `qualified` from the probe view with `identity`:
/// its key's unique index, or the `__pgs_row_id` column of a multiset (index named `index`).
/// A partitioned one is made from the probe's columns (CREATE TABLE AS cannot partition), its
/// unique index extended by the partition columns the identity lacks.
pub fn table_statements(
    qualified: &str,
    index: Option<&str>,
    identity: &Identity,
    partition_by: Option<&PartitionSpec>,
) -> Vec<String> {
    let probe = query::PROBE_VIEW;
    let row_id = "\"__pgs_row_id\"".to_string();
    let mut statements = match (identity, partition_by) {
        (Identity::Key(_), None) => vec![format!(
            "CREATE TABLE {qualified} AS SELECT * FROM {probe} WITH NO DATA"
        )],
        (Identity::Multiset, None) => vec![
            format!(
                "CREATE TABLE {qualified} AS SELECT __pgs_q.*, NULL::pg_catalog.int8 AS {row_id} \
                 FROM {probe} __pgs_q WITH NO DATA"
            ),
            format!("ALTER TABLE {qualified} ALTER COLUMN {row_id} SET NOT NULL"),
        ],
        (Identity::Key(_), Some(spec)) => vec![format!(
            "CREATE TABLE {qualified} (LIKE {probe}) {}",
            spec.partition_by_clause()
        )],
        (Identity::Multiset, Some(spec)) => vec![format!(
            "CREATE TABLE {qualified} (LIKE {probe}, {row_id} pg_catalog.int8 NOT NULL) {}",
            spec.partition_by_clause()
        )],
    };
    statements.extend(identity_index(qualified, index, identity, partition_by));
    statements
}

/// The unique index identifying the rows of stream table `qualified` (none for a one-row
/// result), named `index` when given; on a partitioned table extended by the partition columns
/// the identity lacks (PostgreSQL requires them).
pub fn identity_index(
    qualified: &str,
    index: Option<&str>,
    identity: &Identity,
    partition_by: Option<&PartitionSpec>,
) -> Option<String> {
    let extra = partition_by.map_or(Vec::new(), |spec| match identity {
        Identity::Key(key) => spec.columns_missing_from(key),
        Identity::Multiset => spec.columns.clone(),
    });
    match identity {
        Identity::Key(key) if key.is_empty() => None,
        Identity::Key(key) => Some(crate::delta::statements::key_index(
            qualified, index, key, &extra,
        )),
        Identity::Multiset => {
            let mut columns = vec!["\"__pgs_row_id\"".to_string()];
            columns.extend(extra.iter().map(|c| crate::sql_text::quote_ident(c)));
            let named = index
                .map(|i| format!("{} ", pgrx::spi::quote_identifier(i)))
                .unwrap_or_default();
            Some(format!(
                "CREATE UNIQUE INDEX {named}ON {qualified} ({})",
                columns.join(", ")
            ))
        }
    }
}

/// Sets schedule, refresh mode and status of `table` (each `None` keeps the current value).
pub fn alter(
    table: &StreamTable,
    schedule: Option<&str>,
    refresh_mode: Option<RefreshMode>,
    status: Option<Status>,
) {
    resolve::require_owner(table);
    refresh::lock_stream_table(table);
    if refresh_mode.is_some() {
        // A mode change may sync capture: set-up locks before the catalog row and before the
        // query's sources are locked by planning it (see setup::lock_for_setup).
        crate::capture::setup::lock_for_setup(catalog::source_oids(table.id));
    }
    catalog::update_settings(table.id, schedule.map(str::trim), refresh_mode, status);
    if let Some(mode) = refresh_mode {
        let table = catalog::find_by_id(table.id).expect("the stream table being altered exists");
        refresh::with_query_settings(&table, || {
            refresh::mode::decide_and_record(&table, mode, true)
        });
    }
}

/// Drops `table` and its catalog rows; `cascade` also drops objects that depend on it.
pub fn drop(table: &StreamTable, cascade: bool) {
    refresh::lock_stream_table(table);
    // Renamed or dropped while we waited for the lock? Act on what the catalog says now.
    let Some(table) = catalog::find_by_id(table.id) else {
        StreamError::NotFound {
            name: table.display_name(),
        }
        .raise()
    };
    let current_name = Spi::get_one_with_args::<String>(
        "SELECT $1::pg_catalog.regclass::text",
        &[table.relid.into()],
    )
    .ok()
    .flatten()
    .expect("a stream table in the catalog has a relation");
    // DROP TABLE checks ownership and, without CASCADE, refuses when objects depend on it.
    let sources = catalog::source_oids(table.id);
    crate::capture::setup::lock_for_setup(sources.iter().copied());
    let cascade = if cascade { " CASCADE" } else { "" };
    Spi::run(&format!("DROP TABLE {current_name}{cascade}"))
        .unwrap_or_else(|e| panic!("dropping {} failed: {e}", table.display_name()));
    catalog::delete(table.id);
    crate::capture::setup::sync(&sources);
}
