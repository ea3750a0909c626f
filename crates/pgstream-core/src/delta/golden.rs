//! Golden files of the generated SQL: every stage of a corpus of queries (jaffle-shop and
//! TPC-H shapes) rendered to `golden/<name>.txt`, so a planner change shows as a reviewable
//! diff. `PGS_UPDATE_GOLDEN=1 cargo test -p pgstream-core golden` rewrites them.

use super::tests::{catalog, request};
use super::*;
use std::path::PathBuf;

const CORPUS: &[(&str, &str)] = &[
    ("filter_keyed", "SELECT id, v * 2 AS doubled FROM a WHERE v > 1"),
    ("join_multiset", "SELECT a.v, b.w FROM a JOIN b ON b.k = a.k"),
    ("left_join", "SELECT a.id, b.w FROM a LEFT JOIN b ON b.k = a.k"),
    ("aggregate_algebraic", "SELECT k, count(*) AS n, sum(v) AS s, min(v) AS lo FROM a GROUP BY k"),
    ("aggregate_recomputed", "SELECT k, string_agg(v::text, ',') AS vs FROM a GROUP BY k"),
    (
        "jaffle_orders",
        "WITH orders AS (SELECT id AS order_id, customer_id, placed_at FROM orders), \
         payments AS (SELECT order_id, \
           sum(CASE WHEN method = 'card' THEN amount ELSE 0 END) AS card_amount, \
           sum(amount) AS total FROM payments GROUP BY order_id) \
         SELECT o.order_id, o.customer_id, coalesce(p.card_amount, 0) AS card_amount, \
                coalesce(p.total, 0) AS amount \
         FROM orders o LEFT JOIN payments p ON p.order_id = o.order_id",
    ),
    (
        "jaffle_customers",
        "WITH o AS (SELECT customer_id, min(placed_at) AS first_order, count(*) AS orders \
                    FROM orders GROUP BY customer_id), \
              v AS (SELECT orders.customer_id, sum(payments.amount) AS lifetime_value \
                    FROM payments JOIN orders ON orders.id = payments.order_id \
                    GROUP BY orders.customer_id) \
         SELECT c.id, c.name, o.first_order, coalesce(o.orders, 0) AS orders, v.lifetime_value \
         FROM customers c LEFT JOIN o ON o.customer_id = c.id LEFT JOIN v ON v.customer_id = c.id",
    ),
    (
        "scalar_subquery",
        "SELECT id, v, (SELECT max(w) FROM b WHERE b.k = a.k) AS top FROM a",
    ),
    (
        "exists_over_join",
        "SELECT c.id FROM customers c WHERE EXISTS \
         (SELECT 1 FROM orders o JOIN payments p ON p.order_id = o.id WHERE o.customer_id = c.id)",
    ),
    (
        "top_k",
        "SELECT k, sum(v) AS total FROM a GROUP BY k ORDER BY total DESC, k LIMIT 10",
    ),
    ("union_distinct", "SELECT k FROM a UNION SELECT k FROM b"),
    (
        "aggregate_of_aggregate",
        "SELECT count(*) AS groups, sum(n) AS rows FROM (SELECT k, count(*) AS n FROM a GROUP BY k) g",
    ),
];

/// A plan as text: identity, tables, then every stage with its SQL.
fn rendered(plan: &Plan) -> String {
    let mut out = format!(
        "identity: {:?} ({})\ntables: {:?}\ndelta indexes: {:?}\n",
        plan.root_identity.identity, plan.root_identity.reason, plan.tables, plan.delta_indexes
    );
    for stage in &plan.stages {
        out.push_str(&format!(
            "\n== stage {} [{:?}] columns {:?}\n-- full:\n{}\n",
            stage.summary(),
            stage.identity,
            stage.columns,
            stage.full_sql
        ));
        if let Some(sql) = stage.refresh_sql() {
            out.push_str(&format!("-- refresh:\n{sql}\n"));
        }
        if let StageRefresh::Algebraic(a) = &stage.refresh {
            let moves = statements::update_state(a, "STATE", "GROUPS", "RESCAN", "STATE_WORK");
            let (affected, fresh) =
                statements::algebraic_at_once(a, "STATE", "GROUPS", &stage.columns);
            out.push_str(&format!(
                "-- state moved:\n{}\n-- applied at once from the state: keys\n{affected}\n-- rows\n{fresh}\n",
                moves.join(";\n")
            ));
        }
    }
    out
}

#[test]
fn generated_sql_matches_the_golden_files() {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden");
    let update = std::env::var_os("PGS_UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (name, query) in CORPUS {
        let plan =
            plan(query, &catalog(), &request(None)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = rendered(&plan);
        let path = directory.join(format!("{name}.txt"));
        if update {
            std::fs::write(&path, &text).expect("writing a golden file");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name.to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "generated SQL differs from golden/ for {stale:?}: review, then rerun with PGS_UPDATE_GOLDEN=1"
    );
}
