//! Unit tests of delta planning: stages, identities, refusals and the generated SQL.

use super::*;
use std::collections::{HashMap, HashSet};

/// A small schema: a(id PK, k, v) oid 1, b(k, w) oid 2, c(x) oid 3, customers(id PK, name) 4,
/// orders(id PK, customer_id, amount, placed_at) 5, payments(id PK, order_id, method, amount) 6,
/// partitioned p, view av over a.
pub(super) struct TestCatalog {
    relations: HashMap<String, Relation>,
    keys: HashMap<u32, Vec<String>>,
}

fn table(relid: u32, name: &str, columns: &[&str]) -> Relation {
    Relation::Table(TableInput {
        relid,
        name: format!("public.{name}"),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        absent: vec![],
    })
}

pub(super) fn catalog() -> TestCatalog {
    let mut relations = HashMap::new();
    let mut add = |name: &str, relation: Relation| {
        relations.insert(name.to_string(), relation.clone());
        relations.insert(format!("public.{name}"), relation);
    };
    add("a", table(1, "a", &["id", "k", "v"]));
    add("b", table(2, "b", &["k", "w"]));
    add("c", table(3, "c", &["x"]));
    add("customers", table(4, "customers", &["id", "name"]));
    add(
        "orders",
        table(5, "orders", &["id", "customer_id", "amount", "placed_at"]),
    );
    add(
        "payments",
        table(6, "payments", &["id", "order_id", "method", "amount"]),
    );
    add(
        "p",
        Relation::NotCapturable {
            reason: "partitioned table".into(),
        },
    );
    add(
        "av",
        Relation::View {
            name: "public.av".into(),
            definition: " SELECT a.id, a.v AS value FROM public.a WHERE a.v > 0;".into(),
        },
    );
    let keys = [
        (1, vec!["id".to_string()]),
        (4, vec!["id".into()]),
        (5, vec!["id".into()]),
        (6, vec!["id".into()]),
    ]
    .into_iter()
    .collect();
    TestCatalog { relations, keys }
}

impl Catalog for TestCatalog {
    fn relation(&self, name: &[String]) -> Option<Relation> {
        self.relations.get(&name.join(".")).cloned()
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
    fn describe(&self, _query: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn table_key(&self, relid: u32) -> Option<Vec<String>> {
        self.keys.get(&relid).cloned()
    }
    fn keyable(&self, _type_name: &str) -> bool {
        true
    }
}

pub(super) fn request(changed: Option<&HashSet<u32>>) -> PlanRequest<'_> {
    PlanRequest {
        names: Names { id: 9 },
        changed,
        render_terms: true,
    }
}

pub(super) fn planned(query: &str) -> Plan {
    plan(query, &catalog(), &request(None)).unwrap_or_else(|e| panic!("{query}: {e}"))
}

fn refused(query: &str) -> String {
    match plan(query, &catalog(), &request(None)) {
        Ok(_) => panic!("{query} was planned"),
        Err(unsupported) => unsupported.to_string(),
    }
}

fn terms(sql: &str) -> usize {
    sql.matches("UNION ALL\n").count() + 1
}

fn delta(stage: &StagePlan) -> &str {
    match &stage.refresh {
        StageRefresh::Signed { delta_sql } => delta_sql,
        other => panic!("not signed: {other:?}"),
    }
}

#[test]
fn a_filter_is_one_linear_stage_keyed_by_the_tables_key() {
    let plan = planned("SELECT id, v * 2 AS doubled FROM a WHERE v > 1");
    assert_eq!(plan.stages.len(), 1);
    assert_eq!(plan.tables, vec![1]);
    let root = plan.root();
    assert_eq!(root.kind, StageKind::Linear);
    assert_eq!(root.identity, Identity::Key(vec!["id".into()]));
    assert_eq!(terms(delta(root)), 2);
    assert!(
        delta(root).contains("FROM pg_temp.\"__pgs_delta_9_1\" __pgs_b WHERE __pgs_b.__pgs_w = 1)"),
        "{}",
        delta(root)
    );
    assert_eq!(
        root.full_sql,
        "SELECT id, v * 2 AS doubled FROM public.a AS a WHERE v > 1"
    );
    assert_eq!(
        plan.deltas.iter().map(|d| d.relid).collect::<Vec<_>>(),
        vec![1]
    );
    // Without the key in its columns, a multiset.
    assert_eq!(
        planned("SELECT v FROM a").root().identity,
        Identity::Multiset
    );
}

#[test]
fn joins_expand_by_inclusion_exclusion_over_changed_tables_only() {
    let plan = planned("SELECT a.id, b.w FROM a JOIN b ON a.k = b.k");
    assert_eq!(terms(delta(plan.root())), 8);
    let changed: HashSet<u32> = [2].into_iter().collect();
    let plan = super::plan(
        "SELECT a.id, b.w FROM a JOIN b ON a.k = b.k",
        &catalog(),
        &request(Some(&changed)),
    )
    .unwrap();
    assert_eq!(terms(delta(plan.root())), 2);
    assert!(delta(plan.root()).contains("FROM public.a AS a JOIN (SELECT"));
    // Many-to-one: a order's key alone identifies a row of orders joined to its customer.
    let plan = planned(
        "SELECT o.id, o.amount, c.name FROM orders o JOIN customers c ON c.id = o.customer_id",
    );
    assert_eq!(plan.root().identity, Identity::Key(vec!["id".into()]));
}

#[test]
fn aggregates_are_algebraic_with_expressions_and_having() {
    let plan = planned(
        "SELECT k, count(*) AS n, sum(v) AS total, 100.0 * sum(v) / count(*) AS share \
         FROM a GROUP BY k HAVING count(*) > 1",
    );
    let root = plan.root();
    assert_eq!(root.kind, StageKind::Aggregate { algebraic: true });
    assert_eq!(root.identity, Identity::Key(vec!["k".into()]));
    let StageRefresh::Algebraic(algebraic) = &root.refresh else {
        panic!("{:?}", root.refresh)
    };
    assert_eq!(algebraic.outputs[0], "__pgs_s.__pgs_k0");
    assert!(
        algebraic.outputs[3].contains("100.0 *"),
        "{:?}",
        algebraic.outputs
    );
    assert_eq!(algebraic.having.as_deref(), Some("__pgs_s.__pgs_n > 1"));
    // Other aggregates recompute the touched groups.
    let plan = planned("SELECT k, string_agg(v::text, ',') AS vs FROM a GROUP BY k");
    let StageRefresh::Keys { fresh_sql, .. } = &plan.root().refresh else {
        panic!("{:?}", plan.root().refresh)
    };
    assert!(
        fresh_sql.contains("(k)) IN (SELECT __pgs_k0 FROM pg_temp.\"__pgs_aff_9_0\")"),
        "{fresh_sql}"
    );
}

#[test]
fn a_grouped_query_without_its_keys_is_a_projection_over_a_stage() {
    let plan = planned("SELECT sum(v) AS total FROM a GROUP BY k");
    assert_eq!(plan.stages.len(), 2);
    assert_eq!(
        plan.stages[0].identity,
        Identity::Key(vec!["__pgs_g0".into()])
    );
    assert_eq!(plan.stages[0].visible, 1);
    // Its rows computed from the state carry the hidden key too.
    let algebraic = plan.stages[0].algebraic.as_ref().expect("sum is algebraic");
    assert_eq!(algebraic.outputs.len(), plan.stages[0].columns.len());
    assert_eq!(plan.root().identity, Identity::Multiset);
    assert!(
        plan.root()
            .full_sql
            .contains("FROM pgstream_changes.\"aux_9_0\""),
        "{}",
        plan.root().full_sql
    );
}

#[test]
fn dbt_marts_cut_into_aggregate_stages_joined_by_key() {
    let customers = "with customer_orders as (\
           select customer_id, min(placed_at) as first_order, count(id) as number_of_orders \
           from orders group by customer_id), \
         customer_payments as (\
           select orders.customer_id, sum(payments.amount) as total_amount \
           from payments left join orders on payments.order_id = orders.id group by orders.customer_id), \
         final as (\
           select customers.id as customer_id, customers.name, customer_orders.first_order, \
                  customer_orders.number_of_orders, customer_payments.total_amount \
           from customers \
           left join customer_orders on customers.id = customer_orders.customer_id \
           left join customer_payments on customers.id = customer_payments.customer_id) \
         select * from final";
    let plan = planned(customers);
    assert_eq!(
        plan.stages.len(),
        3,
        "{:#?}",
        plan.stages.iter().map(|s| &s.location).collect::<Vec<_>>()
    );
    assert!(matches!(
        plan.stages[0].kind,
        StageKind::Aggregate { algebraic: true }
    ));
    assert!(matches!(
        plan.stages[1].kind,
        StageKind::Aggregate { algebraic: true }
    ));
    assert_eq!(plan.root().kind, StageKind::Linear);
    assert_eq!(
        plan.root().identity,
        Identity::Key(vec!["customer_id".into()])
    );
    assert!(plan.stages[0].feeds && plan.stages[1].feeds);
    assert_eq!(plan.tables, vec![4, 5, 6]);
}

#[test]
fn scalar_subqueries_become_joins_with_aggregate_stages() {
    // Correlated by equality (TPC-H Q17's shape).
    let plan = planned(
        "SELECT sum(o.amount) / 7.0 AS avg_yearly FROM orders o, customers c \
         WHERE c.id = o.customer_id AND o.amount < (SELECT 0.2 * avg(o2.amount) FROM orders o2 \
         WHERE o2.customer_id = c.id)",
    );
    assert_eq!(plan.stages.len(), 2);
    assert!(
        plan.stages[0].full_sql.contains("GROUP BY o2.customer_id"),
        "{}",
        plan.stages[0].full_sql
    );
    assert!(
        plan.root().full_sql.contains("LEFT JOIN (SELECT"),
        "{}",
        plan.root().full_sql
    );
    // Uncorrelated in HAVING (TPC-H Q11's shape): the groups a stage, the filter over it.
    let plan = planned(
        "SELECT k, sum(v) AS value FROM a GROUP BY k HAVING sum(v) > (SELECT sum(v) * 0.1 FROM a)",
    );
    assert_eq!(plan.stages.len(), 3);
    assert_eq!(plan.root().kind, StageKind::Linear);
    assert!(
        plan.root().full_sql.contains("CROSS JOIN"),
        "{}",
        plan.root().full_sql
    );
}

#[test]
fn exists_over_a_join_is_a_filter_over_a_stage() {
    let plan = planned(
        "SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o JOIN payments p \
         ON p.order_id = o.id WHERE o.customer_id = c.id AND p.amount > 10)",
    );
    assert_eq!(plan.stages.len(), 2);
    assert!(
        plan.stages[0].full_sql.contains("AS \"__pgs_c0\""),
        "{}",
        plan.stages[0].full_sql
    );
    assert!(
        plan.root()
            .full_sql
            .contains("EXISTS (SELECT 1 FROM (SELECT"),
        "{}",
        plan.root().full_sql
    );
}

#[test]
fn top_k_reads_its_input_stage_in_order() {
    let plan = planned("SELECT k, sum(v) AS total FROM a GROUP BY k ORDER BY total DESC LIMIT 10");
    assert_eq!(plan.stages.len(), 2);
    assert_eq!(plan.root().kind, StageKind::TopK);
    assert_eq!(
        plan.stages[0].order_index,
        Some(vec![render::IndexColumn {
            name: "total".into(),
            descending: true,
            nulls_first: true
        }])
    );
    assert!(
        plan.root()
            .full_sql
            .ends_with("ORDER BY \"__pgs_in\".\"total\" DESC LIMIT 10"),
        "{}",
        plan.root().full_sql
    );
}

#[test]
fn a_string_literal_that_looks_like_a_marker_is_left_alone() {
    let plan = planned("SELECT id, '__pgs_occ_0__ __pgs_src_0__ $1::' AS s FROM a WHERE v > 0");
    assert!(
        plan.root()
            .full_sql
            .contains("'__pgs_occ_0__ __pgs_src_0__ $1::' AS s FROM public.a"),
        "{}",
        plan.root().full_sql
    );
    assert!(delta(plan.root()).contains("'__pgs_occ_0__ __pgs_src_0__ $1::' AS s FROM (SELECT"));
}

#[test]
fn refusals_name_the_construct_and_where() {
    assert_eq!(
        refused("WITH t AS (SELECT id, rank() OVER (ORDER BY v) AS r FROM a) SELECT * FROM t"),
        "window function rank() (in CTE, view or subquery \"t\")"
    );
    assert!(refused("SELECT * FROM p").contains("partitioned table"));
    assert!(refused("SELECT id FROM a LIMIT 1").contains("LIMIT / OFFSET / FETCH without ORDER BY"));
    assert!(refused("SELECT id FROM a INTERSECT SELECT k FROM b").contains("INTERSECT"));
}

#[test]
fn views_and_outer_joins_plan() {
    let plan = planned("SELECT av.id, b.w FROM av LEFT JOIN b ON b.k = av.value");
    assert_eq!(plan.stages.len(), 1);
    // Inner block and the anti-join block with the NULL-padded b.
    assert!(
        delta(plan.root()).contains("WHERE false"),
        "{}",
        delta(plan.root())
    );
}

#[test]
fn a_query_without_a_plan_keeps_the_key_of_its_skeleton() {
    let catalog = catalog();
    let rolled = identity_of(
        "SELECT customer_id, sum(amount) AS total, rank() OVER (ORDER BY customer_id) AS r \
         FROM orders WHERE amount > (SELECT 1 FROM c LIMIT 1) GROUP BY customer_id",
        &catalog,
    );
    assert_eq!(rolled.identity, Identity::Key(vec!["customer_id".into()]));
    assert!(
        rolled.reason.contains("window function rank()"),
        "{}",
        rolled.reason
    );
    let rows = identity_of("SELECT id, v FROM a LIMIT 3", &catalog);
    assert_eq!(rows.identity, Identity::Key(vec!["id".into()]));
    let multiset = identity_of("SELECT v FROM a LIMIT 3", &catalog);
    assert_eq!(multiset.identity, Identity::Multiset);
    let grouping_sets = identity_of(
        "SELECT k, count(*) AS n FROM a GROUP BY ROLLUP (k)",
        &catalog,
    );
    assert_eq!(grouping_sets.identity, Identity::Multiset);
}

#[test]
fn relative_date_literals_are_refused_where_they_stand() {
    let catalog = catalog();
    for query in [
        "SELECT id FROM orders WHERE placed_at > 'today'::date",
        "SELECT id FROM orders WHERE placed_at > DATE 'yesterday'",
        "WITH recent AS (SELECT id FROM orders WHERE placed_at > ' Now ') SELECT id FROM recent",
    ] {
        let refused = plan(query, &catalog, &request(None)).unwrap_err();
        assert!(
            refused.construct.contains("read as the clock"),
            "{query}: {refused}"
        );
    }
    let fixed = "SELECT id FROM orders WHERE placed_at > '2026-01-01'::date";
    assert!(plan(fixed, &catalog, &request(None)).is_ok());
}

#[test]
fn an_in_operand_is_qualified_so_a_same_named_inner_column_cannot_capture_it() {
    // orders has an `id` too: unqualified inside the subquery it would be orders.id.
    let plan = planned("SELECT id, name FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE amount > 0)");
    let sql = delta(plan.root());
    assert!(sql.contains("(\"customers\".id)"), "{sql}");
    assert!(!sql.contains("= (id)"), "{sql}");
}

#[test]
fn group_by_positions_and_output_names_survive_a_rebuilt_select_list() {
    for query in [
        "SELECT k, sum(v) AS s, min(v) AS lo FROM a GROUP BY 1",
        "SELECT k * 2 AS kk, sum(v) AS s, min(v) AS lo FROM a GROUP BY kk",
        "SELECT sum(v) AS s, min(v) AS lo, k FROM a GROUP BY 3",
        // Parenthesized, as PostgreSQL reads them too: a position and an output name.
        "SELECT k, sum(v) AS s, min(v) AS lo FROM a GROUP BY (1)",
        "SELECT k * 2 AS kk, sum(v) AS s, min(v) AS lo FROM a GROUP BY (kk)",
    ] {
        let plan = planned(query);
        let StageRefresh::Algebraic(algebraic) = &plan.root().refresh else {
            panic!("{query}: not algebraic");
        };
        for sql in [
            &algebraic.state_sql,
            &algebraic.rescan_sql,
            &plan.root().full_sql,
        ] {
            assert!(
                !sql.contains("GROUP BY 1")
                    && !sql.contains("GROUP BY (1)")
                    && !sql.contains("GROUP BY 3"),
                "{query}: {sql}"
            );
            assert!(
                !sql.contains("GROUP BY kk") && !sql.contains("GROUP BY (kk)"),
                "{query}: {sql}"
            );
        }
    }
}

#[test]
fn limit_zero_is_an_empty_relation_not_a_top_k() {
    // What `dbt run --empty` builds views from.
    for query in [
        "SELECT id, v FROM (SELECT * FROM a WHERE false LIMIT 0) _dbt_limit_subq_a",
        "SELECT k, count(*) AS n FROM (SELECT * FROM a LIMIT 0) s GROUP BY k",
        "SELECT k FROM (SELECT k FROM a UNION ALL SELECT k FROM b FETCH FIRST 0 ROWS ONLY) u",
    ] {
        let plan = planned(query);
        assert!(
            plan.stages.iter().all(|s| s.kind != StageKind::TopK),
            "{query}"
        );
        assert!(
            plan.stages.iter().any(|s| s.full_sql.contains("false")),
            "{query}"
        );
    }
    assert!(refused("SELECT id FROM (SELECT * FROM a LIMIT 1) s")
        .contains("LIMIT / OFFSET / FETCH without ORDER BY"));
}

#[test]
fn dependent_filters_ask_for_indexes_on_their_change_rows() {
    let plan = planned(
        "SELECT a.id FROM a WHERE EXISTS (SELECT 1 FROM a a2 WHERE a2.k = a.k AND a2.id <> a.id) \
         AND NOT EXISTS (SELECT 1 FROM b WHERE b.k = a.k)",
    );
    assert_eq!(
        plan.delta_indexes,
        vec![(1, "k".to_string()), (2, "k".to_string())]
    );
}

#[test]
fn a_views_parenthesized_outer_join_is_planned_like_the_join_itself() {
    let plan = planned("SELECT id, w FROM (a LEFT JOIN b ON ((b.k = a.k))) JOIN c ON c.x = a.v");
    assert_eq!(plan.stages.len(), 1);
    assert!(delta(plan.root()).contains("NOT EXISTS") || delta(plan.root()).contains("count(*)"));
}

#[test]
fn a_full_join_of_groups_is_a_multiset() {
    let plan = planned(
        "SELECT p.k AS pk, q.k AS qk FROM (SELECT k FROM a GROUP BY k) p \
         FULL JOIN (SELECT k FROM b GROUP BY k) q ON p.k = q.k",
    );
    assert_eq!(plan.root_identity.identity, Identity::Multiset);
}

#[test]
fn a_group_by_name_that_is_an_input_column_and_an_output_name_groups_by_the_input_column() {
    // PostgreSQL groups `GROUP BY name` by customers.name here, not by lower(name) (two names
    // may lower alike): the groups are a stage keyed by the input column, the output a
    // projection over it that may repeat rows. (The state used to be keyed by lower(name): its
    // unique index failed on the first two names that lower alike.)
    let plan = planned("SELECT lower(name) AS name, count(*) AS n FROM customers GROUP BY name");
    let StageRefresh::Algebraic(algebraic) = &plan.stages[0].refresh else {
        panic!("the groups are not kept by state");
    };
    assert!(
        !algebraic.state_sql.contains("lower(name) AS __pgs_k0")
            && algebraic.state_sql.contains("GROUP BY name"),
        "{}",
        algebraic.state_sql
    );
    assert_eq!(plan.root_identity.identity, Identity::Multiset);
}

#[test]
fn rows_whose_exists_filters_flipped_are_driven_from_the_changed_keys() {
    // TPC-H Q21's shape: EXISTS and NOT EXISTS over one relation, correlated alike. The term for
    // "a filter's outcome flipped" gets `(o.customer_id) IN (SELECT … FROM <changes>)` as a
    // conjunct of its own, once for both, so PostgreSQL can join it from the changed keys.
    let plan = planned(
        "SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM customers c1 WHERE c1.id = o.customer_id) \
         AND NOT EXISTS (SELECT 1 FROM customers c2 WHERE c2.id = o.customer_id AND c2.name = 'x')",
    );
    let sql = delta(plan.root());
    let driver = "((o.customer_id) IN (SELECT \"__pgs_drv\".\"id\" FROM ";
    assert!(sql.contains(driver), "{sql}");
    // Two terms (+1 and -1) carry it once each.
    assert_eq!(sql.matches(driver).count(), 2, "{sql}");
    // Bare names resolve as PostgreSQL resolves them: `id` is a column of customers (its change
    // rows show it), `customer_id` is not, so it is the outer row's.
    let plan = planned(
        "SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM customers c1 WHERE id = customer_id)",
    );
    let sql = delta(plan.root());
    assert!(
        sql.contains("((customer_id) IN (SELECT \"__pgs_drv\".\"id\" FROM "),
        "{sql}"
    );
    // `region` is no column of payments: PostgreSQL reads it from the outer row, so
    // `region = c.region` is no correlation with payments and the driver has order_id alone.
    let plan = planned(
        "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND region = c.region)",
    );
    let sql = delta(plan.root());
    assert!(
        sql.contains("((o.id) IN (SELECT \"__pgs_drv\".\"order_id\" FROM "),
        "{sql}"
    );
    // An alias naming fewer columns than the relation has renames the first ones only:
    // `order_id` is still payments' column, so the subquery is not correlated at all.
    let plan = planned(
        "SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM payments AS p(pid) WHERE pid = order_id)",
    );
    assert!(!delta(plan.root()).contains("__pgs_drv"));
    // A whole-row reference (the relation's alias, bare) is no column.
    let plan = planned(
        "SELECT o.id FROM orders o WHERE (o.id, o.customer_id) IN (SELECT c FROM customers c)",
    );
    assert!(!delta(plan.root()).contains("\"__pgs_drv\".\"c\""));
}

#[test]
fn rows_padded_by_two_changed_left_joins_are_driven_from_each_change_set() {
    // dbt's fct_orders shape: a table LEFT JOIN two aggregates on its key. The rows that lose
    // or gain their NULL padding when either aggregate changes are those whose key is in
    // either change set: one part driven by each change set's keys (the second without the
    // rows of the first), which PostgreSQL runs as index lookups; an OR of the two INs would
    // read every order, one IN over a UNION ALL would compare by the union's type.
    let plan = planned(
        "SELECT o.id, l.n, p.s FROM orders o \
         LEFT JOIN (SELECT order_id, count(*) AS n FROM payments GROUP BY order_id) l ON l.order_id = o.id \
         LEFT JOIN (SELECT order_id, sum(amount) AS s FROM payments WHERE method = 'card' GROUP BY order_id) p \
         ON p.order_id = o.id",
    );
    let sql = delta(plan.root());
    let driver = "((o.id) IN (SELECT \"__pgs_drv\".\"order_id\" FROM (SELECT __pgs_s.";
    let of = |table: &str| format!("{driver}\"order_id\", {}", table);
    assert!(!sql.contains("UNION ALL SELECT \"__pgs_drv\""), "{sql}");
    // Each change set drives parts of its own (+1 and -1, for each padded part).
    let first = sql
        .matches(&of("__pgs_s.\"n\" FROM pg_temp.\"__pgs_chg_9_0\""))
        .count();
    let second = sql
        .matches(&of("__pgs_s.\"s\" FROM pg_temp.\"__pgs_chg_9_1\""))
        .count();
    assert!(first >= 2 && second >= 2, "{first} {second}\n{sql}");
}

#[test]
fn untyped_nulls_of_union_branches_are_cast_to_their_column_type() {
    // Apart from the other branches (a branch's change, a grouped branch's stage) `NULL` would
    // be text, which a UNION with a numeric column refuses: each is cast to the type the
    // database gives the union's column (bigint for all here). Quoted strings stay as written.
    let query = "SELECT customer_id AS k, sum(amount) AS s, NULL, 'orders' AS src FROM orders GROUP BY 1 \
                 UNION ALL SELECT order_id, NULL, count(*), 'payments' FROM payments GROUP BY order_id \
                 UNION ALL SELECT id, amount, NULL, NULL FROM orders";
    let plan = plan(query, &super::tests_distinct::described(), &request(None)).expect("planned");
    let (first, second) = (&plan.stages[0].full_sql, &plan.stages[1].full_sql);
    assert!(
        first.contains(r#"CAST(NULL AS BIGINT) AS "?column?", 'orders' AS src"#),
        "{first}"
    );
    assert!(first.contains("GROUP BY customer_id"), "{first}");
    assert!(
        second.contains("order_id, CAST(NULL AS BIGINT), count(*), 'payments'"),
        "{second}"
    );
    let root = &plan.root().full_sql;
    assert!(
        root.contains("amount, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT) FROM"),
        "{root}"
    );
    assert_eq!(plan.root().columns, vec!["k", "s", "?column?", "src"]);
    // Not described (no database): left as written.
    assert!(!planned(query).root().full_sql.contains("CAST(NULL"));
}
