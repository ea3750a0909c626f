//! Unit tests of delta planning: shapes, refused constructs and the generated SQL.

use super::*;
use std::collections::HashMap;

/// Relations of a small schema: tables a(id, k, v) (oid 1), b(k, w) (oid 2), c(x) (oid 3),
/// partitioned table p, view av over a, and the aggregates PostgreSQL ships that tests use.
struct TestCatalog {
    relations: HashMap<String, Relation>,
    outputs: Vec<(String, String)>,
}

fn table(relid: u32, columns: &[&str]) -> Relation {
    Relation::Table {
        relid,
        columns: columns.iter().map(|c| c.to_string()).collect(),
        absent: vec![],
    }
}

fn catalog() -> TestCatalog {
    let mut relations = HashMap::new();
    relations.insert("a".into(), table(1, &["id", "k", "v"]));
    relations.insert("public.a".into(), table(1, &["id", "k", "v"]));
    relations.insert("b".into(), table(2, &["k", "w"]));
    relations.insert("c".into(), table(3, &["x"]));
    relations.insert("Mixed Case".into(), table(4, &["y"]));
    relations.insert(
        "p".into(),
        Relation::NotCapturable {
            reason: "partitioned table".into(),
        },
    );
    relations.insert(
        "av".into(),
        Relation::View {
            definition: " SELECT a.id, a.v AS value FROM public.a WHERE a.v > 0;".into(),
        },
    );
    TestCatalog {
        relations,
        outputs: vec![],
    }
}

impl Catalog for TestCatalog {
    fn relation(&self, name: &[String]) -> Option<Relation> {
        self.relations.get(&name.join(".")).cloned()
    }
    fn output_columns(&self) -> Vec<(String, String)> {
        self.outputs.clone()
    }
    fn is_aggregate(&self, name: &str) -> bool {
        [
            "count",
            "sum",
            "avg",
            "min",
            "max",
            "string_agg",
            "array_agg",
            "bool_and",
        ]
        .contains(&name)
    }
}

fn planned(query: &str) -> DeltaPlan {
    plan(query, &catalog(), None).unwrap_or_else(|e| panic!("{query}: {e}"))
}

fn refused(query: &str) -> String {
    match plan(query, &catalog(), None) {
        Ok(_) => panic!("{query} was planned"),
        Err(Unsupported(construct)) => construct,
    }
}

fn terms(sql: &str) -> usize {
    sql.matches("UNION ALL\n").count() + 1
}

#[test]
fn single_table_filter_has_an_insert_and_a_delete_term() {
    let plan = planned("SELECT id, v * 2 AS doubled FROM a WHERE v > 1");
    assert_eq!(plan.shape, Shape::Linear);
    assert_eq!(plan.sources, vec![1]);
    assert_eq!(terms(&plan.delta_sql), 2);
    let expected = "SELECT 1::int4 AS __pgs_w, __pgs_q::text AS __pgs_t, __pgs_q.* FROM (SELECT id, v * 2 AS doubled FROM \
        (SELECT __pgs_b.\"id\", __pgs_b.\"k\", __pgs_b.\"v\" FROM pgstream.\"_rows_1\" __pgs_b WHERE __pgs_b.__pgs_w = 1 AND \
        NOT pg_catalog.pg_visible_in_snapshot(__pgs_b.__pgs_xid, $1::pg_catalog.pg_snapshot) AND NOT COALESCE(__pgs_b.__pgs_xid = $2::pg_catalog.xid8 \
        AND __pgs_b.__pgs_seq <= $3::pg_catalog.int8, false)) AS a WHERE v > 1) __pgs_q";
    assert_eq!(
        plan.delta_sql.split("\nUNION ALL\n").next().unwrap(),
        expected
    );
    assert!(plan.delta_sql.contains("SELECT -1::int4"));
    assert!(plan.delta_sql.contains("__pgs_b.__pgs_w = -1"));
}

#[test]
fn joins_expand_by_inclusion_exclusion() {
    let plan = planned("SELECT a.id, b.w FROM a JOIN b ON a.k = b.k");
    assert_eq!(terms(&plan.delta_sql), 8);
    // Self-joins are two occurrences.
    let plan = planned("SELECT x.id FROM a x, a y WHERE x.k = y.k AND x.id < y.id");
    assert_eq!(terms(&plan.delta_sql), 8);
    let plan = planned("SELECT 1 FROM a JOIN b ON a.k = b.k JOIN c ON c.x = b.w");
    assert_eq!(terms(&plan.delta_sql), 26);
    // Only sources that changed get terms.
    let changed: HashSet<u32> = [2].into_iter().collect();
    let plan = crate::delta::plan(
        "SELECT a.id, b.w FROM a JOIN b ON a.k = b.k",
        &catalog(),
        Some(&changed),
    )
    .unwrap();
    assert_eq!(terms(&plan.delta_sql), 2);
    assert!(plan.delta_sql.contains("FROM a AS a JOIN (SELECT"));
    // Inclusion-exclusion signs: the both-deleted term of a two-way join counts negative twice over.
    let plan = planned("SELECT a.id FROM a, b");
    let coefficients: Vec<&str> = plan
        .delta_sql
        .split("\nUNION ALL\n")
        .map(|t| {
            t.split("::int4")
                .next()
                .unwrap()
                .trim_start_matches("SELECT ")
        })
        .collect();
    assert_eq!(
        coefficients,
        vec!["1", "-1", "1", "-1", "-1", "1", "1", "-1"]
    );
}

#[test]
fn nothing_changed_gives_an_empty_delta_of_the_right_shape() {
    let changed = HashSet::new();
    let plan = crate::delta::plan("SELECT id FROM a", &catalog(), Some(&changed)).unwrap();
    assert!(plan.delta_sql.ends_with("WHERE false"));
    assert!(plan
        .delta_sql
        .contains("FROM (SELECT id FROM a AS a) __pgs_q"));
}

#[test]
fn ctes_views_subqueries_and_union_all_are_linear() {
    let plan = planned(
        "WITH big AS (SELECT * FROM a WHERE v > 10) SELECT big.id FROM big JOIN b USING (k)",
    );
    assert_eq!(plan.shape, Shape::Linear);
    assert_eq!(terms(&plan.delta_sql), 8);
    assert!(!plan.delta_sql.contains("WITH"));
    let plan = planned("SELECT value FROM av");
    assert!(plan.delta_sql.contains("AS av"), "{}", plan.delta_sql);
    assert_eq!(plan.sources, vec![1]);
    let plan = planned("SELECT s.id FROM (SELECT id FROM a WHERE v IS NOT NULL) s");
    assert_eq!(terms(&plan.delta_sql), 2);
    let plan = planned("SELECT id FROM a UNION ALL SELECT k FROM b UNION ALL SELECT 1");
    assert_eq!(plan.shape, Shape::Linear);
    assert_eq!(terms(&plan.delta_sql), 4);
    let plan = planned("SELECT y FROM \"Mixed Case\"");
    assert!(plan.delta_sql.contains("AS \"Mixed Case\""));
}

#[test]
fn aggregates_are_keyed_by_their_group() {
    let plan = planned(
        "SELECT k, count(*), sum(v) FROM a AS a WHERE v <> 0 GROUP BY k HAVING count(*) > 1",
    );
    assert_eq!(plan.shape, Shape::Keyed);
    assert_eq!(terms(&plan.delta_sql), 1);
    assert!(plan
        .delta_sql
        .contains("SELECT (pg_catalog.hash_record_extended(ROW(k), 1885827947) & 4611686018427387903) AS __pgs_k FROM (SELECT __pgs_b."));
    let fresh = plan.fresh_sql.unwrap();
    assert!(fresh.contains("WHERE (v <> 0) AND (pg_catalog.hash_record_extended(ROW(k), 1885827947) & 4611686018427387903) IN (SELECT h FROM __pgs_affected)"), "{fresh}");
    assert!(fresh.contains("HAVING count(*) > 1"));
    assert!(plan
        .full_sql
        .unwrap()
        .contains("(pg_catalog.hash_record_extended(ROW(k), 1885827947) & 4611686018427387903) AS __pgs_k FROM a AS a WHERE v <> 0 GROUP BY k"));
    // Positional keys and expressions.
    let plan = planned("SELECT lower(b.w) AS lw, max(a.v) FROM a JOIN b ON a.k = b.k GROUP BY 1");
    assert!(plan
        .delta_sql
        .contains("hash_record_extended(ROW(lower(b.w)), 1885827947)"));
    assert_eq!(terms(&plan.delta_sql), 3);
    // One-row aggregates.
    let plan = planned("SELECT count(*), string_agg(v::text, ',') FROM a");
    assert!(plan
        .fresh_sql
        .unwrap()
        .contains("WHERE EXISTS (SELECT 1 FROM __pgs_affected)"));
}

#[test]
fn distinct_and_union_are_keyed_by_the_row() {
    let plan = planned("SELECT DISTINCT k FROM a");
    assert_eq!(plan.shape, Shape::Keyed);
    assert!(plan
        .delta_sql
        .starts_with("SELECT (pg_catalog.hash_record_extended(__pgs_q, 1885827947) & 4611686018427387903) AS __pgs_k FROM (SELECT k FROM (SELECT"));
    let plan = planned("SELECT k FROM a UNION SELECT k FROM b");
    assert_eq!(plan.shape, Shape::Keyed);
    assert_eq!(terms(&plan.delta_sql), 2);
    assert!(plan
        .full_sql
        .unwrap()
        .contains("FROM (SELECT k FROM a AS a UNION SELECT k FROM b AS b) __pgs_q"));
}

#[test]
fn unsupported_constructs_are_named() {
    for (query, construct) in [
        (
            "SELECT id, row_number() OVER () FROM a",
            "window function row_number()",
        ),
        ("SELECT id FROM a LIMIT 5", "LIMIT / OFFSET"),
        ("SELECT id FROM a ORDER BY id OFFSET 2", "LIMIT / OFFSET"),
        ("SELECT id FROM a FOR UPDATE", "FOR UPDATE / FOR SHARE"),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r",
            "WITH RECURSIVE",
        ),
        ("SELECT id FROM a TABLESAMPLE SYSTEM (10)", "TABLESAMPLE"),
        ("SELECT DISTINCT ON (k) k, v FROM a", "DISTINCT ON"),
        ("SELECT a.id FROM a LEFT JOIN b USING (k)", "LEFT JOIN with USING or NATURAL (write ON instead)"),
        ("SELECT a.id FROM a LEFT JOIN av ON a.id = av.id", "LEFT JOIN of a subquery, view or CTE (join a table directly)"),
        ("SELECT 1 FROM a JOIN b ON a.k = b.k RIGHT JOIN c ON c.x = b.w", "RIGHT JOIN after another join (put it first)"),
        ("SELECT id FROM a WHERE v > 1 OR EXISTS (SELECT 1 FROM b WHERE b.k = a.k)",
         "EXISTS (subquery) outside a top-level AND condition of WHERE"),
        ("SELECT id FROM a WHERE k IN (SELECT b.k FROM b JOIN c ON c.x = b.k)",
         "a subquery in WHERE that is not a plain SELECT from one table (k IN (SELECT b.k FROM __pgs_src_1__ AS b JOIN __pgs_src_2__ AS c ON c.x = b.k))"),
        ("SELECT id, (SELECT max(w) FROM b) FROM a", "scalar subquery outside a top-level AND condition of WHERE"),
        ("SELECT k FROM a INTERSECT SELECT k FROM b", "INTERSECT"),
        (
            "SELECT * FROM generate_series(1, 3)",
            "function generate_series() in FROM",
        ),
        (
            "SELECT k, count(*) FROM a GROUP BY ROLLUP (k)",
            "GROUPING SETS / ROLLUP / CUBE",
        ),
        (
            "SELECT s.k FROM (SELECT a.k, count(*) FROM a JOIN b ON a.k = b.k GROUP BY a.k) s",
            "GROUP BY or aggregates in a subquery or CTE that reads more than one table (make it a stream table of its own and read that)",
        ),
        (
            "SELECT k AS g, count(*) FROM a GROUP BY g",
            "GROUP BY the output column name g (group by the expression instead)",
        ),
    ] {
        assert_eq!(refused(query), construct, "{query}");
    }
    assert!(refused("SELECT * FROM p").contains("partitioned table"));
    assert!(refused("SELECT * FROM missing").contains("does not exist"));
}

#[test]
fn outer_joins_split_into_inner_and_anti_join_blocks() {
    // Inner part (8 terms for two changed tables), the padded part for a's changes (2) and
    // for b's (2: rows whose match appeared or went).
    let plan = planned("SELECT a.id, b.w FROM a LEFT JOIN b ON a.k = b.k");
    assert_eq!(plan.shape, Shape::Linear);
    assert_eq!(terms(&plan.delta_sql), 12);
    assert!(
        plan.delta_sql
            .contains("LEFT JOIN (SELECT * FROM b __pgs_none WHERE false) AS b ON false"),
        "{}",
        plan.delta_sql
    );
    assert!(plan
        .delta_sql
        .contains("NOT EXISTS (SELECT 1 FROM b AS b WHERE a.k = b.k)"));
    // Only a changed: the padded part needs no before-and-after of b.
    let changed: HashSet<u32> = [1].into_iter().collect();
    let plan = crate::delta::plan(
        "SELECT a.id, b.w FROM a LEFT JOIN b ON a.k = b.k",
        &catalog(),
        Some(&changed),
    )
    .unwrap();
    assert_eq!(terms(&plan.delta_sql), 4);
    let plan = planned("SELECT a.id, b.w FROM a FULL JOIN b ON a.k = b.k");
    assert_eq!(terms(&plan.delta_sql), 8 + 4 + 4);
    assert!(plan
        .delta_sql
        .contains("(SELECT * FROM a __pgs_none WHERE false) AS a RIGHT JOIN"));
    let plan = planned("SELECT b.w, count(*) FROM a RIGHT JOIN b ON a.k = b.k GROUP BY b.w");
    assert_eq!(plan.shape, Shape::Keyed);
}

#[test]
fn subqueries_in_where_are_filters_with_a_before_value() {
    let plan = planned("SELECT id FROM a WHERE v > 0 AND EXISTS (SELECT 1 FROM b WHERE b.k = a.k)");
    // a's changes (2 terms, filter as before) and rows whose filter flipped (2).
    assert_eq!(terms(&plan.delta_sql), 4);
    assert!(plan
        .delta_sql
        .contains("(SELECT count(*) FROM b AS b WHERE (b.k = a.k))"));
    let plan = planned("SELECT id FROM a WHERE k NOT IN (SELECT k FROM b WHERE w IS NOT NULL)");
    assert!(plan.delta_sql.contains("IS NULL)"));
    let plan =
        planned("SELECT DISTINCT k FROM a WHERE NOT EXISTS (SELECT 1 FROM c WHERE c.x = a.k)");
    assert_eq!(plan.shape, Shape::Keyed);
    assert_eq!(terms(&plan.delta_sql), 2);
}

fn with_outputs(query: &str, outputs: &[(&str, &str)]) -> DeltaPlan {
    let mut catalog = catalog();
    catalog.outputs = outputs
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    crate::delta::plan(query, &catalog, None).unwrap()
}

#[test]
fn count_sum_avg_min_max_are_algebraic() {
    let plan = with_outputs(
        "SELECT k, count(*) AS n, sum(v) AS s, avg(v) AS m, min(v) AS lo FROM a GROUP BY k",
        &[
            ("k", "integer"),
            ("n", "bigint"),
            ("s", "bigint"),
            ("m", "numeric"),
            ("lo", "integer"),
        ],
    );
    let algebraic = plan.algebraic.expect("algebraic");
    assert!(!algebraic.scalar);
    assert_eq!(
        algebraic.state_columns,
        ["__pgs_n", "__pgs_c2", "__pgs_s2", "__pgs_c3", "__pgs_s3", "__pgs_c4", "__pgs_m4"]
    );
    assert!(
        algebraic
            .delta_sql
            .contains("sum(__pgs_i.__pgs_w * __pgs_i.__pgs_a2) AS __pgs_ds2"),
        "{}",
        algebraic.delta_sql
    );
    assert_eq!(
        algebraic.rescan_condition.as_deref(),
        Some("(__pgs_d.__pgs_del4 <= __pgs_t.\"lo\")")
    );
    assert!(
        algebraic
            .state_sql
            .starts_with("SELECT (pg_catalog.hash_record_extended(ROW(k), 1885827947)"),
        "{}",
        algebraic.state_sql
    );
    assert!(
        algebraic.state_sql.ends_with("FROM a AS a GROUP BY k"),
        "{}",
        algebraic.state_sql
    );
    assert!(algebraic
        .state_rescan_sql
        .contains("IN (SELECT h FROM __pgs_rescan)"));
    assert_eq!(algebraic.outputs[0], "(__pgs_d.__pgs_k0)::integer");
    // Floating sums drift: recompute instead; so do HAVING and other aggregates.
    for (query, outputs) in [
        (
            "SELECT k, sum(v::float8) AS s FROM a GROUP BY k",
            &[("k", "integer"), ("s", "double precision")][..],
        ),
        (
            "SELECT k, count(*) AS n FROM a GROUP BY k HAVING count(*) > 1",
            &[("k", "integer"), ("n", "bigint")][..],
        ),
        (
            "SELECT k, string_agg(v::text, ',') AS s FROM a GROUP BY k",
            &[("k", "integer"), ("s", "text")][..],
        ),
        (
            "SELECT k, count(DISTINCT v) AS n FROM a GROUP BY k",
            &[("k", "integer"), ("n", "bigint")][..],
        ),
        (
            "SELECT k, sum(v) + 1 AS s FROM a GROUP BY k",
            &[("k", "integer"), ("s", "bigint")][..],
        ),
    ] {
        assert!(with_outputs(query, outputs).algebraic.is_none(), "{query}");
    }
    let scalar = with_outputs("SELECT count(*) AS n FROM a", &[("n", "bigint")])
        .algebraic
        .unwrap();
    assert!(scalar.scalar);
}

#[test]
fn aggregate_subqueries_over_one_table_are_occurrences() {
    let plan = planned(
        "SELECT b.w, s.n FROM b JOIN (SELECT k, count(*) AS n FROM a GROUP BY k) s ON s.k = b.k",
    );
    assert_eq!(plan.shape, Shape::Linear);
    assert_eq!(terms(&plan.delta_sql), 8);
    // The deleted rows of a touched group: the table less net insertions plus net deletions.
    assert!(
        plan.delta_sql.contains("EXCEPT")
            || plan
                .delta_sql
                .contains("__pgs_rn > COALESCE(__pgs_p.__pgs_n, 0)")
    );
    let plan = planned(
        "WITH t AS (SELECT k, sum(v) AS s FROM a GROUP BY k HAVING sum(v) > 0) SELECT k, s FROM t",
    );
    assert_eq!(terms(&plan.delta_sql), 2);
    let plan = planned(
        "SELECT n, count(*) AS c FROM (SELECT k, count(*) AS n FROM a GROUP BY k) s GROUP BY n",
    );
    assert_eq!(plan.shape, Shape::Keyed);
}
