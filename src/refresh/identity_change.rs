//! Moving a stream table to another row identity (its sources' keys changed, or a table of an
//! older version): every row deleted, the old identity index or column dropped, the new one
//! made, so that the FULL refresh that follows fills it anew in the same transaction.

use crate::catalog::{self, StreamTable};
use crate::delta::Identity;
use pgrx::prelude::*;

fn run(table: &StreamTable, statement: &str) {
    Spi::run(statement).unwrap_or_else(|e| {
        panic!(
            "moving {} to its new row identity failed: {e}",
            table.display_name()
        )
    });
}

/// Empties `table` and gives it identity `to` instead of `from`; returns the rows deleted.
pub fn reidentify(table: &StreamTable, from: &Identity, to: &Identity) -> i64 {
    let qualified = table.qualified();
    if matches!(to, Identity::Multiset) && crate::capture::citus::is_citus_table(table.relid) {
        // (55000, not 0A000: a refresh over Citus takes 0A000 for Citus refusing its delta.)
        crate::error::raise_with_hint(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "stream table {} is a Citus table and its query's result no longer has a key",
                table.display_name()
            ),
            "A Citus stream table needs a key (its sources' primary keys, GROUP BY, DISTINCT): \
             restore it, or drop the stream table and create it as a local one.",
        );
    }
    let deleted = Spi::connect_mut(|client| {
        client
            .update(&format!("DELETE FROM {qualified}"), None, &[])
            .map(|t| t.len() as i64)
    })
    .unwrap_or_else(|e| panic!("emptying {} failed: {e}", table.display_name()));
    crate::capture::setup::as_engine_ddl(|| {
        match from {
            Identity::Multiset => run(
                table,
                &format!("ALTER TABLE {qualified} DROP COLUMN \"__pgs_row_id\""),
            ),
            Identity::Key(_) => {
                if let Some(index) = key_index_of(&qualified) {
                    run(table, &format!("DROP INDEX {index}"));
                }
            }
        }
        if matches!(to, Identity::Multiset) {
            run(
                table,
                &format!(
                    "ALTER TABLE {qualified} ADD COLUMN \"__pgs_row_id\" pg_catalog.int8 NOT NULL"
                ),
            );
        }
        let index = crate::engine::free_identity_index_name(&table.schema, &table.name, to);
        let partition_by = crate::partitioned::spec_of(table.relid);
        let statement = match (to, crate::distributed::citus_table_of(table.relid)) {
            // A Citus distributed table's unique index must hold its distribution column.
            (Identity::Key(key), Some(crate::citus_table::CitusTable::DistributedBy(column)))
                if !key.is_empty() && !key.contains(&column) =>
            {
                Some(crate::delta::statements::key_index(
                    &qualified,
                    index.as_deref(),
                    key,
                    &[column],
                ))
            }
            _ => crate::engine::identity_index(
                &qualified,
                index.as_deref(),
                to,
                partition_by.as_ref(),
            ),
        };
        if let Some(statement) = statement {
            run(table, &statement);
        }
    });
    catalog::set_row_key(
        table.id,
        match to {
            Identity::Key(key) => Some(key.as_slice()),
            Identity::Multiset => None,
        },
    );
    pgrx::log!(
        "pg_stream_dbt: stream table {} now identifies its rows by {}",
        table.display_name(),
        match to {
            Identity::Key(key) => format!("the key ({})", key.join(", ")),
            Identity::Multiset => "__pgs_row_id (a multiset)".into(),
        }
    );
    deleted
}

/// The unique index a keyed stream table is identified by: NULLs not distinct, led by the key
/// hash expression.
pub(crate) fn key_index_of(qualified: &str) -> Option<String> {
    Spi::get_one_with_args::<String>(
        "SELECT i.indexrelid::pg_catalog.regclass::text FROM pg_catalog.pg_index i \
         WHERE i.indrelid = $1::pg_catalog.regclass AND i.indisunique AND i.indnullsnotdistinct \
           AND i.indkey[0] = 0 \
         ORDER BY i.indexrelid LIMIT 1",
        &[qualified.into()],
    )
    .ok()
    .flatten()
}
