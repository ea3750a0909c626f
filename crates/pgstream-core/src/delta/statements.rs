//! The statements a refresh runs around a delta plan: capturing the delta into work tables in
//! one snapshot, and applying it to the stream table with MERGE (pure SQL text).

use super::render::quote_ident;
use super::{row_hash_sql, AFFECTED};

/// Copies of one row in a linear stream table have ids `hash .. hash + n - 1`; a range this
/// wide after a row's hash is counted as its copies.
pub const MAX_COPIES: i64 = 1 << 20;

/// The position a refresh covers, computed in the same statement (so the same snapshot) as
/// its reads: `(snapshot text, own xid text, own last change sequence number, rows)`.
pub fn with_position(ctes: &str, counted: &str) -> String {
    format!(
        "WITH {ctes} SELECT __pgs_p.snapshot, __pgs_p.own_xid::text, __pgs_p.own_seq, \
         (SELECT count(*) FROM {counted})::int8 FROM pgstream._covered_position() __pgs_p"
    )
}

fn listed(prefix: &str, columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("{prefix}{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The shape of a work table: `extra` columns before the stream table's.
fn like_target(extra: &str, target: &str) -> String {
    format!("AS SELECT {extra}, __pgs_t.* FROM (SELECT * FROM {target}) __pgs_t WITH NO DATA")
}

/// The work table a linear delta is captured into (what follows its name in CREATE TABLE).
pub fn linear_work(target: &str) -> String {
    like_target("0::int4 AS __pgs_w, 0::int8 AS __pgs_h", target)
}

/// The work table of a linear delta's row operations.
pub fn linear_ops(target: &str) -> String {
    like_target("0::int8 AS __pgs_id, false AS __pgs_del", target)
}

/// Captures the signed delta rows of a linear plan into `work` (shaped by [`linear_work`];
/// its `__pgs_row_id` column stays NULL).
pub fn capture_linear(work: &str, delta_sql: &str, columns: &[String]) -> String {
    with_position(
        &format!(
            "__pgs_saved AS (INSERT INTO {work} (__pgs_w, __pgs_h, {targets}) \
             SELECT __pgs_d.__pgs_w, {hash}, {values} FROM (\n{delta_sql}\n) __pgs_d (__pgs_w, __pgs_t, {targets}) \
             RETURNING 1)",
            targets = listed("", columns),
            hash = row_hash_sql("__pgs_d.__pgs_t"),
            values = listed("__pgs_d.", columns),
        ),
        "__pgs_saved",
    )
}

/// The net change per row hash of a linear delta: `(h, n)`, n copies to add (or remove).
fn net_changes(work: &str) -> String {
    format!(
        "SELECT __pgs_h AS h, sum(__pgs_w)::int8 AS n FROM {work} GROUP BY __pgs_h \
         HAVING sum(__pgs_w) <> 0"
    )
}

/// Rows a linear delta inserts and deletes: `(inserted, deleted)`.
pub fn linear_counts(work: &str) -> String {
    format!(
        "SELECT COALESCE(sum(n) FILTER (WHERE n > 0), 0)::int8, \
         COALESCE(-sum(n) FILTER (WHERE n < 0), 0)::int8 FROM ({}) __pgs_n",
        net_changes(work)
    )
}

/// The row operations a captured linear delta comes to, into `ops`: for each row, remove
/// copies from the top of its id range or add copies after it, so ids stay
/// `hash .. hash + count - 1`. `(__pgs_id, __pgs_del, <columns>)`.
pub fn linear_operations(work: &str, ops: &str, target: &str, columns: &[String]) -> String {
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
           LEFT JOIN (SELECT DISTINCT ON (__pgs_h) * FROM {work} WHERE __pgs_w > 0 ORDER BY __pgs_h) __pgs_v \
                  ON __pgs_v.__pgs_h = __pgs_n.h AND __pgs_n.n > 0",
        net = net_changes(work),
        values = listed("__pgs_v.", columns),
        targets = listed("", columns),
    )
}

/// Applies the row operations of [`linear_operations`] with one MERGE on `__pgs_row_id`.
pub fn apply_linear(ops: &str, target: &str, columns: &[String]) -> String {
    format!(
        "MERGE INTO {target} __pgs_t USING {ops} __pgs_s \
         ON __pgs_t.\"__pgs_row_id\" = __pgs_s.__pgs_id \
         WHEN MATCHED AND __pgs_s.__pgs_del THEN DELETE \
         WHEN NOT MATCHED AND NOT __pgs_s.__pgs_del THEN \
           INSERT ({targets}, \"__pgs_row_id\") VALUES ({source_values}, __pgs_s.__pgs_id)",
        targets = listed("", columns),
        source_values = listed("__pgs_s.", columns),
    )
}

/// The work table of a keyed delta's affected key hashes.
pub const KEYS_WORK: &str = "(h int8)";

/// The work table of a keyed delta's fresh rows.
pub fn fresh_work(target: &str) -> String {
    like_target("0::int8 AS __pgs_h, false AS __pgs_del", target)
}

/// Adds to `fresh` a deletion for every affected key with no fresh row (its group is gone),
/// so the MERGE reads one table.
pub fn mark_vanished(affected: &str, fresh: &str) -> String {
    format!(
        "INSERT INTO {fresh} (__pgs_h, __pgs_del) SELECT __pgs_a.h, true FROM {affected} __pgs_a \
         WHERE NOT EXISTS (SELECT 1 FROM {fresh} __pgs_f WHERE __pgs_f.__pgs_h = __pgs_a.h)"
    )
}

/// Captures the affected keys of a keyed plan and recomputes their rows, in one snapshot.
pub fn capture_keyed(
    affected: &str,
    fresh: &str,
    delta_sql: &str,
    fresh_sql: &str,
    columns: &[String],
) -> String {
    with_position(
        &format!(
            "{AFFECTED} AS MATERIALIZED (SELECT DISTINCT {key_hash} AS h FROM (\n{delta_sql}\n) __pgs_d), \
             __pgs_saved AS (INSERT INTO {affected} (h) SELECT h FROM {AFFECTED} RETURNING 1), \
             __pgs_fresh AS (INSERT INTO {fresh} (__pgs_h, __pgs_del, {targets}) \
                 SELECT {fresh_hash}, false, {values} FROM (\n{fresh_sql}\n) __pgs_x RETURNING 1)",
            key_hash = "__pgs_d.__pgs_k",
            fresh_hash = "__pgs_x.__pgs_k",
            targets = listed("", columns),
            values = listed("__pgs_x.", columns),
        ),
        "__pgs_saved",
    )
}

/// The affected keys joined to their fresh rows (none: the group is gone).
fn keyed_source(fresh: &str, columns: &[String]) -> String {
    format!(
        "SELECT __pgs_f.__pgs_h AS __pgs_id, __pgs_f.__pgs_del, \
         ROW({row})::text AS __pgs_text, {values} FROM {fresh} __pgs_f",
        row = listed("__pgs_f.", columns),
        values = listed("__pgs_f.", columns),
    )
}

/// Rows a keyed delta inserts and deletes (a changed row counts as one of each).
pub fn keyed_counts(fresh: &str, target: &str, columns: &[String]) -> String {
    format!(
        "SELECT count(*) FILTER (WHERE NOT __pgs_s.__pgs_del AND (__pgs_t.\"__pgs_row_id\" IS NULL \
                                  OR ROW({old})::text IS DISTINCT FROM __pgs_s.__pgs_text))::int8, \
                count(*) FILTER (WHERE __pgs_t.\"__pgs_row_id\" IS NOT NULL AND (__pgs_s.__pgs_del \
                                  OR ROW({old})::text IS DISTINCT FROM __pgs_s.__pgs_text))::int8 \
         FROM ({source}) __pgs_s LEFT JOIN {target} __pgs_t ON __pgs_t.\"__pgs_row_id\" = __pgs_s.__pgs_id",
        old = listed("__pgs_t.", columns),
        source = keyed_source(fresh, columns),
    )
}

/// Replaces the rows of the affected keys with their fresh rows.
pub fn apply_keyed(fresh: &str, target: &str, columns: &[String]) -> String {
    let assignments = columns
        .iter()
        .map(|c| format!("{q} = __pgs_s.{q}", q = quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "MERGE INTO {target} __pgs_t USING ({source}) __pgs_s \
         ON __pgs_t.\"__pgs_row_id\" = __pgs_s.__pgs_id \
         WHEN MATCHED AND __pgs_s.__pgs_del THEN DELETE \
         WHEN MATCHED AND ROW({old})::text IS DISTINCT FROM __pgs_s.__pgs_text THEN UPDATE SET {assignments} \
         WHEN NOT MATCHED AND NOT __pgs_s.__pgs_del THEN \
           INSERT ({targets}, \"__pgs_row_id\") VALUES ({source_values}, __pgs_s.__pgs_id)",
        source = keyed_source(fresh, columns),
        old = listed("__pgs_t.", columns),
        targets = listed("", columns),
        source_values = listed("__pgs_s.", columns),
    )
}

/// How a FULL refresh identifies rows.
pub enum FullRows<'a> {
    /// The defining query's rows as a multiset: id = hash of row text + occurrence - 1.
    Multiset { query: &'a str },
    /// A keyed plan's full query (output columns + `__pgs_k`): id = hash of the key.
    Keyed { full_sql: &'a str },
}

/// Fills `work` with every row of the query and its id, and returns the covered position.
pub fn fill_full(
    work: &str,
    rows: &FullRows,
    columns: &[String],
    extra_cte: Option<&str>,
) -> String {
    let targets = format!("\"__pgs_row_id\", {}", listed("", columns));
    let insert = match rows {
        FullRows::Multiset { query } => format!(
            "INSERT INTO {work} ({targets}) SELECT {hash} + __pgs_s.__pgs_row_seq - 1, {values} \
             FROM (SELECT __pgs_q.*, __pgs_q::text AS __pgs_row_text, \
                          pg_catalog.row_number() OVER (PARTITION BY __pgs_q::text) AS __pgs_row_seq \
                   FROM (\n{query}\n) __pgs_q) __pgs_s",
            hash = row_hash_sql("__pgs_s.__pgs_row_text"),
            values = listed("__pgs_s.", columns),
        ),
        FullRows::Keyed { full_sql } => format!(
            "INSERT INTO {work} ({targets}) SELECT {hash}, {values} FROM (\n{full_sql}\n) __pgs_s",
            hash = "__pgs_s.__pgs_k",
            values = listed("__pgs_s.", columns),
        ),
    };
    let extra = extra_cte.map(|cte| format!(", {cte}")).unwrap_or_default();
    with_position(
        &format!("__pgs_saved AS ({insert} RETURNING 1){extra}"),
        "__pgs_saved",
    )
}
