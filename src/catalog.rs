//! The engine's gateway to the catalog tables pgstream.pgs_stream_tables and
//! pgstream.pgs_dependencies (a few readers elsewhere: see docs/ARCHITECTURE.md section 3).

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiHeapTupleData;

use crate::modes::{EffectiveMode, RefreshKind};
use crate::settings::{self, Restriction};

/// One row of pgstream.pgs_stream_tables, the parts the engine acts on.
#[derive(Debug, Clone)]
pub struct StreamTable {
    pub id: i64,
    pub query_hash: Option<String>,
    /// The search_path the defining query is resolved with (captured at create).
    pub search_path: String,
    /// Whether the result changes only when a source does (so an unchanged source can be skipped).
    pub depends_only_on_sources: bool,
    /// When not: what makes its result change by itself.
    pub changes_by_itself: Option<String>,
    /// The settings its refreshes run with, as `name=value`.
    pub query_settings: Vec<String>,
    /// Where the last refresh left off in the sources' changes.
    pub consumed: Option<Position>,
    /// What refresh_mode resolved to, None until decided.
    pub effective_mode: Option<EffectiveMode>,
    pub relid: pg_sys::Oid,
    pub schema: String,
    pub name: String,
    pub defining_query: String,
    pub schedule: String,
    pub refresh_mode: String,
    pub status: String,
    /// Whether it was ever refreshed (one created without `initialize` was not).
    pub populated: bool,
    /// The columns of its unique key; None: a multiset with `__pgs_row_id`.
    pub row_key: Option<Vec<String>>,
    /// What its query meant when last analyzed (pgstream._meaning); None: not known.
    pub meaning: Option<String>,
}

impl StreamTable {
    /// `"schema"."name"`, quoted for SQL.
    pub fn qualified(&self) -> String {
        pgrx::spi::quote_qualified_identifier(&self.schema, &self.name)
    }

    /// `schema.name` for messages, quoted only where needed.
    pub fn display_name(&self) -> String {
        display_name(&self.schema, &self.name)
    }
}

/// A point in the sources' change history: the changes a refresh covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Committed changes visible in this snapshot (text form) are covered...
    pub snapshot: String,
    /// ...and the refreshing transaction's own changes up to sequence number `own_seq`.
    pub own_xid: Option<String>,
    pub own_seq: Option<i64>,
}

impl Position {
    /// The position in the first three columns of a result's current row (snapshot text, own xid text, own
    /// sequence number), as the refresh statements return it.
    pub fn from_row(row: &pgrx::spi::SpiTupleTable) -> Result<Position, pgrx::spi::Error> {
        Ok(Position {
            snapshot: row.get::<String>(1)?.expect("a covered snapshot"),
            own_xid: row.get::<String>(2)?,
            own_seq: row.get::<i64>(3)?,
        })
    }
}

/// A relation a stream table reads, as PostgreSQL's analysis of the query found it.
#[derive(Debug, Clone)]
pub struct Source {
    pub relid: pg_sys::Oid,
    pub schema: String,
    pub name: String,
    pub kind: String,
    /// The columns the query reads (None: all of them).
    pub used_columns: Option<Vec<String>>,
}

/// `schema.name` for messages: each part quoted only where PostgreSQL would need it.
pub fn display_name(schema: &str, name: &str) -> String {
    format!(
        "{}.{}",
        pgrx::spi::quote_identifier(schema),
        pgrx::spi::quote_identifier(name)
    )
}

// Every query here goes through `connect_mut`/`update` (read-write SPI): pgrx runs `select` read-only
// while the current (sub)transaction has no xid, and a read-only query would not see the rows and
// tables this transaction made earlier in the same statement.

const SELECT_STREAM_TABLE: &str =
    "SELECT pgs_id, pgs_relid, pgs_schema, pgs_name, defining_query, \
     schedule, refresh_mode, status, pgs_query_hash, search_path, depends_only_on_sources, \
     consumed_snapshot::text, consumed_own_xid::text, consumed_own_seq, effective_mode, \
     installation <> pgstream._installation(), last_refresh_at IS NOT NULL, row_key, pgs_meaning, changes_by_itself, query_settings \
     FROM pgstream.pgs_stream_tables";

/// Column `ordinal` of a catalog row; a type mismatch is a bug, not a NULL.
fn column<T: pgrx::IntoDatum + pgrx::FromDatum>(
    row: &SpiHeapTupleData,
    ordinal: usize,
) -> Option<T> {
    row.get::<T>(ordinal)
        .unwrap_or_else(|e| panic!("reading column {ordinal} of pgstream.pgs_stream_tables: {e}"))
}

fn stream_table_from_row(row: &SpiHeapTupleData) -> StreamTable {
    let text = |i: usize| column::<String>(row, i).unwrap_or_default();
    StreamTable {
        id: column(row, 1).expect("pgs_id is NOT NULL"),
        relid: column(row, 2).expect("pgs_relid is NOT NULL"),
        schema: text(3),
        name: text(4),
        defining_query: text(5),
        schedule: text(6),
        refresh_mode: text(7),
        status: text(8),
        query_hash: column(row, 9),
        search_path: text(10),
        depends_only_on_sources: column(row, 11).unwrap_or(false),
        consumed: column::<String>(row, 12).map(|snapshot| Position {
            snapshot,
            own_xid: column(row, 13),
            own_seq: column(row, 14),
        }),
        effective_mode: column::<String>(row, 15).and_then(|m| EffectiveMode::parse(&m)),
        populated: column(row, 17).unwrap_or(false),
        row_key: column(row, 18),
        meaning: column(row, 19),
        changes_by_itself: column(row, 20),
        query_settings: column(row, 21).unwrap_or_default(),
    }
}

/// The catalog rows matching `where_clause`. A row another installation wrote (a restored dump)
/// is adopted first, and the rows read again.
fn select_stream_tables(where_clause: &str, args: &[DatumWithOid]) -> Vec<StreamTable> {
    let sql = format!("{SELECT_STREAM_TABLE} {where_clause}");
    let read = || {
        Spi::connect_mut(|client| {
            client.update(&sql, None, args).map(|rows| {
                rows.map(|row| (stream_table_from_row(&row), column::<bool>(&row, 16)))
                    .collect::<Vec<_>>()
            })
        })
        .unwrap_or_else(|e| panic!("reading pgstream.pgs_stream_tables failed: {e}"))
    };
    let mut rows = read();
    if rows.iter().any(|(_, foreign)| *foreign == Some(true)) {
        adopt_restored_rows();
        rows = read();
    }
    rows.into_iter().map(|(table, _)| table).collect()
}

/// The stream table stored on relation `relid`, if any.
pub fn find_by_relid(relid: pg_sys::Oid) -> Option<StreamTable> {
    select_stream_tables("WHERE pgs_relid = $1", &[relid.into()])
        .into_iter()
        .next()
}

/// The stream table with catalog id `id`, if it still exists.
pub fn find_by_id(id: i64) -> Option<StreamTable> {
    select_stream_tables("WHERE pgs_id = $1", &[id.into()])
        .into_iter()
        .next()
}

/// Runs `body` with the privileges of the extension's owner, who owns the catalog tables.
/// Callers have already checked that the current user may act on the stream table.
pub(crate) fn as_catalog_owner<R>(body: impl FnOnce() -> R) -> R {
    let owner: pg_sys::Oid = Spi::get_one(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pg_stream_dbt'",
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("extension pg_stream_dbt is not installed in this database"));
    // The owner is a superuser: nothing the caller put on search_path may be resolved.
    settings::as_user(owner, Restriction::None, || {
        settings::with_settings(&[(c"search_path", "pg_catalog, pg_temp")], body)
    })
}

fn run(sql: &str, args: &[DatumWithOid]) {
    Spi::connect_mut(|client| client.update(sql, None, args).map(|_| ()))
        .unwrap_or_else(|e| panic!("updating the pg_stream_dbt catalog failed: {e}"));
}

/// Values for a new catalog row.
pub struct NewStreamTable<'a> {
    pub relid: pg_sys::Oid,
    pub schema: &'a str,
    pub name: &'a str,
    pub defining_query: &'a str,
    pub query_hash: &'a str,
    pub search_path: &'a str,
    pub changes_by_itself: Option<&'a str>,
    pub query_settings: &'a [String],
    pub schedule: &'a str,
    pub refresh_mode: &'a str,
    pub status: &'a str,
    pub row_key: Option<&'a [String]>,
    pub meaning: &'a str,
}

/// Inserts the catalog row and the source list of a new stream table; returns its id.
pub fn insert(new: &NewStreamTable, sources: &[Source]) -> i64 {
    as_catalog_owner(|| {
        let id: i64 = Spi::connect_mut(|client| {
            client
                .update(
                    "INSERT INTO pgstream.pgs_stream_tables \
                     (pgs_relid, pgs_schema, pgs_name, defining_query, pgs_query_hash, schedule, \
                      refresh_mode, status, search_path, depends_only_on_sources, row_key, pgs_meaning, \
                      changes_by_itself, query_settings) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING pgs_id",
                    None,
                    &[
                        new.relid.into(),
                        new.schema.into(),
                        new.name.into(),
                        new.defining_query.into(),
                        new.query_hash.into(),
                        new.schedule.into(),
                        new.refresh_mode.into(),
                        new.status.into(),
                        new.search_path.into(),
                        new.changes_by_itself.is_none().into(),
                        new.row_key.map(|k| k.to_vec()).into(),
                        new.meaning.into(),
                        new.changes_by_itself.into(),
                        new.query_settings.to_vec().into(),
                    ],
                )?
                .first()
                .get_one::<i64>()
        })
        .ok()
        .flatten()
        .expect("INSERT ... RETURNING pgs_id returned no row");
        insert_sources(id, sources);
        id
    })
}

/// Records the relations stream table `id` reads.
fn insert_sources(id: i64, sources: &[Source]) {
    for source in sources {
        run(
            "INSERT INTO pgstream.pgs_dependencies \
                 (pgs_id, source_relid, source_schema, source_name, source_kind, used_columns) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                id.into(),
                source.relid.into(),
                source.schema.as_str().into(),
                source.name.as_str().into(),
                source.kind.as_str().into(),
                source.used_columns.clone().into(),
            ],
        );
    }
}

/// Sets schedule, refresh mode and status (each `None` keeps the stored value).
pub fn update_settings(
    id: i64,
    schedule: Option<&str>,
    refresh_mode: Option<&str>,
    status: Option<&str>,
) {
    as_catalog_owner(|| {
        run(
            "UPDATE pgstream.pgs_stream_tables SET \
             schedule = COALESCE($2, schedule), \
             refresh_mode = COALESCE($3, refresh_mode), \
             status = COALESCE($4, status), \
             consecutive_errors = CASE WHEN $4 = 'ACTIVE' THEN 0 ELSE consecutive_errors END, \
             altered_at = pg_catalog.clock_timestamp() \
             WHERE pgs_id = $1",
            &[
                id.into(),
                schedule.into(),
                refresh_mode.into(),
                status.into(),
            ],
        )
    })
}

/// Removes a stream table's catalog rows (its dependencies go with it).
pub fn delete(id: i64) {
    as_catalog_owner(|| {
        run(
            "DELETE FROM pgstream.pgs_stream_tables WHERE pgs_id = $1",
            &[id.into()],
        );
        run("SELECT pgstream._drop_state_of($1)", &[id.into()]);
    })
}

/// What one successful refresh did.
pub struct RefreshStats<'a> {
    /// Recomputed, changes applied, or skipped (nothing to do).
    pub kind: RefreshKind,
    /// Why it was FULL or SKIPPED.
    pub reason: Option<&'a str>,
    /// The source changes this refresh covered.
    pub covered: Position,
    pub started_at: TimestampWithTimeZone,
    pub duration_ms: f64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_deleted: i64,
}

/// Whether the catalog has the column `last_refresh_reason` (0.2.0 on; a database keeps 0.1.0's
/// catalog until ALTER EXTENSION pg_stream_dbt UPDATE, and refreshes must go on meanwhile).
fn has_reason_column() -> bool {
    unsafe {
        let namespace = pg_sys::get_namespace_oid(c"pgstream".as_ptr(), true);
        let relid = pg_sys::get_relname_relid(c"pgs_stream_tables".as_ptr(), namespace);
        relid != pg_sys::InvalidOid
            && pg_sys::get_attnum(relid, c"last_refresh_reason".as_ptr()) != 0
    }
}

/// Records a successful refresh and clears the error streak.
pub fn record_success(id: i64, stats: &RefreshStats) {
    // Until ALTER EXTENSION ... UPDATE, a database may still have 0.1.0's catalog (no reason).
    let with_reason = has_reason_column();
    let reason_column = if with_reason {
        ", last_refresh_reason = $11"
    } else {
        ""
    };
    let args: [DatumWithOid; 11] = [
        id.into(),
        stats.started_at.into(),
        stats.duration_ms.into(),
        stats.rows_inserted.into(),
        stats.rows_deleted.into(),
        stats.kind.as_str().into(),
        stats.covered.snapshot.as_str().into(),
        stats.covered.own_xid.as_deref().into(),
        stats.covered.own_seq.into(),
        stats.rows_updated.into(),
        stats.reason.into(),
    ];
    as_catalog_owner(|| {
        run(
            &format!(
                "UPDATE pgstream.pgs_stream_tables SET \
             last_refresh_at = $2, last_refresh_duration_ms = $3, \
             last_rows_inserted = $4, last_rows_deleted = $5, last_rows_updated = $10, \
             total_refreshes = total_refreshes + 1, \
             total_refresh_time_ms = total_refresh_time_ms + $3, \
             consecutive_errors = 0, last_refresh_kind = $6, consumed_snapshot = $7::pg_snapshot, \
             consumed_own_xid = $8::xid8, consumed_own_seq = $9{reason_column} \
             WHERE pgs_id = $1"
            ),
            &args[..if with_reason { 11 } else { 10 }],
        );
        if stats.kind != RefreshKind::Skipped {
            forget_covered_changes(id);
        }
    })
}

/// Runs engine-internal `statements` (on pgstream_changes tables, such as aggregate state) as
/// the extension owner.
pub fn run_privileged(statements: &[String]) {
    as_catalog_owner(|| {
        crate::capture::setup::as_engine_ddl(|| {
            for statement in statements {
                run(statement, &[]);
            }
        })
    })
}

/// Whether relation `name` (qualified, quoted) exists, looked up as the extension owner.
pub fn private_relation_exists(name: &str) -> bool {
    as_catalog_owner(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
            &[name.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    })
}

/// What a refresh needs to know about its sources' changes since the last one.
pub struct ChangeState {
    /// DDL ran since (or there was no last refresh): sources must be derived anew.
    pub ddl_pending: bool,
    /// Every source has its statement trigger.
    pub capture_complete: bool,
    /// Every table source has a current row capture the owner may read.
    pub row_capture_complete: bool,
    /// A source was truncated.
    pub truncated: bool,
    /// The sources with changes since (empty when never refreshed).
    pub changed: Vec<u32>,
}

/// The change state of stream table `id` since `snapshot` (None: never refreshed), for a
/// refresh running as `owner`.
pub fn change_state(id: i64, snapshot: Option<&str>, owner: pg_sys::Oid) -> ChangeState {
    Spi::connect_mut(|client| {
        let row = client
            .update(
                "SELECT ddl_pending, capture_complete, row_capture_complete, changed::int8[], truncated \
                 FROM pgstream._change_state($1, $2::pg_catalog.pg_snapshot, $3)",
                None,
                &[id.into(), snapshot.into(), owner.into()],
            )?
            .first();
        Ok::<_, pgrx::spi::Error>(ChangeState {
            ddl_pending: row.get::<bool>(1)?.unwrap_or(true),
            capture_complete: row.get::<bool>(2)?.unwrap_or(false),
            row_capture_complete: row.get::<bool>(3)?.unwrap_or(false),
            changed: row
                .get::<Vec<i64>>(4)?
                .unwrap_or_default()
                .into_iter()
                .map(|r| r as u32)
                .collect(),
            truncated: row.get::<bool>(5)?.unwrap_or(true),
        })
    })
    .unwrap_or_else(|e| panic!("reading the change state failed: {e}"))
}

/// The change state read in a refresh's snapshot (`$1`: the snapshot last covered).
pub fn change_state_in(
    snapshot: &crate::refresh::snapshot::RefreshSnapshot,
    params: &crate::refresh::snapshot::Params,
    id: i64,
    owner: pg_sys::Oid,
) -> ChangeState {
    let row = snapshot.run_text(
        &format!(
            "SELECT ddl_pending, capture_complete, row_capture_complete, truncated, changed::pg_catalog.text \
             FROM pgstream._change_state({id}, $1::pg_catalog.pg_snapshot, {}::pg_catalog.oid)",
            owner.to_u32()
        ),
        params,
    );
    let flag = |i: usize, default: bool| match row.get(i).cloned().flatten().as_deref() {
        Some("t") => true,
        Some("f") => false,
        _ => default,
    };
    let changed = row
        .get(4)
        .cloned()
        .flatten()
        .unwrap_or_default()
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|s| s.trim().parse::<u32>().ok())
        .collect();
    ChangeState {
        ddl_pending: flag(0, true),
        capture_complete: flag(1, false),
        row_capture_complete: flag(2, false),
        truncated: flag(3, true),
        changed,
    }
}

/// Whether nothing stream table `id` reads changed since `snapshot` (no change record, no DDL,
/// every source captured).
pub fn unchanged_since(id: i64, snapshot: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pgstream._unchanged_since($1, $2::pg_catalog.pg_snapshot)",
        &[id.into(), snapshot.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// How a failed refresh counts towards suspending its stream table.
#[derive(Clone, Copy)]
pub struct Suspension {
    /// Failures in a row that suspend it.
    pub max_consecutive_errors: i32,
    /// Seconds after its last success (or creation) during which this failure does not suspend
    /// it (0: it may): a relation it reads was missing, as during a deployment.
    pub grace_seconds: i32,
}

/// Records a failed refresh of stream table `id` from a transaction of its own (the
/// scheduler's, or the error-recorder worker's); suspends the table once it has failed
/// `max_consecutive_errors` times in a row, outside the grace period. Returns whether this
/// failure suspended it, or `None` when the row is locked by another transaction (the failing
/// one) or gone.
pub fn record_failure(id: i64, message: &str, suspension: Suspension) -> Option<bool> {
    settings::with_settings(&[(c"search_path", "pg_catalog, pg_temp")], || {
        Spi::get_one_with_args::<bool>(
            "UPDATE pgstream.pgs_stream_tables s SET \
         total_refreshes = s.total_refreshes + 1, \
         failed_refreshes = s.failed_refreshes + 1, \
         consecutive_errors = s.consecutive_errors + 1, \
         last_error = $2, last_error_at = pg_catalog.clock_timestamp(), \
         status = CASE WHEN s.consecutive_errors + 1 >= $3 \
                            AND pg_catalog.clock_timestamp() - COALESCE(s.last_refresh_at, s.created_at) \
                                >= pg_catalog.make_interval(secs => $4) \
                       THEN 'SUSPENDED' ELSE s.status END \
         FROM (SELECT pgs_id, status AS old_status FROM pgstream.pgs_stream_tables \
               WHERE pgs_id = $1 FOR UPDATE SKIP LOCKED) locked \
         WHERE s.pgs_id = locked.pgs_id \
         RETURNING s.status = 'SUSPENDED' AND locked.old_status <> 'SUSPENDED'",
            &[
                id.into(),
                message.into(),
                suspension.max_consecutive_errors.into(),
                f64::from(suspension.grace_seconds).into(),
            ],
        )
        .ok()
        .flatten()
    })
}

/// Replaces the definition of stream table `id` in place (materialize()'s same-shape recreate).
pub fn redefine(id: i64, definition: &NewStreamTable, sources: &[Source]) {
    as_catalog_owner(|| {
        run(
            "UPDATE pgstream.pgs_stream_tables SET defining_query = $2, pgs_query_hash = $3, \
             schedule = $4, refresh_mode = $5, status = $6, search_path = $7, \
             depends_only_on_sources = $8, consumed_snapshot = NULL, effective_mode = NULL, \
             row_key = $9, pgs_meaning = $10, changes_by_itself = $11, query_settings = $12, \
             altered_at = pg_catalog.clock_timestamp() \
             WHERE pgs_id = $1",
            &[
                id.into(),
                definition.defining_query.into(),
                definition.query_hash.into(),
                definition.schedule.into(),
                definition.refresh_mode.into(),
                definition.status.into(),
                definition.search_path.into(),
                definition.changes_by_itself.is_none().into(),
                definition.row_key.map(|k| k.to_vec()).into(),
                definition.meaning.into(),
                definition.changes_by_itself.into(),
                definition.query_settings.to_vec().into(),
            ],
        );
        run("SELECT pgstream._drop_state_of($1)", &[id.into()]);
        run(
            "DELETE FROM pgstream.pgs_dependencies WHERE pgs_id = $1",
            &[id.into()],
        );
        insert_sources(id, sources);
    })
}

/// Records that stream table `id` now identifies its rows by `row_key` (None: row ids).
pub fn set_row_key(id: i64, row_key: Option<&[String]>) {
    as_catalog_owner(|| {
        run(
            "UPDATE pgstream.pgs_stream_tables SET row_key = $2 WHERE pgs_id = $1",
            &[id.into(), row_key.map(|k| k.to_vec()).into()],
        )
    })
}

/// Records that stream table `id` now lives at `schema.name`.
pub fn rename(id: i64, schema: &str, name: &str) {
    as_catalog_owner(|| {
        run(
            "UPDATE pgstream.pgs_stream_tables SET pgs_schema = $2, pgs_name = $3 WHERE pgs_id = $1",
            &[id.into(), schema.into(), name.into()],
        )
    })
}

/// After a swap recreate, points the stream tables that read relation `old` at `new` (they
/// read it by name, so from now on they read the new table). Returns their names.
pub fn repoint_readers(old: pg_sys::Oid, new: pg_sys::Oid) -> Vec<String> {
    as_catalog_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    "UPDATE pgstream.pgs_dependencies d SET source_relid = $2 \
                     FROM pgstream.pgs_stream_tables s \
                     WHERE d.source_relid = $1 AND s.pgs_id = d.pgs_id \
                     RETURNING pg_catalog.quote_ident(s.pgs_schema) || '.' || pg_catalog.quote_ident(s.pgs_name)",
                    None,
                    &[old.into(), new.into()],
                )
                .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
        })
        .unwrap_or_else(|e| panic!("updating pgstream.pgs_dependencies failed: {e}"))
    })
}

/// Records DDL the engine ran itself that still changes what other stream tables' queries
/// mean (their next refresh analyzes its query again), like the DDL event trigger does.
pub fn record_ddl(tag: &str) {
    as_catalog_owner(|| {
        run(
            "INSERT INTO pgstream_changes.statements (source_relid, operation) VALUES (0, $1) \
             ON CONFLICT DO NOTHING",
            &[tag.into()],
        )
    })
}

/// What the last refresh of stream table `id` was (FULL, DIFFERENTIAL, SKIPPED), if any.
pub fn last_refresh_kind(id: i64) -> Option<String> {
    as_catalog_owner(|| {
        Spi::get_one_with_args::<String>(
            "SELECT last_refresh_kind FROM pgstream.pgs_stream_tables WHERE pgs_id = $1",
            &[id.into()],
        )
        .unwrap_or_else(|e| panic!("reading pgstream.pgs_stream_tables failed: {e}"))
    })
}

/// Taken by create and redefine: no change-record cleanup may run until this transaction ends
/// (the stream table reads sources other transactions cannot see it reading yet).
pub fn hold_off_change_cleanup() {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock_shared($1, 0)",
        &[crate::lock_keys::CHANGE_CLEANUP.into()],
    )
    .unwrap_or_else(|e| panic!("taking the capture lock failed: {e}"));
}

/// Replaces the recorded sources of stream table `id` (after DDL changed what its query reads).
pub fn update_sources(id: i64, analyzed: &crate::query::AnalyzedQuery) {
    as_catalog_owner(|| {
        run(
            "DELETE FROM pgstream.pgs_dependencies WHERE pgs_id = $1",
            &[id.into()],
        );
        insert_sources(id, &analyzed.sources);
        run(
            "UPDATE pgstream.pgs_stream_tables SET depends_only_on_sources = $2, pgs_meaning = $3, \
             changes_by_itself = $4 WHERE pgs_id = $1",
            &[
                id.into(),
                analyzed.changes_by_itself.is_none().into(),
                analyzed.meaning.as_str().into(),
                analyzed.changes_by_itself.as_deref().into(),
            ],
        );
    })
}

/// Whether the catalog records exactly `sources` (relation, kind, columns read) for stream
/// table `id`: then what its sources' change capture must provide is unchanged.
pub fn records_sources(id: i64, sources: &[Source]) -> bool {
    type Key = (u32, String, Option<Vec<String>>);
    let normalize = |mut keys: Vec<Key>| {
        for key in &mut keys {
            if let Some(columns) = key.2.as_mut() {
                columns.sort();
            }
        }
        keys.sort();
        keys
    };
    let recorded: Vec<Key> =
        Spi::connect(|client| {
            client
            .select(
                "SELECT source_relid, source_kind, used_columns FROM pgstream.pgs_dependencies \
                 WHERE pgs_id = $1",
                None,
                &[id.into()],
            )
            .map(|rows| {
                rows.map(|row| {
                    (
                        row.get::<pg_sys::Oid>(1).ok().flatten().map_or(0, |o| o.to_u32()),
                        row.get::<String>(2).ok().flatten().unwrap_or_default(),
                        row.get::<Vec<String>>(3).ok().flatten(),
                    )
                })
                .collect()
            })
        })
        .unwrap_or_else(|e| panic!("reading pgstream.pgs_dependencies failed: {e}"));
    let wanted: Vec<Key> = sources
        .iter()
        .map(|s| (s.relid.to_u32(), s.kind.clone(), s.used_columns.clone()))
        .collect();
    normalize(recorded) == normalize(wanted)
}

/// The relations stream table `id` reads (views and base tables), by oid.
pub fn source_oids(id: i64) -> Vec<pg_sys::Oid> {
    Spi::get_one_with_args::<Vec<pg_sys::Oid>>(
        "SELECT COALESCE(array_agg(source_relid), '{}') FROM pgstream.pgs_dependencies WHERE pgs_id = $1",
        &[id.into()],
    )
    .unwrap_or_else(|e| panic!("reading pgstream.pgs_dependencies failed: {e}"))
    .unwrap_or_default()
}

/// Every relation some stream table reads.
pub fn all_sources() -> Vec<pg_sys::Oid> {
    Spi::get_one::<Vec<pg_sys::Oid>>(
        "SELECT COALESCE(array_agg(DISTINCT source_relid), '{}') FROM pgstream.pgs_dependencies",
    )
    .unwrap_or_else(|e| panic!("reading pgstream.pgs_dependencies failed: {e}"))
    .unwrap_or_default()
}

/// Makes the change capture of the sources of stream table `id`, and of `also` (relations it
/// read before), match what their readers need now.
pub fn sync_capture_of(id: i64, also: &[pg_sys::Oid]) {
    let mut sources = source_oids(id);
    sources.extend_from_slice(also);
    crate::capture::setup::sync(&sources);
}

/// Whether a capture set-up could complete the capture of stream table `id`'s sources: some
/// source lacks capture and is capturable (or is gone, or has capture triggers to take away, on
/// itself or, partitioned, on members of its tree). A source that cannot be captured (a Citus
/// table, an unlogged table, ...) with nothing to take away is not set up again on every
/// refresh: that would take its set-up lock each time and serialize its readers' refreshes.
pub fn capture_repairable(id: i64) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d \
                        CROSS JOIN LATERAL pgstream._capture_blocker(d.source_relid) b(blocker) \
                        WHERE d.pgs_id = $1 AND d.source_kind <> 'view' \
                          AND NOT pgstream._statements_captured(d.source_relid) \
                          AND (b.blocker IS NULL OR b.blocker = 'source missing' \
                               OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t \
                                          WHERE t.tgrelid = d.source_relid \
                                            AND pg_catalog.starts_with(t.tgname, 'pgstream_')) \
                               OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t, \
                                                 (SELECT 'pgstream_part_' || d.source_relid::pg_catalog.text) m(p) \
                                          WHERE t.tgname IN (m.p, m.p || '_ins', m.p || '_upd', m.p || '_del'))))",
        &[id.into()],
    )
    .unwrap_or_else(|e| panic!("reading the capture of stream table {id} failed: {e}"))
    .unwrap_or(true)
}

/// Adopts the rows of a restored catalog (a dump of another database restored here): see
/// `pgstream._adopt_restored_rows`. Cheap when there is nothing to adopt.
pub fn adopt_restored_rows() {
    let adopted = as_catalog_owner(|| {
        Spi::get_one::<bool>("SELECT pgstream._adopt_restored_rows()")
            .unwrap_or_else(|e| panic!("adopting a restored catalog failed: {e}"))
            .unwrap_or(false)
    });
    if adopted {
        crate::capture::setup::rebuild_after_restore();
    }
}

/// Deletes the change records of stream table `id`'s sources that every reader of those
/// sources has covered, and the DDL records every stream table has covered.
fn forget_covered_changes(id: i64) {
    run("SELECT pgstream._forget_covered($1)", &[id.into()]);
}

/// Records what refresh_mode resolved to for stream table `id` and why (when it is FULL under
/// AUTO). A change of the effective mode makes the next refresh FULL (row capture of its
/// sources starts only now) and puts row capture on or off its sources.
pub fn set_effective_mode(id: i64, mode: EffectiveMode, reason: Option<&str>) {
    crate::capture::setup::lock_for_setup(source_oids(id));
    as_catalog_owner(|| {
        run(
            "UPDATE pgstream.pgs_stream_tables SET effective_mode = $2, mode_reason = $3, \
             consumed_snapshot = CASE WHEN effective_mode IS DISTINCT FROM $2 THEN NULL \
                                      ELSE consumed_snapshot END \
             WHERE pgs_id = $1",
            &[id.into(), mode.as_str().into(), reason.into()],
        );
        if mode == EffectiveMode::Full {
            run("SELECT pgstream._drop_state_of($1)", &[id.into()]);
        }
    });
    sync_capture_of(id, &[]);
}

/// The relations stream table `id` reads, as `schema.name (kind)`.
pub fn sources_of(id: i64) -> Vec<String> {
    Spi::connect_mut(|client| {
        client
            .update(
                "SELECT format('%I.%I (%s)', source_schema, source_name, source_kind) \
                 FROM pgstream.pgs_dependencies WHERE pgs_id = $1 ORDER BY source_schema, source_name",
                None,
                &[id.into()],
            )
            .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
    })
    .unwrap_or_else(|e| panic!("reading pgstream.pgs_dependencies failed: {e}"))
}
