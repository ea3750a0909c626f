//! How a stream table identifies its rows, decided before it exists: the plan's identity, or
//! for a query no plan can be made for, the identity of its row-shape skeleton (delta planning).

use super::ast::{parse_query, subquery_of};
use super::ir::{Catalog, PlanRequest, Unsupported};
use super::ir::{Identity, IdentityChoice, Names};
use super::pipeline::plan;
use sqlparser::ast::{Expr, Query, Value, VisitMut, VisitorMut};
use std::collections::HashSet;
use std::ops::ControlFlow;

/// The identity of the stream table of `query` (any query; one DIFFERENTIAL cannot maintain
/// gets its skeleton's key when the skeleton has one, else it is a multiset).
pub fn identity_of(query: &str, catalog: &dyn Catalog) -> IdentityChoice {
    let unsupported = match planned_identity(query, catalog) {
        Ok(choice) => return choice,
        Err(unsupported) => unsupported,
    };
    if let Some(Ok(choice)) = skeleton(query).map(|s| planned_identity(&s, catalog)) {
        if let Identity::Key(key) = &choice.identity {
            if keyable_in(query, key, catalog) {
                return IdentityChoice {
                    identity: choice.identity.clone(),
                    reason: format!("{} (its query itself uses {unsupported})", choice.reason),
                };
            }
        }
    }
    IdentityChoice {
        identity: Identity::Multiset,
        reason: format!("a multiset (its query uses {unsupported})"),
    }
}

fn planned_identity(query: &str, catalog: &dyn Catalog) -> Result<IdentityChoice, Unsupported> {
    let request = PlanRequest {
        names: Names { id: 0 },
        changed: Some(&HashSet::new()),
        render_terms: false,
    };
    plan(query, catalog, &request).map(|plan| plan.root_identity)
}

/// Whether every `key` column of `query`'s real output has a type a key index can take.
fn keyable_in(query: &str, key: &[String], catalog: &dyn Catalog) -> bool {
    match catalog.describe(query) {
        Some(columns) => key.iter().all(|k| {
            columns
                .iter()
                .any(|(name, type_name)| name == k && catalog.keyable(type_name))
        }),
        None => true,
    }
}

/// `query` with what only filters rows or computes a value per row taken out: subqueries and
/// window functions become NULL, LIMIT / OFFSET / FETCH and FOR UPDATE go. A key of the
/// skeleton's rows is a key of the query's (it has the same rows, or fewer).
pub fn skeleton(query: &str) -> Option<String> {
    let mut parsed: Query = parse_query(query).ok()?;
    let _ = parsed.visit(&mut Skeleton);
    Some(parsed.to_string())
}

struct Skeleton;

impl VisitorMut for Skeleton {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        query.limit_clause = None;
        query.fetch = None;
        query.locks.clear();
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let window = matches!(expr, Expr::Function(f) if f.over.is_some());
        let per_row_value = window || subquery_of(expr).is_some();
        if per_row_value {
            *expr = Expr::Value(Value::Null.into());
        }
        ControlFlow::Continue(())
    }
}
