//! Partition trees of captured sources after DDL: a table that joined a tree (ATTACH PARTITION,
//! CREATE TABLE ... PARTITION OF) gets its capture triggers and the rows it brought are recorded
//! as inserted into the source; a table that left it (DETACH PARTITION) loses them and its rows
//! are recorded as deleted, in the DDL's own transaction. (A dropped partition is a truncation of the source:
//! its rows are gone by the time the event trigger runs; see sql/ddl_events.sql.)

use super::objects::buffer_table;
use super::setup::{as_engine_ddl, sync, try_lock_for_setup};
use super::trigger::{append_sql, buffer_of, columns, Event, RowsFrom};
use crate::catalog;
use pgrx::prelude::*;

/// `pgstream._sync_partitions(relation, attached, detached, rows_known)`: after a DDL command on
/// `relation` (a partitioned table or a partition) that attached and detached the tables named
/// (unqualified; their whole subtrees moved), for the captured partitioned source at the root of
/// `relation`'s tree. `rows_known` is false when the detached rows cannot be read as
/// they left (DETACH ... CONCURRENTLY or FINALIZE: other sessions stopped seeing them in an
/// earlier transaction): then the source counts as truncated.
#[pg_extern(volatile, schema = "pgstream", name = "_sync_partitions")]
fn sync_partitions_sql(
    relation: pg_sys::Oid,
    attached: Vec<String>,
    detached: Vec<String>,
    rows_known: bool,
) {
    catalog::as_catalog_owner(|| {
        as_engine_ddl(|| sync_partitions(relation, &attached, &detached, rows_known))
    });
}

fn oids(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Vec<pg_sys::Oid> {
    Spi::get_one_with_args::<Vec<pg_sys::Oid>>(sql, args)
        .unwrap_or_else(|e| panic!("reading partition trees failed: {e}\n{sql}"))
        .unwrap_or_default()
}

/// The captured source at the root of the tree `relation` is in, if any.
fn captured_root(relation: pg_sys::Oid) -> Option<pg_sys::Oid> {
    oids(
        "SELECT COALESCE(array_agg(r::pg_catalog.oid), '{}') \
         FROM pg_catalog.pg_partition_root($1) r \
         WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t \
                       WHERE t.tgrelid = r AND t.tgname = 'pgstream_capture')",
        &[relation.into()],
    )
    .first()
    .copied()
}

/// The tables holding rows in the subtrees of `tables` (themselves, when they hold rows).
fn leaves(tables: &[pg_sys::Oid]) -> Vec<pg_sys::Oid> {
    oids(
        "SELECT COALESCE(array_agg(DISTINCT c.oid), '{}') FROM pg_catalog.pg_class c \
         WHERE c.relkind = 'r' \
           AND (c.oid = ANY ($1) \
                OR c.oid IN (SELECT pgstream._partition_members(x) \
                             FROM unnest($1::pg_catalog.oid[]) x))",
        &[tables.to_vec().into()],
    )
}

/// The tables named `names` that this transaction made partitions of `parent` (`attached`) or
/// that stopped being partitions of `root`'s tree (not `attached`: they still have its member
/// triggers, which a table created meanwhile under the same name in another schema has not).
fn moved_tables(
    root: pg_sys::Oid,
    parent: pg_sys::Oid,
    names: &[String],
    attached: bool,
) -> Vec<pg_sys::Oid> {
    if names.is_empty() {
        return Vec::new();
    }
    oids(
        "SELECT COALESCE(array_agg(c.oid), '{}') FROM pg_catalog.pg_class c \
         WHERE c.relname::pg_catalog.text = ANY ($3) AND c.relkind IN ('r', 'p') \
           AND c.relispartition = $4 AND pgstream._changed_in_this_transaction(c.oid) \
           AND CASE WHEN $4 \
                    THEN EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i \
                                 WHERE i.inhrelid = c.oid AND i.inhparent = $2) \
                    ELSE EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t \
                                 WHERE t.tgrelid = c.oid AND t.tgname = 'pgstream_part_' || $1::pg_catalog.text) \
               END",
        &[root.into(), parent.into(), names.to_vec().into(), attached.into()],
    )
}

/// Tables in the subtrees of `tables` that are sources themselves (a partition read directly,
/// captured by its own triggers): joining or leaving a tree changes how their writes are seen.
fn own_sources(tables: &[pg_sys::Oid]) -> Vec<pg_sys::Oid> {
    oids(
        "SELECT COALESCE(array_agg(DISTINCT x), '{}') \
         FROM (SELECT unnest($1::pg_catalog.oid[]) \
               UNION ALL SELECT pgstream._partition_members(t) FROM unnest($1::pg_catalog.oid[]) t) s(x) \
         WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g \
                       WHERE g.tgrelid = x AND g.tgname = 'pgstream_capture')",
        &[tables.to_vec().into()],
    )
}

fn sync_partitions(
    relation: pg_sys::Oid,
    attached: &[String],
    detached: &[String],
    rows_known: bool,
) {
    let Some(root) = captured_root(relation) else {
        return;
    };
    let attached = moved_tables(root, relation, attached, true);
    let detached = moved_tables(root, relation, detached, false);
    let joined = leaves(&attached);
    let left = leaves(&detached);
    let buffered = unsafe { buffer_of(root) }.is_some();
    let mut changed = false;
    if buffered && rows_known {
        for leaf in &joined {
            changed |= append_rows(root, *leaf, Event::Insert) > 0;
        }
        for leaf in &left {
            changed |= append_rows(root, *leaf, Event::Delete) > 0;
        }
    } else {
        changed = joined.iter().chain(&left).any(|leaf| has_rows(*leaf));
    }
    if changed {
        let whole = buffered && !rows_known;
        record(root, if whole { "TRUNCATE" } else { "INSERT" });
    }
    for table in own_sources(&[attached, detached].concat()) {
        record(table, "TRUNCATE");
    }
    // Triggers for new members, none for tables that left, unless a set-up of the source is
    // under way elsewhere: this DDL holds its tables' locks already, a set-up takes its lock
    // first and the tables' after (waiting here could deadlock). The source then counts as
    // truncated (the set-up may have read the members before this DDL, and writes to a member
    // without its triggers are not captured): the next refresh recomputes and puts the triggers
    // of members still without them in place.
    if try_lock_for_setup(root) {
        sync(&[root]);
    } else {
        record(root, "TRUNCATE");
        pgrx::log!(
            "pg_stream_dbt: the capture of source {} is being set up elsewhere; its new partitions get their triggers at its next refresh",
            root.to_u32()
        );
    }
}

/// The relation `relid` as SQL.
fn relation_sql(relid: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>(
        "SELECT $1::pg_catalog.regclass::pg_catalog.text",
        &[relid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("relation {relid:?} has no name"))
}

fn has_rows(leaf: pg_sys::Oid) -> bool {
    Spi::get_one::<bool>(&format!(
        "SELECT EXISTS (SELECT 1 FROM ONLY {})",
        relation_sql(leaf)
    ))
    .ok()
    .flatten()
    .unwrap_or(true)
}

/// Appends every row of `leaf` to the change buffer of `root`, weighted as `event`; returns how
/// many.
fn append_rows(root: pg_sys::Oid, leaf: pg_sys::Oid, event: Event) -> u64 {
    let (leaf_columns, kept) = unsafe {
        let buffer = buffer_of(root).expect("the source has a change buffer");
        let rel = pg_sys::table_open(buffer, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        let kept = columns((*rel).rd_att, super::objects::BUFFER_HEADER.len() + 1);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        let rel = pg_sys::table_open(leaf, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let leaf_columns = columns((*rel).rd_att, 1);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        (leaf_columns, kept)
    };
    let from = format!("ONLY {}", relation_sql(leaf));
    let sql = append_sql(
        event,
        RowsFrom {
            new_rows: &from,
            old_rows: &from,
        },
        &buffer_table(root.to_u32()),
        &leaf_columns,
        &kept,
        |c| crate::refresh::plan_catalog::type_sql(c.type_oid, c.typmod),
    );
    Spi::connect_mut(|client| client.update(&sql, None, &[]).map(|t| t.len() as u64))
        .unwrap_or_else(|e| panic!("recording the rows of a partition failed: {e}\n{sql}"))
}

/// Records that `root` changed in this transaction (a TRUNCATE overrides any other record).
fn record(root: pg_sys::Oid, operation: &str) {
    Spi::run_with_args(
        "INSERT INTO pgstream_changes.statements (source_relid, operation) VALUES ($1, $2) \
         ON CONFLICT (source_relid, xid) DO UPDATE SET operation = 'TRUNCATE' \
             WHERE excluded.operation = 'TRUNCATE'",
        &[root.into(), operation.into()],
    )
    .unwrap_or_else(|e| panic!("recording a partition change failed: {e}"));
}
