//! FULL refresh: recompute the query into a work table and apply only the difference, keyed by
//! `__pgs_row_id`, so readers are never blocked and never see an empty table.

use crate::catalog::StreamTable;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

/// Rows one refresh changed.
pub struct AppliedChanges {
    pub inserted: i64,
    pub deleted: i64,
}

/// The stream table's data columns (every column but `__pgs_row_id`), quoted, in table order.
fn data_columns(table: &StreamTable) -> Vec<String> {
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
                    .map(quote_identifier)
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

/// The SQL that computes the query's rows with their row identities into `work`: identical
/// rows get distinct identities from their occurrence number, so duplicates are kept.
pub fn work_table_sql(work: &str, statement: &str, columns: &[String]) -> String {
    let mut select_list = vec![
        "pg_catalog.hashtextextended(__pgs_s.__pgs_row_text, __pgs_s.__pgs_row_seq) AS \"__pgs_row_id\""
            .to_string(),
    ];
    select_list.extend(columns.iter().map(|c| format!("__pgs_s.{c}")));
    format!(
        "CREATE TEMPORARY TABLE {work} ON COMMIT DROP AS \
         SELECT {list} \
         FROM (SELECT __pgs_q.*, __pgs_q::text AS __pgs_row_text, \
                      pg_catalog.row_number() OVER (PARTITION BY __pgs_q::text) AS __pgs_row_seq \
               FROM (\n{statement}\n) __pgs_q) __pgs_s",
        list = select_list.join(", ")
    )
}

/// Recomputes `table` and applies the difference to it.
pub fn refresh_full(table: &StreamTable) -> AppliedChanges {
    let target = table.qualified();
    let columns = data_columns(table);
    let column_list = columns
        .iter()
        .cloned()
        .chain(std::iter::once("\"__pgs_row_id\"".to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    let work = format!(
        "pg_temp.{}",
        quote_identifier(format!("__pgs_work_{}", table.relid.to_u32()))
    );
    Spi::connect_mut(|client| {
        client.update(&work_table_sql(&work, &table.defining_query, &columns), None, &[])?;
        client.update(&format!("ANALYZE {work}"), None, &[])?;
        let deleted = client
            .update(
                &format!(
                    "DELETE FROM {target} __pgs_t WHERE NOT EXISTS \
                     (SELECT 1 FROM {work} __pgs_w WHERE __pgs_w.\"__pgs_row_id\" = __pgs_t.\"__pgs_row_id\")"
                ),
                None,
                &[],
            )?
            .len() as i64;
        let inserted = client
            .update(
                &format!(
                    "INSERT INTO {target} ({column_list}) \
                     SELECT {column_list} FROM {work} __pgs_w WHERE NOT EXISTS \
                     (SELECT 1 FROM {target} __pgs_t WHERE __pgs_t.\"__pgs_row_id\" = __pgs_w.\"__pgs_row_id\")"
                ),
                None,
                &[],
            )?
            .len() as i64;
        client.update(&format!("DROP TABLE {work}"), None, &[])?;
        Ok::<_, pgrx::spi::Error>(AppliedChanges { inserted, deleted })
    })
    .unwrap_or_else(|e| panic!("FULL refresh of {} failed: {e}", table.display_name()))
}
