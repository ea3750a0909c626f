//! Unit tests of COUNT(DISTINCT x) kept from counts: the split into a stage of distinct values
//! and a grouped stage over it, and when it is not made.

use super::ir::{Catalog, Relation};
use super::tests::{catalog, planned, request, TestCatalog};
use super::*;
use sqlparser::ast::{Expr, SelectItem, SetExpr};

/// The test schema, with a database that describes every output column as bigint, but the
/// counted values (`__pgs_dx`, `__pgs_dx<n>`) as the type given.
pub(super) struct Describing(TestCatalog, &'static str);

pub(super) fn described() -> Describing {
    Describing(catalog(), "bigint")
}

fn split(query: &str) -> Plan {
    plan(query, &described(), &request(None)).unwrap_or_else(|e| panic!("{query}: {e}"))
}

impl Catalog for Describing {
    fn relation(&self, name: &[String]) -> Option<Relation> {
        self.0.relation(name)
    }
    fn is_aggregate(&self, name: &str) -> bool {
        self.0.is_aggregate(name)
    }
    fn describe(&self, query: &str) -> Option<Vec<(String, String)>> {
        // The first SELECT's items (a set operation's names), by alias or column name.
        let parsed = super::ast::parse_query(query).ok()?;
        let mut body = parsed.body.as_ref();
        let select = loop {
            match body {
                SetExpr::SetOperation { left, .. } => body = left,
                SetExpr::Query(inner) => body = &inner.body,
                SetExpr::Select(select) => break select,
                _ => return None,
            }
        };
        let names = select.projection.iter().map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => i.value.clone(),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                parts.last().map(|p| p.value.clone()).unwrap_or_default()
            }
            _ => "?column?".to_string(),
        });
        Some(
            names
                .map(|name| {
                    let t = if name.starts_with("__pgs_dx") {
                        self.1
                    } else {
                        "bigint"
                    };
                    (name, t.to_string())
                })
                .collect(),
        )
    }
    fn table_key(&self, relid: u32) -> Option<Vec<String>> {
        self.0.table_key(relid)
    }
    fn keyable(&self, type_name: &str) -> bool {
        type_name != "money" && self.0.keyable(type_name)
    }
}

fn aggregate_stage(stage: &StagePlan) -> bool {
    stage.kind == StageKind::Aggregate { algebraic: true }
}

#[test]
fn a_distinct_count_is_a_stage_of_distinct_values_and_a_count_over_it() {
    let plan = split(
        "SELECT order_id, count(DISTINCT method) AS methods, count(*) AS payments, max(amount) AS top \
         FROM payments GROUP BY order_id HAVING count(*) > 1",
    );
    assert_eq!(plan.stages.len(), 2, "{plan:#?}");
    // Both kept by state: per order and method the partials, per order their sum and count.
    assert!(
        aggregate_stage(&plan.stages[0]),
        "{:?}",
        plan.stages[0].kind
    );
    assert!(aggregate_stage(plan.root()), "{:?}", plan.root().kind);
    let values = &plan.stages[0].full_sql;
    assert!(
        values.contains("GROUP BY order_id, method"),
        "the values are grouped by the keys and the counted value: {values}"
    );
    let root = &plan.root().full_sql;
    assert!(
        root.contains("count(__pgs_dist.__pgs_dx) AS methods"),
        "{root}"
    );
    assert!(
        root.contains("CAST(COALESCE(sum(__pgs_dist.__pgs_p"),
        "{root}"
    );
    assert!(root.contains("max(__pgs_dist.__pgs_p"), "{root}");
    assert!(
        root.contains("HAVING CAST(COALESCE(sum(__pgs_dist.__pgs_p"),
        "{root}"
    );
    assert_eq!(
        plan.root().columns,
        vec!["order_id", "methods", "payments", "top"]
    );
}

#[test]
fn a_sum_beside_a_distinct_count_is_cast_back_to_its_type() {
    let query =
        "SELECT method, count(DISTINCT order_id), sum(amount) FROM payments GROUP BY method";
    let plan = split(query);
    let root = &plan.root().full_sql;
    assert!(
        root.contains("CAST(sum(__pgs_dist.__pgs_p1) AS BIGINT)"),
        "{root}"
    );
    // The output names are the ones PostgreSQL gives the original query.
    assert_eq!(plan.root().columns, vec!["method", "count", "sum"]);
    // Without the types (the database could not describe them): no split.
    let plain = planned(query);
    assert_eq!(plain.stages.len(), 1);
}

#[test]
fn distinct_counts_beside_other_aggregates_are_not_split() {
    for query in [
        "SELECT order_id, count(DISTINCT method), string_agg(method, ',') FROM payments GROUP BY order_id",
        "SELECT order_id, count(DISTINCT method) FILTER (WHERE amount > 0) FROM payments GROUP BY order_id",
        "SELECT order_id, count(method) FROM payments GROUP BY order_id",
    ] {
        let plan = split(query);
        assert_eq!(plan.stages.len(), 1, "{query}");
    }
}

#[test]
fn distinct_counts_of_two_values_are_one_union_of_their_values() {
    let plan = split(
        "SELECT order_id, count(DISTINCT method) AS methods, count(DISTINCT amount) AS amounts, \
         sum(amount) AS total, count(DISTINCT method) AS again FROM payments GROUP BY order_id",
    );
    // A stage of values per counted value, their UNION ALL, the counts over it.
    assert_eq!(plan.stages.len(), 4, "{plan:#?}");
    assert!(aggregate_stage(&plan.stages[0]));
    assert!(aggregate_stage(&plan.stages[1]));
    let union = &plan.stages[2].full_sql;
    assert!(union.contains("UNION ALL"), "{union}");
    // Each value its own column, NULL of its type in the other value's rows; the partial sum
    // only in the first value's rows.
    let (first, second) = (&plan.stages[0].full_sql, &plan.stages[1].full_sql);
    assert!(
        first.contains(r#"method AS "__pgs_dx0", CAST(NULL AS BIGINT) AS "__pgs_dx1", sum((amount)) AS "__pgs_p2""#),
        "{first}"
    );
    assert!(
        second.contains(r#"CAST(NULL AS BIGINT) AS "__pgs_dx0", amount AS "__pgs_dx1", CAST(NULL AS BIGINT) AS "__pgs_p2""#),
        "{second}"
    );
    let root = &plan.root().full_sql;
    assert!(aggregate_stage(plan.root()), "{:?}", plan.root().kind);
    for expected in [
        "count(__pgs_dist.__pgs_dx0) AS methods",
        "count(__pgs_dist.__pgs_dx1) AS amounts",
        "CAST(sum(__pgs_dist.__pgs_p2) AS BIGINT) AS total",
        "count(__pgs_dist.__pgs_dx0) AS again",
    ] {
        assert!(root.contains(expected), "{expected}: {root}");
    }
    assert_eq!(
        plan.root().columns,
        vec!["order_id", "methods", "amounts", "total", "again"]
    );
}

#[test]
fn a_type_name_that_does_not_parse_keeps_two_distinct_counts_unsplit() {
    let plan = plan(
        "SELECT order_id, count(DISTINCT method), count(DISTINCT amount) FROM payments GROUP BY order_id",
        &Describing(catalog(), "bigint(("),
        &request(None),
    )
    .expect("planned");
    assert_eq!(plan.stages.len(), 1);
}

#[test]
fn a_counted_value_that_cannot_be_a_key_is_not_split() {
    // A row constructor is a `record`, which no table column can be; a type without a hash
    // function cannot key the stage of values.
    for value_type in ["record", "money"] {
        let query =
            "SELECT order_id, count(DISTINCT (method, amount)) FROM payments GROUP BY order_id";
        let plan =
            plan(query, &Describing(catalog(), value_type), &request(None)).expect("planned");
        assert_eq!(plan.stages.len(), 1, "{value_type}");
    }
}

#[test]
fn a_distinct_count_without_group_by_counts_over_one_group() {
    let plan = split("SELECT count(DISTINCT customer_id) AS buyers, count(*) AS n FROM orders");
    assert_eq!(plan.stages.len(), 2);
    let root = &plan.root().full_sql;
    assert!(!root.contains("GROUP BY"), "{root}");
    assert!(aggregate_stage(plan.root()));
}
