//! FULL refresh: recompute the query into a work table and apply only the difference, keyed by
//! `__pgs_row_id`, so readers are never blocked and never see an empty table.

use crate::catalog::StreamTable;
use crate::settings::{self, Restriction};
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

/// The SQL that computes the query's rows with their row identities into the existing
/// `work` table: identical rows get distinct identities from their occurrence number, so
/// duplicates are kept.
pub fn fill_work_table_sql(work: &str, statement: &str, columns: &[String]) -> String {
    let mut target_list = vec!["\"__pgs_row_id\"".to_string()];
    target_list.extend(columns.iter().cloned());
    let mut select_list = vec![
        "pg_catalog.hashtextextended(__pgs_s.__pgs_row_text, __pgs_s.__pgs_row_seq)".to_string(),
    ];
    select_list.extend(columns.iter().map(|c| format!("__pgs_s.{c}")));
    format!(
        "INSERT INTO {work} ({targets}) SELECT {list} \
         FROM (SELECT __pgs_q.*, __pgs_q::text AS __pgs_row_text, \
                      pg_catalog.row_number() OVER (PARTITION BY __pgs_q::text) AS __pgs_row_seq \
               FROM (\n{statement}\n) __pgs_q) __pgs_s",
        targets = target_list.join(", "),
        list = select_list.join(", ")
    )
}

/// Recomputes `table` into a work table and applies the difference to it. Runs as the
/// table's `owner`; the defining query itself runs as a restricted operation.
pub fn refresh_full(table: &StreamTable, owner: pg_sys::Oid) -> AppliedChanges {
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
    let run = |sql: &str| -> i64 {
        Spi::connect_mut(|client| client.update(sql, None, &[]).map(|t| t.len() as i64))
            .unwrap_or_else(|e| panic!("FULL refresh of {} failed: {e}", table.display_name()))
    };
    run(&format!(
        "CREATE TEMPORARY TABLE {work} ON COMMIT DROP AS SELECT * FROM {target} WITH NO DATA"
    ));
    settings::as_user(owner, Restriction::RestrictedOperation, || {
        run(&fill_work_table_sql(&work, &table.defining_query, &columns))
    });
    run(&format!("ANALYZE {work}"));
    let deleted = run(&format!(
        "DELETE FROM {target} __pgs_t WHERE NOT EXISTS \
         (SELECT 1 FROM {work} __pgs_w WHERE __pgs_w.\"__pgs_row_id\" = __pgs_t.\"__pgs_row_id\")"
    ));
    let inserted = run(&format!(
        "INSERT INTO {target} ({column_list}) \
         SELECT {column_list} FROM {work} __pgs_w WHERE NOT EXISTS \
         (SELECT 1 FROM {target} __pgs_t WHERE __pgs_t.\"__pgs_row_id\" = __pgs_w.\"__pgs_row_id\")"
    ));
    run(&format!("DROP TABLE {work}"));
    AppliedChanges { inserted, deleted }
}
