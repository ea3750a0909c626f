//! The statements that apply a multiset's change by row id (`__pgs_row_id`: a row's hash and
//! its copy number) and fill its work tables (pure SQL text).

use super::{listed, shaped_like, MAX_COPIES};
use crate::delta::ir::row_hash_sql;

/// The net change per row hash of a signed delta in `work`: `(h, n)`.
fn net_changes(work: &str) -> String {
    format!(
        "SELECT {h} AS h, sum(__pgs_w)::pg_catalog.int8 AS n FROM {work} GROUP BY 1 HAVING sum(__pgs_w) <> 0",
        h = row_hash_sql("__pgs_t"),
    )
}

/// Rows a multiset delta inserts and deletes: `(inserted, deleted)`.
pub fn multiset_counts(work: &str) -> String {
    format!(
        "SELECT COALESCE(sum(n) FILTER (WHERE n > 0), 0)::pg_catalog.int8, \
         COALESCE(-sum(n) FILTER (WHERE n < 0), 0)::pg_catalog.int8 FROM ({}) __pgs_n",
        net_changes(work)
    )
}

/// The work table of a multiset delta's row operations: `(__pgs_id, __pgs_del, columns)`.
pub fn multiset_ops_work(relation: &str, columns: &[String]) -> String {
    shaped_like(
        "0::pg_catalog.int8 AS __pgs_id, false AS __pgs_del",
        relation,
        columns,
    )
}

/// The row operations a multiset delta comes to, into `ops`: for each row, remove copies from
/// the top of its id range or add copies after it, so ids stay `hash .. hash + count - 1`.
pub fn multiset_operations(work: &str, ops: &str, target: &str, columns: &[String]) -> String {
    format!(
        "INSERT INTO {ops} (__pgs_id, __pgs_del, {targets}) \
           SELECT __pgs_n.h + __pgs_g AS __pgs_id, __pgs_n.n < 0 AS __pgs_del, {values} \
           FROM ({net}) __pgs_n \
           CROSS JOIN LATERAL (SELECT COALESCE(max(__pgs_s.\"__pgs_row_id\") - __pgs_n.h + 1, 0) AS c \
                               FROM {target} __pgs_s \
                               WHERE __pgs_s.\"__pgs_row_id\" >= __pgs_n.h \
                                 AND __pgs_s.\"__pgs_row_id\" < __pgs_n.h + {MAX_COPIES}) __pgs_c \
           CROSS JOIN LATERAL pg_catalog.generate_series(\
               CASE WHEN __pgs_n.n > 0 THEN __pgs_c.c ELSE GREATEST(__pgs_c.c + __pgs_n.n, 0) END, \
               CASE WHEN __pgs_n.n > 0 THEN __pgs_c.c + __pgs_n.n - 1 ELSE __pgs_c.c - 1 END) __pgs_g \
           LEFT JOIN (SELECT DISTINCT ON ({h}) * FROM {work} WHERE __pgs_w > 0 ORDER BY {h}) __pgs_v \
                  ON {vh} = __pgs_n.h AND __pgs_n.n > 0",
        net = net_changes(work),
        values = listed("__pgs_v.", columns),
        targets = listed("", columns),
        h = row_hash_sql("__pgs_t"),
        vh = row_hash_sql("__pgs_v.__pgs_t"),
    )
}

/// Applies the row operations of [`multiset_operations`] with one MERGE on `__pgs_row_id`;
/// deleted rows' values come from the table (the operation of a deletion carries none).
pub fn apply_multiset(ops: &str, target: &str, columns: &[String]) -> String {
    format!(
        "MERGE INTO {target} __pgs_t USING {ops} __pgs_s \
         ON __pgs_t.\"__pgs_row_id\" = __pgs_s.__pgs_id \
         WHEN MATCHED AND __pgs_s.__pgs_del THEN DELETE \
         WHEN NOT MATCHED AND NOT __pgs_s.__pgs_del THEN \
           INSERT ({targets}, \"__pgs_row_id\") VALUES ({values}, __pgs_s.__pgs_id)",
        targets = listed("", columns),
        values = listed("__pgs_s.", columns),
    )
}

/// The change set of a multiset delta (before it is applied): the net rows, one per copy.
pub fn multiset_change_set(change_set: &str, work: &str, columns: &[String]) -> String {
    format!(
        "INSERT INTO {change_set} (__pgs_w, {targets}) \
         SELECT sign(__pgs_n.n)::pg_catalog.int4, {values} FROM ({net}) __pgs_n \
         JOIN LATERAL (SELECT * FROM {work} __pgs_d WHERE {dh} = __pgs_n.h \
                       AND sign(__pgs_d.__pgs_w) = sign(__pgs_n.n) LIMIT 1) __pgs_v ON true \
         CROSS JOIN LATERAL pg_catalog.generate_series(1, abs(__pgs_n.n)) __pgs_g",
        net = net_changes(work),
        targets = listed("", columns),
        values = listed("__pgs_v.", columns),
        dh = row_hash_sql("__pgs_d.__pgs_t"),
    )
}

/// FULL refresh of a multiset relation: every row of the query with its id, into `work`.
pub fn fill_multiset(work: &str, query: &str, columns: &[String]) -> String {
    format!(
        "INSERT INTO {work} (\"__pgs_row_id\", {targets}) SELECT {hash} + __pgs_s.__pgs_row_seq - 1, {values} \
         FROM (SELECT __pgs_q.*, __pgs_q::pg_catalog.text AS __pgs_row_text, \
                      pg_catalog.row_number() OVER (PARTITION BY __pgs_q::pg_catalog.text) AS __pgs_row_seq \
               FROM (\n{query}\n) __pgs_q ({targets})) __pgs_s",
        hash = row_hash_sql("__pgs_s.__pgs_row_text"),
        values = listed("__pgs_s.", columns),
        targets = listed("", columns),
    )
}

/// FULL refresh of a multiset relation from `work`: rows whose id is gone deleted, new ids
/// inserted.
pub fn full_multiset(target: &str, work: &str, columns: &[String]) -> [String; 2] {
    let all = format!("\"__pgs_row_id\", {}", listed("", columns));
    [
        format!(
            "DELETE FROM {target} __pgs_t WHERE NOT EXISTS \
             (SELECT 1 FROM {work} __pgs_w WHERE __pgs_w.\"__pgs_row_id\" = __pgs_t.\"__pgs_row_id\")"
        ),
        format!(
            "INSERT INTO {target} ({all}) SELECT {all} FROM {work} __pgs_w WHERE NOT EXISTS \
             (SELECT 1 FROM {target} __pgs_t WHERE __pgs_t.\"__pgs_row_id\" = __pgs_w.\"__pgs_row_id\")"
        ),
    ]
}
