//! Change capture of Citus distributed and reference tables: row triggers on their shards,
//! change buffers distributed beside the shards, and the drain that moves those rows into the
//! coordinator's buffer when a reader refreshes.
//!
//! Writes to a Citus table run on its shards on the workers, where the coordinator's triggers
//! never fire. So the row triggers are created through Citus (copied to every shard):
//! - on a shard of a **distributed** table they append the statement's rows to the co-located
//!   shard of `pgstream_changes.shard_rows_<source>` (a plain INSERT on the same node, in the
//!   writer's transaction there);
//! - on a placement of a **reference** table they append to the coordinator's own buffer, on
//!   the coordinator's placement only (every write reaches that one too).
//!
//! A refresh of a reader first takes SHARE locks on its Citus sources (on every node: writers
//! wait, readers do not), then drains the shard buffers into `pgstream_changes.rows_<source>`
//! (DELETE ... RETURNING, in its own transaction); from there on the single-node machinery
//! (the change window, positions, cleanup) applies unchanged. The locks make what the refresh
//! reads of the sources match what it drained: Citus has no snapshot across nodes.

use super::objects::{buffer_table, shard_buffer_name, shard_buffer_table, ROW_TRIGGERS};
use pgrx::prelude::*;
use std::cell::Cell;

/// The trigger argument that marks a shard trigger of a distributed table.
pub const DISTRIBUTED: &str = "citus-distributed";
/// The trigger argument that marks a placement trigger of a reference table.
pub const REFERENCE: &str = "citus-reference";

/// The kinds of Citus table whose changes are captured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CitusKind {
    Distributed,
    Reference,
}

impl CitusKind {
    fn from_description(description: &str) -> Option<CitusKind> {
        match description {
            "Citus distributed table" => Some(CitusKind::Distributed),
            "Citus reference table" => Some(CitusKind::Reference),
            _ => None,
        }
    }

    /// The argument the row triggers of such a table are given after the source's oid.
    pub fn trigger_argument(self) -> &'static str {
        match self {
            CitusKind::Distributed => DISTRIBUTED,
            CitusKind::Reference => REFERENCE,
        }
    }
}

/// Whether the citus extension is installed in this database (a syscache lookup, no statement).
pub fn installed() -> bool {
    unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) != pg_sys::InvalidOid }
}

/// What kind of captured Citus table `source` is (None: not one, or Citus is not installed).
pub fn kind_of(source: pg_sys::Oid) -> Option<CitusKind> {
    description(source).and_then(|d| CitusKind::from_description(&d))
}

/// `pgstream._citus_kind` of `relation` (None: not a Citus table, or Citus is not installed).
fn description(relation: pg_sys::Oid) -> Option<String> {
    if !installed() {
        return None;
    }
    Spi::get_one_with_args::<String>("SELECT pgstream._citus_kind($1)", &[relation.into()])
        .ok()
        .flatten()
}

/// What kind of Citus table `relation` is, if any: a reference table, or (any other kind) a
/// distributed one. (None when Citus is not installed.)
pub fn table_kind(relation: pg_sys::Oid) -> Option<CitusKind> {
    description(relation).map(|d| CitusKind::from_description(&d).unwrap_or(CitusKind::Distributed))
}

/// Whether `relation` is a Citus table of any kind (false when Citus is not installed).
pub fn is_citus_table(relation: pg_sys::Oid) -> bool {
    table_kind(relation).is_some()
}

fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("Citus change capture set-up failed: {e}\n{sql}"));
}

/// Runs `body` with Citus's DDL propagation on and triggers on its tables allowed: what creates
/// and drops the row triggers on every shard (the engine's other DDL runs with propagation off).
/// A placement changed by DDL may only be read over the connection that changed it (Citus
/// refuses otherwise, 25001), so the rest of the transaction uses one connection per node.
fn propagated<R>(body: impl FnOnce() -> R) -> R {
    one_connection_per_node();
    crate::settings::with_settings(
        &[
            (c"citus.enable_ddl_propagation", "on"),
            (c"citus.enable_unsafe_triggers", "on"),
        ],
        body,
    )
}

/// From now to the end of the transaction, Citus uses one connection per node: what the engine's
/// DDL changes on the shards (triggers, a shard buffer) may then be read later in the same
/// transaction (by the refresh that follows).
fn one_connection_per_node() {
    Spi::run("SELECT pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true)")
        .unwrap_or_else(|e| panic!("setting citus.multi_shard_modify_mode failed: {e}"));
}

/// The TRUNCATE trigger a Citus table gets beside the row triggers, on every node's copy of the
/// table (Citus puts no TRUNCATE trigger on shards): see [`refuse_truncate_on_worker`].
pub const TRUNCATE_TRIGGER: (&str, &str, &str) = ("pgstream_rows_trunc", "TRUNCATE", "");

/// The capture triggers made through Citus (on every shard, or every node's shell).
fn shard_triggers() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    ROW_TRIGGERS.into_iter().chain([TRUNCATE_TRIGGER])
}

/// Whether `name` is a trigger made through Citus on a Citus table.
pub fn is_shard_trigger(name: &str) -> bool {
    shard_triggers().any(|(n, _, _)| n == name)
}

/// Whether Citus table `table` has its TRUNCATE trigger.
pub fn has_truncate_trigger(table: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger \
                        WHERE tgrelid = $1::pg_catalog.regclass AND tgname = $2 AND tgenabled = 'A')",
        &[table.into(), TRUNCATE_TRIGGER.0.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Creates the row triggers of Citus table `table` (oid `relid`) on its shell and every shard,
/// and its TRUNCATE trigger on every node's shell. The shell's row triggers never fire; they are
/// marked ENABLE ALWAYS on the coordinator only,
/// where the capture checks look. The shards' stay enabled for ordinary writes, so the logical
/// replication of a shard move does not capture the moved rows again.
pub fn install_row_triggers(table: &str, relid: u32, kind: CitusKind) {
    propagated(|| {
        for (name, event, referencing) in shard_triggers() {
            drop_existing_trigger(name, table);
            run(&format!(
                "CREATE TRIGGER {name} AFTER {event} ON {table} {referencing} \
                 FOR EACH STATEMENT EXECUTE FUNCTION pgstream._capture_rows('{relid}', '{}')",
                kind.trigger_argument()
            ));
        }
    });
    for (name, _, _) in ROW_TRIGGERS {
        run(&format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"));
    }
    // The TRUNCATE trigger fires on every node's copy: ALWAYS there too (propagated).
    propagated(|| {
        run(&format!(
            "ALTER TABLE {table} ENABLE ALWAYS TRIGGER {}",
            TRUNCATE_TRIGGER.0
        ))
    });
}

/// Drops the row and TRUNCATE triggers of Citus table `table` from its shell and every shard.
pub fn drop_row_triggers(table: &str) {
    propagated(|| {
        for (name, _, _) in shard_triggers() {
            drop_existing_trigger(name, table);
        }
    });
}

/// `DROP TRIGGER name ON table` if it is there (IF EXISTS would send the client a notice).
fn drop_existing_trigger(name: &str, table: &str) {
    let present = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger \
                        WHERE tgrelid = $1::pg_catalog.regclass AND tgname = $2)",
        &[table.into(), name.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if present {
        run(&format!("DROP TRIGGER {name} ON {table}"));
    }
}

/// Drops a trigger found on Citus table `table` by name (DROP EXTENSION's sweep).
pub fn drop_trigger(statement: &str) {
    propagated(|| run(statement));
}

fn exists(name: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
        &[name.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Whether distributed source `relid` has its shard buffer.
pub fn has_shard_buffer(relid: u32) -> bool {
    exists(&shard_buffer_table(relid))
}

/// (Re)creates the shard buffer of distributed table `source`: the coordinator buffer's columns
/// (plus the distribution column, which Citus needs), distributed on that column and co-located
/// with the source, so each shard's changes are written on the shard's node. Empty.
pub fn create_shard_buffer(source: pg_sys::Oid) {
    one_connection_per_node();
    let relid = source.to_u32();
    drop_shard_buffer(relid);
    let (column, column_type, column_name) = Spi::connect(|client| {
        let row = client
            .select(
                "SELECT pg_catalog.quote_ident(a.attname), pg_catalog.format_type(a.atttypid, a.atttypmod), \
                        a.attname::text \
                 FROM pg_catalog.pg_dist_partition p \
                 JOIN pg_catalog.pg_attribute a \
                   ON a.attrelid = p.logicalrelid \
                  AND a.attname = pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) \
                 WHERE p.logicalrelid = $1",
                None,
                &[source.into()],
            )?
            .first();
        Ok::<_, pgrx::spi::Error>((
            row.get::<String>(1)?.unwrap_or_default(),
            row.get::<String>(2)?.unwrap_or_default(),
            row.get::<String>(3)?.unwrap_or_default(),
        ))
    })
    .unwrap_or_else(|e| panic!("reading the distribution column of {source:?} failed: {e}"));
    if column.is_empty() {
        panic!("Citus distributed table {source:?} has no distribution column");
    }
    let shard_buffer = shard_buffer_table(relid);
    run(&format!(
        "CREATE TABLE {shard_buffer} (LIKE {})",
        buffer_table(relid)
    ));
    let kept = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute \
                        WHERE attrelid = pg_catalog.to_regclass($1) AND pg_catalog.quote_ident(attname) = $2 \
                          AND NOT attisdropped)",
        &[shard_buffer.as_str().into(), column.as_str().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !kept {
        run(&format!(
            "ALTER TABLE {shard_buffer} ADD COLUMN {column} {column_type}"
        ));
    }
    run(&format!("REVOKE ALL ON {shard_buffer} FROM PUBLIC"));
    Spi::run_with_args(
        "SELECT pg_catalog.create_distributed_table($1::pg_catalog.regclass, $2, \
                colocate_with => $3::pg_catalog.regclass::pg_catalog.text)",
        &[
            shard_buffer.as_str().into(),
            column_name.into(),
            source.into(),
        ],
    )
    .unwrap_or_else(|e| panic!("distributing the change buffer of {source:?} failed: {e}"));
}

/// Adds columns to the shard buffer of source `relid` (and its shards), if it exists: `columns`
/// are `name type` (name quoted), those its coordinator buffer just gained; one the shard buffer
/// has already (the distribution column) is left as it is.
pub fn add_shard_buffer_columns(relid: u32, columns: &[String]) {
    if !has_shard_buffer(relid) {
        return;
    }
    let present = Spi::get_one_with_args::<Vec<String>>(
        "SELECT COALESCE(array_agg(pg_catalog.quote_ident(attname)), '{}') FROM pg_catalog.pg_attribute \
         WHERE attrelid = pg_catalog.to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        &[shard_buffer_table(relid).into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    let added: Vec<String> = columns
        .iter()
        .filter(|c| !present.iter().any(|p| c.starts_with(&format!("{p} "))))
        .map(|c| format!("ADD COLUMN {c}"))
        .collect();
    if !added.is_empty() {
        propagated(|| {
            run(&format!(
                "ALTER TABLE {} {}",
                shard_buffer_table(relid),
                added.join(", ")
            ))
        });
    }
}

/// Drops the shard buffer of source `relid` (and its shards) if it exists.
pub fn drop_shard_buffer(relid: u32) {
    let shard_buffer = shard_buffer_table(relid);
    if exists(&shard_buffer) {
        propagated(|| run(&format!("DROP TABLE {shard_buffer}")));
    }
}

/// A Citus source of a stream table, as a refresh sees it.
struct CitusSource {
    relid: pg_sys::Oid,
    table: String,
    drained: bool,
}

/// The Citus sources of stream table `id`, in oid order: each with whether it has a shard
/// buffer to drain.
fn citus_sources(id: i64) -> Vec<CitusSource> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT d.source_relid, d.source_relid::pg_catalog.regclass::pg_catalog.text, \
                        pg_catalog.to_regclass(pg_catalog.format('pgstream_changes.%I', 'shard_rows_' || d.source_relid)) IS NOT NULL \
                 FROM (SELECT DISTINCT source_relid FROM pgstream.pgs_dependencies \
                       WHERE pgs_id = $1 AND source_kind <> 'view') d \
                 JOIN pg_catalog.pg_class c ON c.oid = d.source_relid \
                 WHERE pgstream._citus_kind(d.source_relid) IN ('Citus distributed table', 'Citus reference table') \
                 ORDER BY d.source_relid",
                None,
                &[id.into()],
            )?
            .map(|row| {
                Ok(CitusSource {
                    relid: row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid),
                    table: row.get::<String>(2)?.unwrap_or_default(),
                    drained: row.get::<bool>(3)?.unwrap_or(false),
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| panic!("reading the Citus sources of stream table {id} failed: {e}"))
}

/// Before a refresh of stream table `id` reads anything: takes SHARE locks on its Citus sources
/// when `consistent` (a reader maintained DIFFERENTIAL: what it reads of the sources must match
/// the changes it takes; writers on any node wait until this transaction ends), then moves the
/// changes buffered beside the shards of its distributed sources into the coordinator's buffers,
/// each drained source recorded as changed by this transaction. Nothing when Citus is not
/// installed. Returns whether it reads Citus tables. Call it after any capture set-up of the
/// refresh ([`crate::capture::setup::sync`] takes set-up locks, then locks that conflict with
/// SHARE: taken the other way round, two refreshes could wait for each other).
pub fn drain_sources(id: i64, consistent: bool) -> bool {
    if !installed() {
        return false;
    }
    crate::catalog::as_catalog_owner(|| {
        let sources = citus_sources(id);
        if consistent && !sources.is_empty() {
            // Citus takes the lock on the other nodes only with DDL propagation on (a session
            // may have turned it off).
            crate::settings::with_settings(&[(c"citus.enable_ddl_propagation", "on")], || {
                for source in &sources {
                    run(&format!("LOCK TABLE {} IN SHARE MODE", source.table));
                }
            });
        }
        for source in sources.iter().filter(|s| s.drained) {
            drain(source.relid);
        }
        !sources.is_empty()
    })
}

/// Whether stream table `id` reads Citus distributed or reference tables (false at once when
/// Citus is not installed).
pub fn reads_citus_tables(id: i64) -> bool {
    installed() && crate::catalog::as_catalog_owner(|| !citus_sources(id).is_empty())
}

/// Moves the rows of the shard buffer of `source` into its coordinator buffer, numbered anew in
/// this transaction (the order of changes across nodes means nothing: refreshes add weights).
/// Returns how many change rows it moved.
fn drain(source: pg_sys::Oid) -> i64 {
    let relid = source.to_u32();
    let columns = Spi::get_one_with_args::<Vec<String>>(
        "SELECT COALESCE(array_agg(pg_catalog.quote_ident(attname) ORDER BY attnum), '{}') \
         FROM pg_catalog.pg_attribute \
         WHERE attrelid = pg_catalog.to_regclass($1) AND attnum > 3 AND NOT attisdropped",
        &[buffer_table(relid).into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    let listed = |prefix: &str| {
        columns
            .iter()
            .map(|c| format!(", {prefix}{c}"))
            .collect::<String>()
    };
    let sql = format!(
        "WITH d AS (DELETE FROM {shard} RETURNING __pgs_seq, __pgs_w{returning}) \
         INSERT INTO {buffer} (__pgs_xid, __pgs_seq, __pgs_w{targets}) \
         SELECT pg_catalog.pg_current_xact_id(), \
                pg_catalog.nextval('pgstream_changes.row_seq'::pg_catalog.regclass), d.__pgs_w{values} \
         FROM d ORDER BY d.__pgs_seq",
        shard = shard_buffer_table(relid),
        buffer = buffer_table(relid),
        returning = listed(""),
        targets = listed(""),
        values = listed("d."),
    );
    let moved = Spi::connect_mut(|client| client.update(&sql, None, &[]).map(|t| t.len() as i64))
        .unwrap_or_else(|e| panic!("draining the changes of {source:?} failed: {e}"));
    if moved > 0 {
        Spi::run_with_args(
            "INSERT INTO pgstream_changes.statements (source_relid, operation) \
             VALUES ($1, 'DRAIN') ON CONFLICT (source_relid, xid) DO NOTHING",
            &[source.into()],
        )
        .unwrap_or_else(|e| panic!("recording the changes of {source:?} failed: {e}"));
    }
    moved
}

/// What a Citus table's TRUNCATE trigger does (Citus keeps TRUNCATE triggers on the table,
/// not its shards, so it fires on the node the TRUNCATE was issued on): nothing on the
/// coordinator, whose statement trigger records it; on another node, refuses it (0A000), as
/// no refresh on the coordinator would learn of it and its readers would keep the old rows.
pub fn refuse_truncate_on_worker(table: &str) {
    if !on_coordinator() {
        crate::error::raise_with_hint(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("TRUNCATE of {table} on a Citus worker is not seen by the stream tables that read it"),
            "Issue the TRUNCATE on the coordinator: its stream tables recompute after it.",
        );
    }
}

thread_local! {
    /// Whether this node is the Citus coordinator (group 0), once asked.
    static COORDINATOR: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether this node is the Citus coordinator.
pub fn on_coordinator() -> bool {
    if let Some(known) = COORDINATOR.with(Cell::get) {
        return known;
    }
    let coordinator =
        Spi::get_one::<bool>("SELECT groupid = 0 FROM pg_catalog.pg_dist_local_group")
            .ok()
            .flatten()
            .unwrap_or(true);
    COORDINATOR.with(|c| c.set(Some(coordinator)));
    coordinator
}

/// The shard of the shard buffer of source `relid` that is co-located with shard `shard_name`
/// (`<table>_<shard id>`) of the source: its oid and qualified name, if it exists here.
pub fn colocated_shard_buffer(relid: u32, shard_name: &str) -> Option<(pg_sys::Oid, String)> {
    let shard_id: i64 = shard_name.rsplit('_').next()?.parse().ok()?;
    let name = Spi::get_one_with_args::<String>(
        "SELECT $1 || '_' || b.shardid \
         FROM pg_catalog.pg_dist_shard s \
         JOIN pg_catalog.pg_dist_shard b ON b.shardminvalue IS NOT DISTINCT FROM s.shardminvalue \
         WHERE s.shardid = $2 \
           AND b.logicalrelid = pg_catalog.to_regclass(pg_catalog.format('pgstream_changes.%I', $1))",
        &[shard_buffer_name(relid).into(), shard_id.into()],
    )
    .ok()
    .flatten()?;
    let qualified = format!("pgstream_changes.{}", crate::sql_text::quote_ident(&name));
    let oid = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
        &[qualified.as_str().into()],
    )
    .ok()
    .flatten()?;
    Some((oid, qualified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_descriptions_of_citus_kind() {
        assert_eq!(
            CitusKind::from_description("Citus distributed table"),
            Some(CitusKind::Distributed)
        );
        assert_eq!(
            CitusKind::from_description("Citus reference table"),
            Some(CitusKind::Reference)
        );
        assert_eq!(
            CitusKind::from_description("Citus single-shard or local table"),
            None
        );
    }
}
