//! The statements a refresh runs around a stage's plan: work tables shaped like its relation,
//! capturing its change into them, and applying it — by key (an update whose key survives is
//! an in-place UPDATE) or by row id for a multiset — while writing the stage's change set for
//! the stages above (pure SQL text).

use super::ir::{key_hash_sql, key_match_between_sql, key_match_sql, keys_in_work_sql};

mod algebraic_state;
mod full;
mod multiset;
mod on_citus;

use crate::sql_text::quote_ident;
pub use algebraic_state::*;
pub use full::*;
pub use multiset::*;
pub use on_citus::*;

/// Copies of one row in a multiset table have ids `hash .. hash + n - 1`; a range this wide after
/// a row's hash is counted as its copies.
pub const MAX_COPIES: i64 = 1 << 20;

fn listed(prefix: &str, columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("{prefix}{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What follows a work table's name in CREATE TABLE: `extra` columns before `columns` of
/// `relation`, no rows.
pub fn shaped_like(extra: &str, relation: &str, columns: &[String]) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("{extra}, ")
    };
    format!(
        "AS SELECT {extra}{} FROM {relation} __pgs_t WITH NO DATA",
        listed("__pgs_t.", columns)
    )
}

/// The work table of signed changed rows: `(__pgs_w, __pgs_t, columns)`.
pub fn signed_work(relation: &str, columns: &[String]) -> String {
    shaped_like(
        "0::pg_catalog.int4 AS __pgs_w, ''::pg_catalog.text AS __pgs_t",
        relation,
        columns,
    )
}

/// A stage's change set: `(__pgs_w, columns)`.
pub fn change_set_work(relation: &str, columns: &[String]) -> String {
    shaped_like("0::pg_catalog.int4 AS __pgs_w", relation, columns)
}

/// The work table of keys: `__pgs_k<i>` shaped like the key columns.
pub fn keys_work(relation: &str, key: &[String]) -> String {
    let items: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, c)| format!("__pgs_t.{} AS __pgs_k{i}", quote_ident(c)))
        .collect();
    let items = if items.is_empty() {
        "0 AS __pgs_k0".to_string()
    } else {
        items.join(", ")
    };
    format!("AS SELECT {items} FROM {relation} __pgs_t WITH NO DATA")
}

/// Captures a signed delta (`__pgs_w, __pgs_t, columns`) into `work`.
pub fn capture_signed(work: &str, delta_sql: &str, columns: &[String]) -> String {
    format!(
        "INSERT INTO {work} (__pgs_w, __pgs_t, {targets}) SELECT __pgs_d.__pgs_w, __pgs_d.__pgs_t, {values} \
         FROM (\n{delta_sql}\n) __pgs_d (__pgs_w, __pgs_t, {targets})",
        targets = listed("", columns),
        values = listed("__pgs_d.", columns),
    )
}

/// Captures the keys a refresh recomputes into `work` (distinct).
pub fn capture_keys(work: &str, affected_sql: &str, width: usize) -> String {
    let columns: Vec<String> = (0..width.max(1)).map(|i| format!("__pgs_k{i}")).collect();
    format!(
        "INSERT INTO {work} ({c}) SELECT DISTINCT {v} FROM (\n{affected_sql}\n) __pgs_a ({c})",
        c = columns.join(", "),
        v = columns
            .iter()
            .map(|c| format!("__pgs_a.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Computes the rows of the affected keys into `fresh` (shaped like the relation).
pub fn capture_fresh(fresh: &str, fresh_sql: &str, columns: &[String]) -> String {
    format!(
        "INSERT INTO {fresh} ({targets}) SELECT {values} FROM (\n{fresh_sql}\n) __pgs_f ({targets})",
        targets = listed("", columns),
        values = listed("__pgs_f.", columns),
    )
}

/// Whether `a`'s and `b`'s `columns` are stored alike, value by value (record image
/// equality, as REFRESH MATERIALIZED VIEW CONCURRENTLY compares rows): for every type, with or
/// without an equality operator, and telling apart values that compare equal but show
/// differently (1.0 and 1.00, 0 and -0). Comparing their row texts instead cost a text
/// conversion of every column of both rows (1M rows of a join: 500 ms against 185).
fn rows_alike(a: &str, b: &str, columns: &[String]) -> String {
    if columns.is_empty() {
        "true".to_string()
    } else {
        format!(
            // (Cast to record: between two row constructors PostgreSQL would compare column by
            // column, with an operator each type lacks.)
            "ROW({})::pg_catalog.record OPERATOR(pg_catalog.*=) ROW({})::pg_catalog.record",
            listed(&format!("{a}."), columns),
            listed(&format!("{b}."), columns)
        )
    }
}

// ---- keyed relations -------------------------------------------------------------------

/// The MERGE clause updating a matched row of target `__pgs_t` in place from `source`'s row of
/// the same key when they differ (empty when every column is in the key: nothing to update).
fn update_when_changed(source: &str, columns: &[String], key: &[String]) -> String {
    let assignments: Vec<String> = columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{q} = {source}.{q}", q = quote_ident(c)))
        .collect();
    if assignments.is_empty() {
        return String::new();
    }
    format!(
        "WHEN MATCHED AND NOT {} THEN UPDATE SET {} ",
        rows_alike("__pgs_t", source, columns),
        assignments.join(", ")
    )
}

/// The net change of a signed delta captured in `work`, per row: `(__pgs_n, columns)`, rows
/// added (> 0) or removed (< 0), identical rows cancelled. Each row's values are taken from one
/// of its copies as a whole row, so every column keeps its type (an array column's values
/// aggregated one by one would make a two-dimensional array).
fn keyed_net(work: &str, columns: &[String]) -> String {
    format!(
        "SELECT __pgs_x.__pgs_n{values} FROM (\
         SELECT sum(__pgs_d.__pgs_w)::pg_catalog.int8 AS __pgs_n, \
                (pg_catalog.array_agg(__pgs_d))[1] AS __pgs_r \
         FROM {work} __pgs_d GROUP BY __pgs_d.__pgs_t HAVING sum(__pgs_d.__pgs_w) <> 0) __pgs_x",
        values = columns
            .iter()
            .map(|c| format!(", (__pgs_x.__pgs_r).{q} AS {q}", q = quote_ident(c)))
            .collect::<String>()
    )
}

/// Turns a keyed relation's signed delta in `work` into its affected keys (into `affected`) and
/// fresh rows (into `fresh`): the rows added are the fresh ones; a key only removed has none.
pub fn signed_to_keyed(
    work: &str,
    affected: &str,
    fresh: &str,
    columns: &[String],
    key: &[String],
) -> [String; 2] {
    let net = keyed_net(work, columns);
    // (No key: one row at most, under the placeholder key 0 that keys_work gives such tables.)
    let keys: Vec<String> = if key.is_empty() {
        vec!["0".to_string()]
    } else {
        key.iter()
            .map(|c| format!("__pgs_n.{}", quote_ident(c)))
            .collect()
    };
    let key_columns: Vec<String> = (0..key.len().max(1))
        .map(|i| format!("__pgs_k{i}"))
        .collect();
    [
        format!(
            "INSERT INTO {affected} ({}) SELECT DISTINCT {} FROM ({net}) __pgs_n",
            key_columns.join(", "),
            keys.join(", ")
        ),
        format!(
            "INSERT INTO {fresh} ({targets}) SELECT {values} FROM ({net}) __pgs_n WHERE __pgs_n.__pgs_n > 0",
            targets = listed("", columns),
            values = listed("__pgs_n.", columns),
        ),
    ]
}

/// `affected`'s key `__pgs_k<i>` matched to `alias`'s key columns.
fn affected_match(affected_alias: &str, alias: &str, key: &[String]) -> String {
    if key.is_empty() {
        return "true".into();
    }
    key_match_between_sql((affected_alias, &affected_keys(key)), (alias, key))
}

/// The names of an affected-keys work table's columns for `key`: `__pgs_k<i>`.
fn affected_keys(key: &[String]) -> Vec<String> {
    (0..key.len()).map(|i| format!("__pgs_k{i}")).collect()
}

/// The rows of `target` (read as `alias`) whose key `affected` (read as `__pgs_a`) holds.
fn affected_rows(affected: &str, alias: &str, key: &[String]) -> String {
    if key.is_empty() {
        return format!("EXISTS (SELECT 1 FROM {affected} __pgs_a)");
    }
    keys_in_work_sql((alias, key), affected, ("__pgs_a", &affected_keys(key)))
}

/// The change set of a keyed relation before it is applied: its rows of the affected keys that
/// go (-1) and the fresh rows that come (+1), rows that stay the same left out.
pub fn keyed_change_set(
    change_set: &str,
    target: &str,
    affected: &str,
    fresh: &str,
    columns: &[String],
    key: &[String],
) -> String {
    format!(
        "INSERT INTO {change_set} (__pgs_w, {targets}) \
         SELECT -1, {old} FROM {target} __pgs_t WHERE {affected_rows} \
           AND NOT EXISTS (SELECT 1 FROM {fresh} __pgs_f WHERE {fm} AND {alike}) \
         UNION ALL \
         SELECT 1, {new} FROM {fresh} __pgs_f WHERE NOT EXISTS (SELECT 1 FROM {target} __pgs_t WHERE {fm} AND {alike})",
        targets = listed("", columns),
        old = listed("__pgs_t.", columns),
        new = listed("__pgs_f.", columns),
        affected_rows = affected_rows(affected, "__pgs_t", key),
        fm = key_match_sql("__pgs_f", "__pgs_t", key),
        alike = rows_alike("__pgs_f", "__pgs_t", columns),
    )
}

/// Applies a keyed relation's recomputed keys: deletes the rows of affected keys that have no
/// fresh row, updates in place the rows whose fresh row differs, inserts the new keys. Returns
/// the DELETE and the MERGE, whose row counts are the deleted rows and the inserted and updated
/// ones (told apart by [`written_rows`], or the inserted counted first: [`new_keys_count`]).
pub fn apply_keyed(
    target: &str,
    affected: &str,
    fresh: &str,
    columns: &[String],
    key: &[String],
) -> [String; 2] {
    let update = update_when_changed("__pgs_f", columns, key);
    [
        // A MERGE driven by the (distinct) affected keys that have no row now: a join the
        // planner can run as index lookups into the target for a few keys, or hash for many.
        // (OFFSET 0: the keys are found first, between the two work tables; joined to the
        // target first, the key match's underestimate made a nested loop over the fresh rows
        // for every affected row: 4.3 s for 10 000 keys.)
        format!(
            "MERGE INTO {target} __pgs_t \
             USING (SELECT __pgs_a.* FROM {affected} __pgs_a \
                    WHERE NOT EXISTS (SELECT 1 FROM {fresh} __pgs_f WHERE {gone}) OFFSET 0) __pgs_a \
             ON {am} WHEN MATCHED THEN DELETE",
            gone = affected_match("__pgs_a", "__pgs_f", key),
            am = affected_match("__pgs_a", "__pgs_t", key),
        ),
        format!(
            "MERGE INTO {target} __pgs_t USING {fresh} __pgs_f ON {fm} \
             {update}WHEN NOT MATCHED THEN INSERT ({targets}) VALUES ({values})",
            fm = key_match_sql("__pgs_t", "__pgs_f", key),
            targets = listed("", columns),
            values = listed("__pgs_f.", columns),
        ),
    ]
}

/// [`apply_keyed`] in one MERGE, for a relation whose rows never move between partitions: the
/// affected keys joined to their fresh rows (first, between the two of them), then matched
/// to `target` by key; a key with no fresh row deleted, a differing row updated in place, a new
/// key inserted. Its row count is all three, told apart by [`written_rows`] read around it.
/// `affected` and `fresh` are relations or parenthesized queries of their shapes.
pub fn apply_keyed_at_once(
    target: &str,
    affected: &str,
    fresh: &str,
    columns: &[String],
    key: &[String],
) -> String {
    let keys: Vec<String> = (0..key.len().max(1))
        .map(|i| format!("__pgs_a.\"__pgs_k{i}\""))
        .collect();
    let update = update_when_changed("__pgs_s", columns, key);
    format!(
        "MERGE INTO {target} __pgs_t \
         USING (SELECT {keys}, __pgs_f.__pgs_present, {fresh_columns} FROM {affected} __pgs_a \
                LEFT JOIN (SELECT true AS __pgs_present, {fresh_columns} FROM {fresh} __pgs_f) __pgs_f \
                ON {found} OFFSET 0) __pgs_s \
         ON {matched} \
         WHEN MATCHED AND __pgs_s.__pgs_present IS NULL THEN DELETE \
         {update}WHEN NOT MATCHED AND __pgs_s.__pgs_present THEN INSERT ({targets}) VALUES ({values})",
        keys = keys.join(", "),
        fresh_columns = listed("__pgs_f.", columns),
        found = affected_match("__pgs_a", "__pgs_f", key),
        matched = affected_match("__pgs_s", "__pgs_t", key),
        targets = listed("", columns),
        values = listed("__pgs_s.", columns),
    )
}

/// A keyed relation's signed delta in `work` applied in one MERGE, without work tables between:
/// the delta netted once (as [`signed_to_keyed`] does), its keys the affected ones and its added
/// rows the fresh ones of [`apply_keyed_at_once`].
pub fn signed_at_once(target: &str, work: &str, columns: &[String], key: &[String]) -> String {
    let affected_keys: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, c)| format!("__pgs_n.{} AS \"__pgs_k{i}\"", quote_ident(c)))
        .collect();
    let affected_keys = if affected_keys.is_empty() {
        "0 AS \"__pgs_k0\"".to_string()
    } else {
        affected_keys.join(", ")
    };
    format!(
        "WITH __pgs_net AS MATERIALIZED ({net}) {merge}",
        net = keyed_net(work, columns),
        merge = apply_keyed_at_once(
            target,
            &format!("(SELECT DISTINCT {affected_keys} FROM __pgs_net __pgs_n)"),
            &format!(
                "(SELECT {} FROM __pgs_net __pgs_n WHERE __pgs_n.__pgs_n > 0)",
                listed("__pgs_n.", columns)
            ),
            columns,
            key,
        ),
    )
}

/// How many rows of `fresh` (recomputed rows of a keyed relation) have a key `target` lacks:
/// the rows the apply inserts, counted before it runs. (The apply's statements count the rest:
/// its MERGE acts on inserted and updated rows, its DELETE on deleted ones.)
pub fn new_keys_count(target: &str, fresh: &str, key: &[String]) -> String {
    format!(
        "SELECT count(*)::pg_catalog.int8 FROM {fresh} __pgs_f \
         WHERE NOT EXISTS (SELECT 1 FROM {target} __pgs_t WHERE {m})",
        m = key_match_sql("__pgs_f", "__pgs_t", key),
    )
}

/// The rows this transaction has inserted into, updated in and deleted from `target` so far (in
/// its leaf partitions when it is partitioned), from the transaction's statistics counters:
/// read before and after an upsert MERGE, the differences tell the rows it inserted (a row it
/// moved to another partition counts as deleted there and inserted here: the MERGE deletes none
/// itself). Counting the new keys before the MERGE instead probed the target once more per
/// fresh row: as much as the MERGE itself.
pub fn written_rows(target: &str) -> String {
    let relation = format!(
        "{}::pg_catalog.regclass",
        crate::sql_text::quote_literal(target)
    );
    format!(
        "SELECT COALESCE(sum(pg_catalog.pg_stat_get_xact_tuples_inserted(__pgs_r.r)), 0)::pg_catalog.int8, \
                COALESCE(sum(pg_catalog.pg_stat_get_xact_tuples_deleted(__pgs_r.r)), 0)::pg_catalog.int8 \
         FROM (SELECT {relation}::pg_catalog.oid AS r \
               UNION SELECT relid FROM pg_catalog.pg_partition_tree({relation}) WHERE isleaf) __pgs_r"
    )
}

/// The index a top-k reads `relation` through, in its ORDER BY order (None without columns).
pub fn order_index(relation: &str, columns: &[super::render::IndexColumn]) -> Option<String> {
    let columns: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "{}{}{}",
                quote_ident(&c.name),
                if c.descending { " DESC" } else { "" },
                if c.nulls_first {
                    " NULLS FIRST"
                } else {
                    " NULLS LAST"
                }
            )
        })
        .collect();
    (!columns.is_empty()).then(|| format!("CREATE INDEX ON {relation} ({})", columns.join(", ")))
}

/// The delta table of `input` (see [`super::ir::Names::delta_table`]): what follows its name in
/// CREATE TEMPORARY TABLE (the buffer's present columns, so a grown buffer is a new shape).
pub fn delta_definition(input: &super::ir::TableInput) -> String {
    format!(
        "AS SELECT {} FROM {} __pgs_b WITH NO DATA",
        delta_columns(input),
        super::ir::change_view(input.relid)
    )
}

/// Copies the change rows of `input` in the refresh's window into its delta table.
pub fn delta_fill(names: &super::ir::Names, input: &super::ir::TableInput) -> String {
    format!(
        "INSERT INTO {} SELECT {} FROM {} __pgs_b WHERE {}",
        names.delta_table(input.relid),
        delta_columns(input),
        super::ir::change_view(input.relid),
        super::ir::CHANGE_WINDOW
    )
}

/// How many change rows of `input` the refresh's window holds (what [`delta_fill`] would copy),
/// counted up to `limit` when given: cost-based AUTO weighs them before filling anything.
pub fn delta_count(input: &super::ir::TableInput, limit: Option<i64>) -> String {
    let window = format!(
        "FROM {} __pgs_b WHERE {}",
        super::ir::change_view(input.relid),
        super::ir::CHANGE_WINDOW
    );
    match limit {
        None => format!("SELECT pg_catalog.count(*)::pg_catalog.int8 {window}"),
        Some(limit) => format!(
            "SELECT pg_catalog.count(*)::pg_catalog.int8 FROM (SELECT {window} LIMIT {limit}) __pgs_c"
        ),
    }
}

/// An index on `column` of the delta table of `relid` (kept with the table between refreshes):
/// its qualified name, and the statement creating it.
pub fn delta_index(names: &super::ir::Names, relid: u32, column: &str) -> (String, String) {
    let tag = column.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let name = format!("__pgs_di_{}_{relid}_{tag:016x}", names.id);
    (
        format!("pg_temp.{name}"),
        format!(
            "CREATE INDEX {name} ON {} ({})",
            names.delta_table(relid),
            quote_ident(column)
        ),
    )
}

/// A lookup index on `column` of `relation` (schema-qualified) named after `base` (an
/// unqualified table name): its qualified name, and the statement creating it.
pub fn lookup_index(relation: &str, schema: &str, base: &str, column: &str) -> (String, String) {
    let tag = column.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let name = format!("{base}_l{tag:016x}");
    (
        format!("{schema}.{}", quote_ident(&name)),
        format!(
            "CREATE INDEX {} ON {relation} ({})",
            quote_ident(&name),
            quote_ident(column)
        ),
    )
}

fn delta_columns(input: &super::ir::TableInput) -> String {
    let mut columns = vec!["__pgs_b.__pgs_w".to_string()];
    columns.extend(
        input
            .columns
            .iter()
            .filter(|c| !input.absent.iter().any(|(a, _)| a == *c))
            .map(|c| format!("__pgs_b.{}", quote_ident(c))),
    );
    columns.join(", ")
}

/// A keyed relation's identity index: unique on (key hash, key columns, `extra` columns), NULLs
/// equal; named `index` (an unqualified identifier) when given, else as PostgreSQL chooses.
/// (`extra`: the partition columns a partitioned stream table's key lacks.)
pub fn key_index(relation: &str, index: Option<&str>, key: &[String], extra: &[String]) -> String {
    let mut parts = vec![format!("({})", key_hash_sql(None, key))];
    parts.extend(key.iter().chain(extra).map(|c| quote_ident(c)));
    let named = index
        .map(|i| format!("{} ", quote_ident(i)))
        .unwrap_or_default();
    format!(
        "CREATE UNIQUE INDEX {named}ON {relation} ({}) NULLS NOT DISTINCT",
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_compare_by_their_stored_image_as_records() {
        let columns = vec!["id".to_string(), "Total".to_string()];
        assert_eq!(
            rows_alike("__pgs_t", "__pgs_w", &columns),
            "ROW(__pgs_t.\"id\", __pgs_t.\"Total\")::pg_catalog.record OPERATOR(pg_catalog.*=) \
             ROW(__pgs_w.\"id\", __pgs_w.\"Total\")::pg_catalog.record"
        );
        assert_eq!(rows_alike("__pgs_t", "__pgs_w", &[]), "true");
        assert!(
            update_when_changed("__pgs_w", &columns, &columns[..1]).contains(
                "WHEN MATCHED AND NOT ROW(__pgs_t.\"id\", __pgs_t.\"Total\")::pg_catalog.record"
            )
        );
    }

    #[test]
    fn a_keyed_apply_at_once_deletes_updates_and_inserts_by_the_affected_keys() {
        let columns = vec!["id".to_string(), "v".to_string()];
        let merge = apply_keyed_at_once(
            "public.t",
            "pg_temp.a",
            "pg_temp.f",
            &columns,
            &columns[..1],
        );
        for part in [
            "USING (SELECT __pgs_a.\"__pgs_k0\", __pgs_f.__pgs_present, __pgs_f.\"id\", __pgs_f.\"v\" FROM pg_temp.a __pgs_a",
            "LEFT JOIN (SELECT true AS __pgs_present, __pgs_f.\"id\", __pgs_f.\"v\" FROM pg_temp.f __pgs_f) __pgs_f",
            "OFFSET 0) __pgs_s ON pg_catalog.hash_record_extended(ROW(__pgs_s.\"__pgs_k0\")",
            "WHEN MATCHED AND __pgs_s.__pgs_present IS NULL THEN DELETE",
            "THEN UPDATE SET \"v\" = __pgs_s.\"v\"",
            "WHEN NOT MATCHED AND __pgs_s.__pgs_present THEN INSERT (\"id\", \"v\") VALUES (__pgs_s.\"id\", __pgs_s.\"v\")",
        ] {
            assert!(merge.contains(part), "{part}\n{merge}");
        }
        // Every column in the key: nothing to update. No key (one group): one row, matched by any.
        let keys_only = apply_keyed_at_once("t", "a", "f", &columns, &columns);
        assert!(!keys_only.contains("UPDATE"), "{keys_only}");
        let one_row = apply_keyed_at_once("t", "a", "f", &columns[1..], &[]);
        assert!(
            one_row.contains("__pgs_s ON true WHEN MATCHED"),
            "{one_row}"
        );
    }

    #[test]
    fn a_signed_delta_applied_at_once_nets_it_once_for_keys_and_fresh_rows() {
        let columns = vec!["id".to_string(), "v".to_string()];
        let merge = signed_at_once("public.t", "pg_temp.w", &columns, &columns[..1]);
        assert!(
            merge.starts_with(
                "WITH __pgs_net AS MATERIALIZED (SELECT __pgs_x.__pgs_n, (__pgs_x.__pgs_r).\"id\""
            ),
            "{merge}"
        );
        for part in [
            "FROM (SELECT DISTINCT __pgs_n.\"id\" AS \"__pgs_k0\" FROM __pgs_net __pgs_n) __pgs_a",
            "FROM (SELECT __pgs_n.\"id\", __pgs_n.\"v\" FROM __pgs_net __pgs_n WHERE __pgs_n.__pgs_n > 0) __pgs_f",
            "WHEN MATCHED AND __pgs_s.__pgs_present IS NULL THEN DELETE",
        ] {
            assert!(merge.contains(part), "{part}\n{merge}");
        }
    }
}
