//! Citus stream tables: a keyed stream table made a Citus distributed table (by one of its
//! columns) or reference table, so that its rows live on the workers and its refreshes change
//! them there (see `refresh::executor`'s Citus apply).

use crate::catalog::StreamTable;
use crate::citus_table::CitusTable;
use crate::delta::Identity;
use pgrx::prelude::*;

fn refuse(message: String, hint: &str) -> ! {
    crate::error::raise_with_hint(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, message, hint)
}

/// Refuses what cannot be made a Citus table: no Citus, a Citus table already, a partitioned
/// table, a multiset (its `__pgs_row_id` apply needs MERGE), a stream table other stream
/// tables read (their capture triggers are the coordinator's).
fn check_distributable(table: &StreamTable) {
    let shown = table.display_name();
    if !crate::capture::citus::installed() {
        refuse(
            "Citus is not installed in this database".into(),
            "CREATE EXTENSION citus on the coordinator, then distribute the stream table.",
        );
    }
    if crate::capture::citus::is_citus_table(table.relid) {
        refuse(
            format!("stream table {shown} is a Citus table already"),
            "Drop the stream table and create it again to distribute it another way.",
        );
    }
    if crate::partitioned::spec_of(table.relid).is_some() {
        refuse(
            format!("stream table {shown} is partitioned and cannot be made a Citus table"),
            "Create it without partition_by to distribute it.",
        );
    }
    if matches!(crate::refresh::mode::identity_of(table), Identity::Multiset) {
        refuse(
            format!(
                "stream table {shown} has no key (its rows are identified by __pgs_row_id) and cannot be made a Citus table"
            ),
            "Only a stream table whose result has a key (GROUP BY, DISTINCT, its sources' primary keys) can be distributed: see row_identity in pgstream.explain_stream_table.",
        );
    }
    let readers = crate::catalog::reader_names(table);
    if !readers.is_empty() {
        refuse(
            format!(
                "stream table {shown} is read by stream table {} and cannot be made a Citus table",
                readers.join(", ")
            ),
            "Distribute it before creating the stream tables that read it.",
        );
    }
}

/// Makes `table` a Citus distributed table by `column`, or a reference table (`None`): its
/// identity index extended by the distribution column its key lacks (Citus requires it in
/// every unique index), its rows moved to the shards. The caller owns it and holds its refresh
/// lock.
pub fn distribute(table: &StreamTable, column: Option<&str>) {
    check_distributable(table);
    let qualified = table.qualified();
    if let Some(column) = column {
        let columns = crate::refresh::data_columns(table);
        if !columns.iter().any(|c| c == column) {
            crate::error::raise_with_hint(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!(
                    "column \"{column}\" of stream table {} does not exist",
                    table.display_name()
                ),
                &format!(
                    "distribution_column names one of its columns: {}.",
                    columns.join(", ")
                ),
            );
        }
        if let Identity::Key(key) = crate::refresh::mode::identity_of(table) {
            if !key.is_empty() && !key.iter().any(|k| k == column) {
                extend_identity_index(table, &key, column);
            }
        }
        Spi::run_with_args(
            "SELECT create_distributed_table($1::pg_catalog.regclass, $2)",
            &[qualified.as_str().into(), column.into()],
        )
    } else {
        Spi::run_with_args(
            "SELECT create_reference_table($1::pg_catalog.regclass)",
            &[qualified.as_str().into()],
        )
    }
    .unwrap_or_else(|e| panic!("distributing {} failed: {e}", table.display_name()));
    // Citus copies the rows to the shards and leaves them in the coordinator's file, unseen.
    Spi::run_with_args(
        "SELECT truncate_local_data_after_distributing_table($1::pg_catalog.regclass)",
        &[qualified.as_str().into()],
    )
    .unwrap_or_else(|e| {
        panic!(
            "emptying the local file of {} failed: {e}",
            table.display_name()
        )
    });
    pgrx::log!(
        "pg_stream_dbt: stream table {} is now a Citus {}",
        table.display_name(),
        match column {
            Some(c) => format!("distributed table (distribution column {c})"),
            None => "reference table".into(),
        }
    );
}

/// Replaces `table`'s identity index by one that also holds `column` (as for partition
/// columns: the key stays unique because the engine keeps it so).
fn extend_identity_index(table: &StreamTable, key: &[String], column: &str) {
    let qualified = table.qualified();
    let old = crate::refresh::identity_change::key_index_of(&qualified);
    crate::capture::setup::as_engine_ddl(|| {
        if let Some(old) = &old {
            Spi::run(&format!("DROP INDEX {old}"))
                .unwrap_or_else(|e| panic!("dropping index {old} failed: {e}"));
        }
        let index = crate::engine::free_identity_index_name(
            &table.schema,
            &table.name,
            &Identity::Key(key.to_vec()),
        );
        let create = crate::delta::statements::key_index(
            &qualified,
            index.as_deref(),
            key,
            &[column.to_string()],
        );
        Spi::run(&create).unwrap_or_else(|e| panic!("{create} failed: {e}"));
    });
}

/// What kind of Citus table `relid` is, as materialize() compares it with the config (None:
/// none, or Citus is not installed).
pub fn citus_table_of(relid: pg_sys::Oid) -> Option<CitusTable> {
    use crate::capture::citus::{table_kind, CitusKind};
    match table_kind(relid)? {
        CitusKind::Reference => Some(CitusTable::Reference),
        CitusKind::Distributed => {
            // (Citus is installed: its catalog and functions exist.)
            let column = Spi::get_one_with_args::<String>(
                "SELECT pg_catalog.column_to_column_name(logicalrelid, partkey) \
                 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1",
                &[relid.into()],
            )
            .ok()
            .flatten()?;
            Some(CitusTable::DistributedBy(column))
        }
    }
}

/// Makes the stream table just created by materialize() the Citus table its config asks for.
pub fn distribute_as(table: &StreamTable, citus: &CitusTable) {
    crate::refresh::lock_stream_table(table);
    distribute(table, citus.distribution_column());
}
