//! FULL refresh: recompute the query into a work table and apply only the difference, keyed by
//! `__pgs_row_id`, so readers are never blocked and never see an empty table.

use crate::catalog::{Position, StreamTable};
use crate::delta::statements::{self, FullRows};
use crate::settings::{self, Restriction};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

/// Rows one refresh changed.
pub struct AppliedChanges {
    pub inserted: i64,
    pub deleted: i64,
}

/// The stream table's data columns (every column but `__pgs_row_id`), in table order.
pub fn data_columns(table: &StreamTable) -> Vec<String> {
    Spi::connect_mut(|client| {
        client
            .update(
                "SELECT attname::text FROM pg_catalog.pg_attribute \
                 WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped \
                 AND attname <> '__pgs_row_id' ORDER BY attnum",
                None,
                &[table.relid.into()],
            )
            .map(|rows| {
                rows.filter_map(|row| row.get::<String>(1).ok().flatten())
                    .collect()
            })
    })
    .unwrap_or_else(|e| {
        panic!(
            "reading the columns of {} failed: {e}",
            table.display_name()
        )
    })
}

/// Recomputes `table` into a work table and applies the difference to it. Runs as the
/// table's `owner`; the defining query itself runs as a restricted operation. Returns the
/// changes and the position in the sources' changes the recompute covered.
pub fn refresh_full(
    table: &StreamTable,
    owner: pg_sys::Oid,
    rows: &FullRows,
    extra_cte: Option<&str>,
) -> (AppliedChanges, Position) {
    let target = table.qualified();
    let columns = data_columns(table);
    let column_list = columns
        .iter()
        .map(quote_identifier)
        .chain(std::iter::once("\"__pgs_row_id\"".to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    let work = super::work_tables::transaction_table("work", table);
    let run = |sql: &str| -> i64 {
        Spi::connect_mut(|client| client.update(sql, None, &[]).map(|t| t.len() as i64))
            .unwrap_or_else(|e| panic!("FULL refresh of {} failed: {e}", table.display_name()))
    };
    run(&format!(
        "CREATE TEMPORARY TABLE {work} ON COMMIT DROP AS SELECT * FROM {target} WITH NO DATA"
    ));
    let fill = statements::fill_full(&work, rows, &columns, extra_cte);
    let covered = settings::as_user(owner, Restriction::RestrictedOperation, || {
        Spi::connect_mut(|client| {
            let row = client.update(&fill, None, &[])?.first();
            Position::from_row(&row)
        })
        .unwrap_or_else(|e| panic!("FULL refresh of {} failed: {e}", table.display_name()))
    });
    run(&format!("ANALYZE {work}"));
    // A multiset row's id is a hash of its content; a keyed row's id only of its key, so
    // there a row with a known id may still have changed.
    let content_differs = match rows {
        FullRows::Multiset { .. } => String::new(),
        FullRows::Keyed { .. } => {
            let row = |alias: &str| {
                let listed: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{alias}.{}", quote_identifier(c)))
                    .collect();
                format!("ROW({})::text", listed.join(", "))
            };
            format!(" AND {} = {}", row("__pgs_w"), row("__pgs_t"))
        }
    };
    let deleted = run(&format!(
        "DELETE FROM {target} __pgs_t WHERE NOT EXISTS \
         (SELECT 1 FROM {work} __pgs_w WHERE __pgs_w.\"__pgs_row_id\" = __pgs_t.\"__pgs_row_id\"{content_differs})"
    ));
    let inserted = run(&format!(
        "INSERT INTO {target} ({column_list}) \
         SELECT {column_list} FROM {work} __pgs_w WHERE NOT EXISTS \
         (SELECT 1 FROM {target} __pgs_t WHERE __pgs_t.\"__pgs_row_id\" = __pgs_w.\"__pgs_row_id\")"
    ));
    run(&format!("DROP TABLE {work}"));
    (AppliedChanges { inserted, deleted }, covered)
}
