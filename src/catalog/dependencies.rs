//! pgstream.pgs_dependencies: the relations each stream table reads, and the capture of them.

use pgrx::prelude::*;

use super::{as_catalog_owner, run};
use crate::relation_kind::SourceKind;

/// A relation a stream table reads, as PostgreSQL's analysis of the query found it.
#[derive(Debug, Clone)]
pub struct Source {
    pub relid: pg_sys::Oid,
    pub schema: String,
    pub name: String,
    pub kind: SourceKind,
    /// The columns the query reads (None: all of them).
    pub used_columns: Option<Vec<String>>,
}

/// Records the relations stream table `id` reads.
pub(super) fn insert_sources(id: i64, sources: &[Source]) {
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
                source.kind.describe().into(),
                source.used_columns.clone().into(),
            ],
        );
    }
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
    type Key = (u32, SourceKind, Option<Vec<String>>);
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
                        SourceKind::from_description(
                            &row.get::<String>(2).ok().flatten().unwrap_or_default(),
                        ),
                        row.get::<Vec<String>>(3).ok().flatten(),
                    )
                })
                .collect()
            })
        })
        .unwrap_or_else(|e| panic!("reading pgstream.pgs_dependencies failed: {e}"));
    let wanted: Vec<Key> = sources
        .iter()
        .map(|s| (s.relid.to_u32(), s.kind, s.used_columns.clone()))
        .collect();
    normalize(recorded) == normalize(wanted)
}

/// The relations stream table `id` reads (views and base tables), by oid.
pub fn source_oids(id: i64) -> Vec<pg_sys::Oid> {
    Spi::get_one_with_args::<Vec<pg_sys::Oid>>(
        "SELECT COALESCE(pg_catalog.array_agg(source_relid), '{}') FROM pgstream.pgs_dependencies WHERE pgs_id = $1",
        &[id.into()],
    )
    .unwrap_or_else(|e| panic!("reading pgstream.pgs_dependencies failed: {e}"))
    .unwrap_or_default()
}

/// Every relation some stream table reads.
pub fn all_sources() -> Vec<pg_sys::Oid> {
    Spi::get_one::<Vec<pg_sys::Oid>>(
        "SELECT COALESCE(pg_catalog.array_agg(DISTINCT source_relid), '{}') FROM pgstream.pgs_dependencies",
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
/// single-shard table, an unlogged table, ...) with nothing to take away is not set up again on every
/// refresh: that would take its set-up lock each time and serialize its readers' refreshes; nor is
/// a Citus table that no DIFFERENTIAL stream table reads (only those readers capture it).
pub fn capture_repairable(id: i64) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d \
                        CROSS JOIN LATERAL pgstream._capture_blocker(d.source_relid) b(blocker) \
                        WHERE d.pgs_id = $1 AND d.source_kind <> 'view' \
                          AND NOT pgstream._statements_captured(d.source_relid) \
                          AND ((b.blocker IS NULL \
                                AND (pgstream._citus_kind(d.source_relid) IS NULL \
                                     OR EXISTS (SELECT 1 FROM pgstream.pgs_dependencies r \
                                                JOIN pgstream.pgs_stream_tables s ON s.pgs_id = r.pgs_id \
                                                WHERE r.source_relid = d.source_relid \
                                                  AND s.effective_mode = 'DIFFERENTIAL'))) \
                               OR b.blocker = 'source missing' \
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

/// The relations stream table `id` reads, as `schema.name (kind)`.
pub fn sources_of(id: i64) -> Vec<String> {
    Spi::connect_mut(|client| {
        client
            .update(
                "SELECT pg_catalog.format('%I.%I (%s)', source_schema, source_name, source_kind) \
                 FROM pgstream.pgs_dependencies WHERE pgs_id = $1 ORDER BY source_schema, source_name",
                None,
                &[id.into()],
            )
            .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
    })
    .unwrap_or_else(|e| panic!("reading pgstream.pgs_dependencies failed: {e}"))
}

/// The stream tables that read stream table `table`, as quoted `schema.name`, sorted.
pub fn reader_names(table: &super::StreamTable) -> Vec<String> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT pg_catalog.format('%I.%I', s.pgs_schema, s.pgs_name) \
                 FROM pgstream.pgs_dependencies d JOIN pgstream.pgs_stream_tables s USING (pgs_id) \
                 WHERE d.source_relid = $1 ORDER BY 1",
                None,
                &[table.relid.into()],
            )
            .map(|rows| {
                rows.filter_map(|r| r.get::<String>(1).ok().flatten())
                    .collect::<Vec<_>>()
            })
    })
    .unwrap_or_else(|e| {
        panic!(
            "reading the readers of {} failed: {e}",
            table.display_name()
        )
    })
}

/// Per stream table, the stream tables it reads: the edges of the graph of stream tables.
pub fn stream_table_edges() -> std::collections::BTreeMap<i64, Vec<i64>> {
    Spi::connect_mut(|client| {
        client
            .update(
                "SELECT d.pgs_id, pg_catalog.array_agg(u.pgs_id) FROM pgstream.pgs_dependencies d \
                 JOIN pgstream.pgs_stream_tables u ON u.pgs_relid = d.source_relid GROUP BY d.pgs_id",
                None,
                &[],
            )
            .map(|rows| {
                rows.filter_map(|r| Some((r.get::<i64>(1).ok()??, r.get::<Vec<i64>>(2).ok()??)))
                    .collect()
            })
    })
    .unwrap_or_else(|e| panic!("reading stream-table dependencies failed: {e}"))
}

/// How many DIFFERENTIAL stream tables read `source`.
pub fn differential_readers(source: pg_sys::Oid) -> i64 {
    Spi::get_one_with_args::<i64>(
        "SELECT count(*) FROM pgstream.pgs_dependencies d \
         JOIN pgstream.pgs_stream_tables s ON s.pgs_id = d.pgs_id \
         WHERE d.source_relid = $1 AND s.effective_mode = 'DIFFERENTIAL'",
        &[source.into()],
    )
    .unwrap_or_else(|e| panic!("counting the readers of source {source:?} failed: {e}"))
    .unwrap_or(0)
}

/// Forgets the change position of every DIFFERENTIAL reader of `source` (its buffer was made
/// anew: each recomputes once).
pub fn forget_differential_positions(source: pg_sys::Oid) {
    Spi::run_with_args(
        "UPDATE pgstream.pgs_stream_tables s SET consumed_snapshot = NULL \
         WHERE s.effective_mode = 'DIFFERENTIAL' \
           AND s.pgs_id IN (SELECT d.pgs_id FROM pgstream.pgs_dependencies d WHERE d.source_relid = $1)",
        &[source.into()],
    )
    .unwrap_or_else(|e| panic!("resetting the readers of source {source:?} failed: {e}"));
}
