//! pgstream.pgs_stream_tables: reading a stream table's row, and creating, changing and
//! removing it.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiHeapTupleData;

use super::dependencies::{insert_sources, source_oids, sync_capture_of, Source};
use super::{as_catalog_owner, run, Position, StreamTable};
use crate::modes::{EffectiveMode, RefreshMode, Status};
use crate::scheduler::plan::Scheduled;

/// The catalog row's columns as [`stream_table_from_row`] reads them, then `$where`.
macro_rules! select_stream_table {
    ($where:literal) => {
        concat!(
            "SELECT pgs_id, pgs_relid, pgs_schema, pgs_name, defining_query, \
             schedule, refresh_mode, status, pgs_query_hash, search_path, depends_only_on_sources, \
             consumed_snapshot::text, consumed_own_xid::text, consumed_own_seq, effective_mode, \
             installation <> pgstream._installation(), last_refresh_at IS NOT NULL, row_key, \
             pgs_meaning, changes_by_itself, query_settings \
             FROM pgstream.pgs_stream_tables ",
            $where
        )
    };
}

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
        refresh_mode: RefreshMode::parse(&text(7))
            .unwrap_or_else(|e| panic!("pgstream.pgs_stream_tables holds {e}")),
        status: Status::parse(&text(8))
            .unwrap_or_else(|e| panic!("pgstream.pgs_stream_tables holds {e}")),
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
/// (Every refresh reads its row twice: the plans are kept for the session.)
fn select_stream_tables(sql: &'static str, args: &[DatumWithOid]) -> Vec<StreamTable> {
    let read = || {
        crate::kept_plans::query(sql, args, |rows| {
            Ok(rows
                .map(|row| (stream_table_from_row(&row), column::<bool>(&row, 16)))
                .collect::<Vec<_>>())
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
    select_stream_tables(
        select_stream_table!("WHERE pgs_relid = $1"),
        &[relid.into()],
    )
    .into_iter()
    .next()
}

/// The stream table with catalog id `id`, if it still exists.
pub fn find_by_id(id: i64) -> Option<StreamTable> {
    select_stream_tables(select_stream_table!("WHERE pgs_id = $1"), &[id.into()])
        .into_iter()
        .next()
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
    pub refresh_mode: RefreshMode,
    pub status: Status,
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
                        new.refresh_mode.as_str().into(),
                        new.status.as_str().into(),
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

/// Sets schedule, refresh mode and status (each `None` keeps the stored value).
pub fn update_settings(
    id: i64,
    schedule: Option<&str>,
    refresh_mode: Option<RefreshMode>,
    status: Option<Status>,
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
                refresh_mode.map(RefreshMode::as_str).into(),
                status.map(Status::as_str).into(),
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
                definition.refresh_mode.as_str().into(),
                definition.status.as_str().into(),
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

/// Every stream table with its schedule state: due one interval after its last refresh or
/// last failure (a table never refreshed counts from its creation) and the stream tables it reads.
pub fn schedule() -> Vec<Scheduled> {
    Spi::connect_mut(|client| {
        client
            .update(
                "SELECT s.pgs_id, s.schedule, \
                        GREATEST(COALESCE(s.last_refresh_at, s.created_at), s.last_error_at), \
                        s.status = 'ACTIVE', \
                        COALESCE(pg_catalog.array_agg(u.pgs_id) FILTER (WHERE u.pgs_id IS NOT NULL), '{}') \
                 FROM pgstream.pgs_stream_tables s \
                 LEFT JOIN pgstream.pgs_dependencies d ON d.pgs_id = s.pgs_id \
                 LEFT JOIN pgstream.pgs_stream_tables u ON u.pgs_relid = d.source_relid \
                 GROUP BY s.pgs_id",
                None,
                &[],
            )
            .map(|rows| {
                rows.map(|row| Scheduled {
                    id: row.get(1).ok().flatten().unwrap_or_default(),
                    schedule: row.get(2).ok().flatten().unwrap_or_default(),
                    last_refresh: row
                        .get::<TimestampWithTimeZone>(3)
                        .ok()
                        .flatten()
                        .map(i64::from)
                        .unwrap_or(0),
                    active: row.get(4).ok().flatten().unwrap_or(false),
                    upstream: row.get::<Vec<i64>>(5).ok().flatten().unwrap_or_default(),
                })
                .collect()
            })
    })
    .unwrap_or_else(|e| panic!("reading the schedule failed: {e}"))
}
