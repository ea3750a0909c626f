//! Applying a keyed stream table that is a Citus distributed or reference table: Citus runs
//! no MERGE from a coordinator table into such a table and no correlated subquery between the
//! two, so its rows are read and changed through uncorrelated key lists (Citus ships them to
//! the shards as intermediate results) and the change is netted on the coordinator.

use super::super::ir::key_hash_sql;
use super::listed;
use crate::sql_text::quote_ident;

/// `alias.key` is one of the keys `source_keys` (expressions over `source`, `source_alias`)
/// lists where `filter` holds: matched on the key hash (the identity index's first column),
/// then exactly, NULLs equal (one-element arrays with a NULL flag). `true` for an empty key (a
/// one-row result): the caller runs the statement only when `source` lists the row.
fn key_in(
    alias: &str,
    key: &[String],
    source: &str,
    source_alias: &str,
    source_keys: &[String],
    filter: &str,
) -> String {
    if key.is_empty() {
        return "true".into();
    }
    let arrays = |exprs: &mut dyn Iterator<Item = String>| {
        exprs
            .map(|e| format!("ARRAY[{e}], {e} IS NULL"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let own = arrays(&mut key.iter().map(|c| format!("{alias}.{}", quote_ident(c))));
    let theirs = arrays(&mut source_keys.iter().cloned());
    let their_hash = format!(
        "pg_catalog.hash_record_extended(ROW({}), {})",
        source_keys.join(", "),
        super::super::ir::KEY_HASH_SEED
    );
    format!(
        "{} IN (SELECT {their_hash} FROM {source} {source_alias} WHERE {filter}) \
         AND ({own}) IN (SELECT {theirs} FROM {source} {source_alias} WHERE {filter})",
        key_hash_sql(Some(alias), key),
    )
}

/// Copies `target`'s rows of the keys in `affected` (`__pgs_k<i>`) into `old` (shaped like it).
pub fn citus_old_rows(
    old: &str,
    target: &str,
    affected: &str,
    columns: &[String],
    key: &[String],
) -> String {
    let affected_keys: Vec<String> = (0..key.len())
        .map(|i| format!("__pgs_a.__pgs_k{i}"))
        .collect();
    format!(
        "INSERT INTO {old} ({targets}) SELECT {values} FROM {target} __pgs_t WHERE {keys}",
        targets = listed("", columns),
        values = listed("__pgs_t.", columns),
        keys = key_in("__pgs_t", key, affected, "__pgs_a", &affected_keys, "true"),
    )
}

/// Counts a netted change set (`(__pgs_w, columns)`, see [`super::keyed_change_set`]) by key:
/// keys only added (inserted), added and removed (updated), only removed (deleted).
pub fn citus_change_counts(change_set: &str, key: &[String]) -> String {
    let grouped = if key.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", listed("__pgs_c.", key))
    };
    format!(
        "SELECT count(*) FILTER (WHERE __pgs_g.added AND NOT __pgs_g.removed)::pg_catalog.int8, \
                count(*) FILTER (WHERE __pgs_g.added AND __pgs_g.removed)::pg_catalog.int8, \
                count(*) FILTER (WHERE __pgs_g.removed AND NOT __pgs_g.added)::pg_catalog.int8 \
         FROM (SELECT bool_or(__pgs_c.__pgs_w > 0) AS added, bool_or(__pgs_c.__pgs_w < 0) AS removed \
               FROM {change_set} __pgs_c{grouped}) __pgs_g"
    )
}

/// Applies a netted change set to `target`: deletes the rows of the keys it removes a row of,
/// inserts the rows it adds (an update is both). Run the DELETE only when the change set
/// removes a row, the INSERT only when it adds one (an empty key matches every row).
pub fn citus_apply(
    target: &str,
    change_set: &str,
    columns: &[String],
    key: &[String],
) -> [String; 2] {
    let change_keys: Vec<String> = key
        .iter()
        .map(|c| format!("__pgs_c.{}", quote_ident(c)))
        .collect();
    [
        format!(
            "DELETE FROM {target} __pgs_t WHERE {}",
            key_in(
                "__pgs_t",
                key,
                change_set,
                "__pgs_c",
                &change_keys,
                "__pgs_c.__pgs_w < 0"
            )
        ),
        format!(
            "INSERT INTO {target} ({targets}) SELECT {values} FROM {change_set} __pgs_c \
             WHERE __pgs_c.__pgs_w > 0",
            targets = listed("", columns),
            values = listed("__pgs_c.", columns),
        ),
    ]
}

/// Applies a keyed relation's recomputed keys to a Citus reference table `target`: deletes its
/// rows of the affected keys, inserts the fresh rows. Run the DELETE only when `affected` holds
/// a key (an empty key matches every row). (Citus may route a read of a reference
/// table joined with a coordinator table to the coordinator's placement over a connection of
/// its own, where the temporary table does not exist; these two statements it always plans.)
pub fn citus_replace_keys(
    target: &str,
    affected: &str,
    fresh: &str,
    columns: &[String],
    key: &[String],
) -> [String; 2] {
    let affected_keys: Vec<String> = (0..key.len())
        .map(|i| format!("__pgs_a.__pgs_k{i}"))
        .collect();
    [
        format!(
            "DELETE FROM {target} __pgs_t WHERE {}",
            key_in("__pgs_t", key, affected, "__pgs_a", &affected_keys, "true")
        ),
        format!(
            "INSERT INTO {target} ({targets}) SELECT {values} FROM {fresh} __pgs_f",
            targets = listed("", columns),
            values = listed("__pgs_f.", columns),
        ),
    ]
}

/// FULL refresh of `target`: every row deleted, the query's rows inserted (one distributed
/// INSERT … SELECT: Citus pushes it down to the shards where the query allows).
pub fn citus_full(target: &str, full_sql: &str, columns: &[String]) -> [String; 2] {
    [
        format!("DELETE FROM {target}"),
        super::capture_fresh(target, full_sql, columns),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rows_are_found_by_uncorrelated_key_lists_nulls_equal() {
        let sql = citus_old_rows("old", "t", "aff", &cols(&["c", "d"]), &cols(&["c"]));
        assert_eq!(
            sql,
            "INSERT INTO old (\"c\", \"d\") SELECT __pgs_t.\"c\", __pgs_t.\"d\" FROM t __pgs_t WHERE \
             pg_catalog.hash_record_extended(ROW(__pgs_t.\"c\"), 1885827947) IN \
             (SELECT pg_catalog.hash_record_extended(ROW(__pgs_a.__pgs_k0), 1885827947) FROM aff __pgs_a WHERE true) \
             AND (ARRAY[__pgs_t.\"c\"], __pgs_t.\"c\" IS NULL) IN \
             (SELECT ARRAY[__pgs_a.__pgs_k0], __pgs_a.__pgs_k0 IS NULL FROM aff __pgs_a WHERE true)"
        );
        assert!(!sql.contains("EXISTS"), "no correlated subquery: {sql}");
    }

    #[test]
    fn the_apply_deletes_removed_keys_and_inserts_added_rows() {
        let [delete, insert] = citus_apply("t", "chg", &cols(&["Key", "v"]), &cols(&["Key"]));
        assert!(delete.starts_with("DELETE FROM t __pgs_t WHERE "));
        assert!(delete.contains("FROM chg __pgs_c WHERE __pgs_c.__pgs_w < 0"));
        assert!(delete.contains("ARRAY[__pgs_t.\"Key\"], __pgs_t.\"Key\" IS NULL"));
        assert_eq!(
            insert,
            "INSERT INTO t (\"Key\", \"v\") SELECT __pgs_c.\"Key\", __pgs_c.\"v\" FROM chg __pgs_c WHERE __pgs_c.__pgs_w > 0"
        );
    }

    #[test]
    fn an_empty_key_matches_every_row() {
        // (Run only when the change removes the row: see the executor.)
        let [delete, _] = citus_apply("t", "chg", &cols(&["n"]), &[]);
        assert_eq!(delete, "DELETE FROM t __pgs_t WHERE true");
        let [delete, _] = citus_replace_keys("t", "aff", "fr", &cols(&["n"]), &[]);
        assert_eq!(delete, "DELETE FROM t __pgs_t WHERE true");
        assert!(!citus_change_counts("chg", &[]).contains("GROUP BY"));
        assert!(citus_change_counts("chg", &cols(&["a"])).contains("GROUP BY __pgs_c.\"a\""));
    }

    #[test]
    fn a_reference_table_gets_its_affected_keys_replaced() {
        let [delete, insert] =
            citus_replace_keys("t", "aff", "fr", &cols(&["k", "v"]), &cols(&["k"]));
        assert!(delete.starts_with("DELETE FROM t __pgs_t WHERE pg_catalog.hash_record_extended"));
        assert!(delete.contains("FROM aff __pgs_a WHERE true"));
        assert_eq!(
            insert,
            "INSERT INTO t (\"k\", \"v\") SELECT __pgs_f.\"k\", __pgs_f.\"v\" FROM fr __pgs_f"
        );
    }

    #[test]
    fn full_deletes_then_inserts_the_query() {
        let [delete, insert] = citus_full("t", "SELECT 1", &cols(&["a"]));
        assert_eq!(delete, "DELETE FROM t");
        assert_eq!(
            insert,
            "INSERT INTO t (\"a\") SELECT __pgs_f.\"a\" FROM (\nSELECT 1\n) __pgs_f (\"a\")"
        );
    }
}
