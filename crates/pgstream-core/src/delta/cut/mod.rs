//! Cutting an expanded query into stages: every aggregate, DISTINCT, top-k, UNION or subquery
//! that a linear block cannot hold becomes a stage of its own (materialized, maintained by the
//! same refresh), scalar subqueries are decorrelated into joins with aggregate stages, and
//! EXISTS / IN subqueries over more than one relation become filters over a stage
//! (delta planning).

use super::ast::{
    and_all, as_marker, column_ref, derived, expr_with, folded, generated_expr, generated_query,
    generated_select, ident, item, limits_to_no_rows, marker_factor, query_of, replace_occurrences,
    restrict, select_from, table_alias, wildcard,
};
use super::checks::location_of;
use super::expand::{has_sublinks, Expanded};
use super::ir::Input;
use super::ir::{Catalog, Unsupported, TOP_LEVEL};
use super::scope::{self, ScopeItem};
use sqlparser::ast::{
    BinaryOperator, Distinct, Expr, GroupByExpr, InTarget, Join, JoinConstraint, JoinOperator,
    LimitClause, OrderByExpr, OrderByKind, Query, Select, SelectItem, SetExpr, SetOperator,
    SetQuantifier, TableFactor, TableWithJoins, UnaryOperator, Value, Visit, VisitMut, Visitor,
    VisitorMut,
};
use std::ops::ControlFlow;

mod distinct_counts;
mod rewrite;
mod sets;
mod shapes;
mod subqueries;

use rewrite::*;
pub use shapes::*;

/// What a stage is.
#[derive(Debug, Clone, PartialEq)]
pub enum DraftKind {
    /// SELECTs of joins and filters (UNION ALL of them, VALUES): signed rows.
    Linear,
    /// One SELECT with GROUP BY and/or aggregates over a linear FROM.
    Grouped,
    /// SELECT DISTINCT over a linear FROM, or UNION of linear branches.
    Distinct,
    /// `ORDER BY ... LIMIT` over the output of stage `input` (its only occurrence).
    TopK {
        order_by: Vec<OrderByExpr>,
        limit: Box<Expr>,
        offset: Option<Box<Expr>>,
    },
}

/// A stage before rendering: its query (occurrence markers index `inputs`).
#[derive(Debug, Clone)]
pub struct Draft {
    pub query: Query,
    pub inputs: Vec<Input>,
    pub kind: DraftKind,
    pub location: String,
    /// The output column names (all of them visible: hidden key columns are added later).
    pub columns: Vec<String>,
}

/// Every stage of a query, inner ones first, the root last.
#[derive(Debug, Clone)]
pub struct Drafts {
    pub stages: Vec<Draft>,
}

struct Cutter<'a> {
    catalog: &'a dyn Catalog,
    /// The inputs global markers stand for: the expanded query's tables, then the stages cut.
    inputs: Vec<Input>,
    stages: Vec<Draft>,
    /// Numbers the decorrelated subqueries (`__pgs_sq<n>`) and hoisted filters.
    counter: usize,
}

/// Cuts `expanded` into stages.
pub fn cut(expanded: Expanded, catalog: &dyn Catalog) -> Result<Drafts, Unsupported> {
    let mut cutter = Cutter {
        catalog,
        inputs: expanded.tables.into_iter().map(Input::Table).collect(),
        stages: Vec::new(),
        counter: 0,
    };
    let root = cutter.stage_of(expanded.query, TOP_LEVEL)?;
    // The stream table shows exactly the query's columns: a grouped query whose keys are not all
    // among them is kept as a stage (with its keys), the query a projection over it.
    let last = cutter.stages.last().expect("a root stage");
    if last.kind == DraftKind::Grouped && !cutter.keys_visible(last) {
        cutter.stages.last_mut().expect("a root stage").location = "the query (its groups)".into();
        let (query, kind) = cutter.over_stage(root, false, TOP_LEVEL);
        cutter.push(query, kind, TOP_LEVEL);
    }
    Ok(Drafts {
        stages: cutter.stages,
    })
}

impl Cutter<'_> {
    /// The columns of global input `index`.
    fn input_columns(&self, index: usize) -> Vec<String> {
        match &self.inputs[index] {
            Input::Table(table) => table.columns.clone(),
            Input::Stage(stage) => self.stages[*stage].columns.clone(),
        }
    }

    fn names_of(&self, query: &Query) -> Vec<String> {
        scope::output_names(query, &|i| self.input_columns(i))
    }

    fn scope_of(&self, select: &Select) -> Vec<ScopeItem> {
        scope::items(select, &|i| self.input_columns(i))
    }

    /// Whether every GROUP BY key of a grouped draft is one of its output columns.
    fn keys_visible(&self, draft: &Draft) -> bool {
        let SetExpr::Select(select) = draft.query.body.as_ref() else {
            return true;
        };
        let Ok(keys) = group_keys(select, &draft.location) else {
            return true;
        };
        let columns = |i: usize| match &draft.inputs[i] {
            Input::Table(t) => t.columns.clone(),
            Input::Stage(s) => self.stages[*s].columns.clone(),
        };
        let scope = scope::items(select, &columns);
        let column = |e: &Expr| match e {
            Expr::Identifier(i) => Some(folded(i)),
            Expr::CompoundIdentifier(parts) => parts.last().map(folded),
            _ => None,
        };
        keys.iter().all(|key| {
            select.projection.iter().any(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    e == key
                        || (column(e).is_some()
                            && column(e) == column(key)
                            && scope::resolve(e, &scope).is_some()
                            && scope::resolve(e, &scope) == scope::resolve(key, &scope))
                }
                _ => false,
            })
        })
    }

    /// Builds the stage of `query` and returns the global input that stands for it.
    fn stage_of(&mut self, query: Query, location: &str) -> Result<usize, Unsupported> {
        let (query, kind) = self.build(query, location)?;
        Ok(self.push(query, kind, location))
    }

    /// Adds a stage: its global markers become local occurrences.
    fn push(&mut self, mut query: Query, kind: DraftKind, location: &str) -> usize {
        let columns = self.names_of(&query);
        // Every occurrence of an input is its own local occurrence (a self-join reads a table
        // twice): number them in visiting order.
        let mut next = 0usize;
        let mut local_inputs = Vec::new();
        replace_occurrences(&mut query, &mut |global, alias| {
            local_inputs.push(self.inputs[global].clone());
            let local = next;
            next += 1;
            marker_factor(local, alias)
        });
        let stage = self.stages.len();
        self.stages.push(Draft {
            query,
            inputs: local_inputs,
            kind,
            location: location.to_string(),
            columns,
        });
        self.inputs.push(Input::Stage(stage));
        self.inputs.len() - 1
    }

    /// A stage's query and kind (inner parts cut into stages of their own).
    fn build(
        &mut self,
        mut query: Query,
        location: &str,
    ) -> Result<(Query, DraftKind), Unsupported> {
        // `SELECT * FROM (subquery) alias` (dbt's `select * from final`) is that subquery.
        while let Some(inner) = star_of_one_subquery(&query) {
            query = inner;
        }
        if query.order_by.is_none() && limits_to_no_rows(&query) {
            query = without_rows(query);
        }
        if query.limit_clause.is_some() || query.fetch.is_some() {
            return self.top_k(query, location);
        }
        // An ORDER BY without LIMIT orders nothing in a table.
        query.order_by = None;
        if let SetExpr::Query(inner) = *query.body {
            return self.build(*inner, location);
        }
        let kind = match query.body.as_mut() {
            SetExpr::Select(select) => {
                if is_grouped(select, self.catalog) {
                    self.normalize_group_by(select);
                    if matches!(select.distinct, Some(Distinct::Distinct)) {
                        // DISTINCT over groups: the groups a stage, DISTINCT over it.
                        select.distinct = None;
                        let grouped = self.stage_of(query, location)?;
                        return Ok(self.over_stage(grouped, true, location));
                    }
                    if has_sublinks(&select.having) || has_sublinks(&select.projection) {
                        return self.split_grouped(*select.clone(), location);
                    }
                    if let Some(split) = self.split_distinct_counts(select, location)? {
                        return Ok(split);
                    }
                    self.linearize(select, location)?;
                    DraftKind::Grouped
                } else if matches!(select.distinct, Some(Distinct::Distinct)) {
                    self.linearize(select, location)?;
                    DraftKind::Distinct
                } else {
                    self.linearize(select, location)?;
                    DraftKind::Linear
                }
            }
            SetExpr::SetOperation { .. } => {
                let body = std::mem::replace(query.body.as_mut(), SetExpr::Values(empty_values()));
                let body = self.typed_nulls(body);
                let (body, distinct) = self.set_operation(body, location)?;
                *query.body = body;
                if distinct {
                    DraftKind::Distinct
                } else {
                    DraftKind::Linear
                }
            }
            SetExpr::Values(_) => DraftKind::Linear,
            other => return Err(Unsupported::new(format!("query body {other}")).at(location)),
        };
        Ok((query, kind))
    }

    /// GROUP BY entries as the expressions they stand for: positions (`GROUP BY 1`) and output
    /// names that are no input column (`GROUP BY month`) become the select-list expression, so
    /// the stage's SQL stays right when its select list is rebuilt (state, rescans).
    fn normalize_group_by(&self, select: &mut Select) {
        let scope = self.scope_of(select);
        let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
            return;
        };
        let projected = |item: &SelectItem| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                Some(e.clone())
            }
            _ => None,
        };
        let normalized: Vec<Expr> = exprs
            .iter()
            // PostgreSQL's grammar drops parentheses: `GROUP BY (1)` and `GROUP BY (month)` are
            // a position and a name.
            .map(super::ast::unparenthesized)
            .map(|key| match key {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => n
                        .parse::<usize>()
                        .ok()
                        .and_then(|p| select.projection.get(p.wrapping_sub(1)))
                        .and_then(projected)
                        .unwrap_or_else(|| key.clone()),
                    _ => key.clone(),
                },
                Expr::Identifier(ident) if scope::resolve(key, &scope).is_none() => select
                    .projection
                    .iter()
                    .find_map(|item| match item {
                        SelectItem::ExprWithAlias { expr, alias }
                            if folded(alias) == folded(ident) =>
                        {
                            Some(expr.clone())
                        }
                        _ => None,
                    })
                    .unwrap_or_else(|| key.clone()),
                _ => key.clone(),
            })
            .collect();
        if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
            *exprs = normalized;
        }
    }

    /// `SELECT * FROM <stage>` (DISTINCT when asked) as the query of a new stage.
    fn over_stage(&mut self, stage: usize, distinct: bool, _location: &str) -> (Query, DraftKind) {
        let mut select = generated_select("SELECT * FROM __pgs_from__");
        if distinct {
            select.distinct = Some(Distinct::Distinct);
        }
        select.from[0].relation = marker_factor(stage, Some(table_alias("__pgs_in")));
        let kind = if distinct {
            DraftKind::Distinct
        } else {
            DraftKind::Linear
        };
        (query_of(select), kind)
    }
}

/// A query limited to no rows (`LIMIT 0`, what `dbt run --empty` puts into the views it
/// builds) as one without a limit that has no rows, ever (`WHERE false`).
fn without_rows(mut query: Query) -> Query {
    query.limit_clause = None;
    query.fetch = None;
    match *query.body {
        SetExpr::Select(mut select) => {
            restrict(&mut select, generated_expr("false"));
            Query {
                body: Box::new(SetExpr::Select(select)),
                ..query
            }
        }
        body => query_of(select_from(
            vec![wildcard()],
            derived(query_of_body(body), Some(table_alias("__pgs_none"))),
            Some(generated_expr("false")),
        )),
    }
}
