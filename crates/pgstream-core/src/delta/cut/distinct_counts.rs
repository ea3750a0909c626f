//! COUNT(DISTINCT x) kept from counts: a grouped SELECT counting the distinct values of one x
//! beside COUNT / SUM / MIN / MAX becomes a stage grouped by its keys and x (one row per
//! distinct value, the other aggregates partial) and a grouped stage over it (the distinct
//! values counted, the partials added up), both maintained from their change (delta planning).

use super::super::ast::named_factor;
use super::*;
use crate::delta::algebraic::one_argument_call;
use sqlparser::ast::DuplicateTreatment;

/// One aggregate of a grouped SELECT as the split keeps it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Part {
    CountStar,
    Count(Expr),
    Sum(Expr),
    Min(Expr),
    Max(Expr),
    CountDistinct(Expr),
}

/// The part `call` is; None for any other aggregate, or one with FILTER, OVER, WITHIN GROUP,
/// ORDER BY or DISTINCT other than COUNT(DISTINCT x).
pub(super) fn part_of(call: &Expr) -> Option<Part> {
    let call = one_argument_call(call)?;
    let distinct = matches!(call.duplicate_treatment, Some(DuplicateTreatment::Distinct));
    let (name, argument) = (call.name.as_str(), call.argument);
    Some(match (name, argument, distinct) {
        ("count", None, false) => Part::CountStar,
        ("count", Some(x), true) => Part::CountDistinct(x),
        ("count", Some(y), false) => Part::Count(y),
        ("sum", Some(y), false) => Part::Sum(y),
        ("min", Some(y), false) => Part::Min(y),
        ("max", Some(y), false) => Part::Max(y),
        _ => return None,
    })
}

/// The alias of the stage of distinct values in the outer stage.
const DISTINCT_VALUES: &str = "__pgs_dist";

/// The parts of `calls` and their one distinct argument, when every call is a [`Part`], at
/// least one counts distinct values, and all of those count the same expression.
pub(super) fn split_parts(calls: &[Expr]) -> Option<(Vec<Part>, Expr)> {
    let parts: Vec<Part> = calls.iter().map(part_of).collect::<Option<_>>()?;
    let mut distinct = parts.iter().filter_map(|p| match p {
        Part::CountDistinct(x) => Some(x),
        _ => None,
    });
    let first = distinct.next()?.clone();
    distinct
        .all(|x| x.to_string() == first.to_string())
        .then_some((parts, first))
}

/// The inner stage's partial aggregate of a part (None for the distinct count: the value itself
/// is the inner stage's key).
fn partial(part: &Part) -> Option<Expr> {
    let call =
        |name: &str, argument: &Expr| expr_with(&format!("{name}(__pgs_hole_0__)"), &[argument]);
    match part {
        Part::CountStar => Some(generated_expr("count(*)")),
        Part::Count(y) => Some(call("count", y)),
        Part::Sum(y) => Some(call("sum", y)),
        Part::Min(y) => Some(call("min", y)),
        Part::Max(y) => Some(call("max", y)),
        Part::CountDistinct(_) => None,
    }
}

/// What the outer stage computes for part `j` from the distinct values' partials; a SUM is cast
/// back to the type of the partial sums (`sum_type`: adding up bigint sums gives numeric; not
/// cast when the database did not name it).
fn combined(part: &Part, j: usize, sum_type: Option<&str>) -> Expr {
    let p = format!("{DISTINCT_VALUES}.__pgs_p{j}");
    generated_expr(&match part {
        Part::CountStar | Part::Count(_) => format!("CAST(COALESCE(sum({p}), 0) AS BIGINT)"),
        Part::Sum(_) => match sum_type {
            Some(t) => format!("CAST(sum({p}) AS {t})"),
            None => format!("sum({p})"),
        },
        Part::Min(_) => format!("min({p})"),
        Part::Max(_) => format!("max({p})"),
        Part::CountDistinct(_) => format!("count({DISTINCT_VALUES}.__pgs_dx)"),
    })
}

/// `expr` over the distinct values' stage: its group keys and aggregate calls replaced. None
/// when a column of the input is left (an expression PostgreSQL groups by that the split does
/// not recognize).
fn over_distinct_values(
    expr: &Expr,
    keys: &[Expr],
    calls: &[Expr],
    outer: &[Expr],
) -> Option<Expr> {
    let (out, left_over) = over_groups(expr, keys, calls, DISTINCT_VALUES, &|j| outer[j].clone());
    (!left_over).then_some(out)
}

impl Cutter<'_> {
    /// `select` (grouped, its GROUP BY normalized, no sublinks) as a grouped stage over a stage
    /// of its distinct values, when [`split_parts`] takes its aggregates; None otherwise (its
    /// touched groups are then recomputed from its input, as for any aggregate kept no other
    /// way).
    pub(super) fn split_distinct_counts(
        &mut self,
        select: &Select,
        location: &str,
    ) -> Result<Option<(Query, DraftKind)>, Unsupported> {
        if select.projection.iter().any(|it| {
            !matches!(
                it,
                SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
            )
        }) {
            return Ok(None);
        }
        let keys = group_keys(select, location)?;
        let mut calls = aggregate_calls(&select.projection, self.catalog);
        for call in aggregate_calls(&select.having, self.catalog) {
            if !calls.contains(&call) {
                calls.push(call);
            }
        }
        let Some((parts, distinct)) = split_parts(&calls) else {
            return Ok(None);
        };
        let names = self.names_of(&query_of(select.clone()));
        // The stage of distinct values: per group and value, the partial aggregates.
        let mut values = select.clone();
        values.having = None;
        values.projection =
            keys.iter()
                .enumerate()
                .map(|(i, k)| item(k.clone(), &format!("__pgs_g{i}")))
                .chain(std::iter::once(item(distinct.clone(), "__pgs_dx")))
                .chain(
                    parts.iter().enumerate().filter_map(|(j, part)| {
                        partial(part).map(|p| item(p, &format!("__pgs_p{j}")))
                    }),
                )
                .collect();
        values.group_by = GroupByExpr::Expressions(
            keys.iter()
                .cloned()
                .chain(std::iter::once(distinct))
                .collect(),
            vec![],
        );
        // The types as the database describes them: the counted value must make a key of the
        // stage of values (not a row constructor's `record`, not a type without hashing), and
        // adding up partial sums changes their type (bigint to numeric): cast back to it.
        let Some(types) = self.described(&values) else {
            return Ok(None);
        };
        let type_of = |name: &str| {
            types
                .iter()
                .find(|(column, _)| column == name)
                .map(|(_, t)| t.as_str())
        };
        match type_of("__pgs_dx") {
            Some(t) if !t.starts_with("record") && self.catalog.keyable(t) => {}
            _ => return Ok(None),
        }
        let outer_calls: Vec<Expr> = parts
            .iter()
            .enumerate()
            .map(|(j, part)| combined(part, j, type_of(&format!("__pgs_p{j}"))))
            .collect();
        let rewrite = |e: &Expr| over_distinct_values(e, &keys, &calls, &outer_calls);
        let mut projection = Vec::new();
        for (it, name) in select.projection.iter().zip(&names) {
            let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = it
            else {
                return Ok(None);
            };
            let Some(rewritten) = rewrite(e) else {
                return Ok(None);
            };
            projection.push(match it {
                SelectItem::ExprWithAlias { alias, .. } => SelectItem::ExprWithAlias {
                    expr: rewritten,
                    alias: alias.clone(),
                },
                _ => item(rewritten, name),
            });
        }
        let having = match &select.having {
            Some(h) => match rewrite(h) {
                Some(h) => Some(h),
                None => return Ok(None),
            },
            None => None,
        };
        let stage = self.stage_of(
            query_of(values),
            &format!("{location} (its distinct values)"),
        )?;
        let mut outer = generated_select("SELECT 1 FROM __pgs_from__");
        outer.from[0].relation = marker_factor(stage, Some(table_alias(DISTINCT_VALUES)));
        outer.projection = projection;
        outer.group_by = GroupByExpr::Expressions(
            (0..keys.len())
                .map(|i| column_ref(DISTINCT_VALUES, &format!("__pgs_g{i}")))
                .collect(),
            vec![],
        );
        outer.having = having;
        self.linearize(&mut outer, location)?;
        Ok(Some((query_of(outer), DraftKind::Grouped)))
    }

    /// The output columns (name, type) of `select`, as the database describes it with its
    /// tables in place of their markers; None when it reads a stage or the database cannot tell.
    fn described(&self, select: &Select) -> Option<Vec<(String, String)>> {
        let mut query = query_of(select.clone());
        let mut reads_stage = false;
        replace_occurrences(
            &mut query,
            &mut |global, alias| match &self.inputs[global] {
                Input::Table(table) => named_factor(&table.name, alias),
                Input::Stage(_) => {
                    reads_stage = true;
                    marker_factor(global, alias)
                }
            },
        );
        if reads_stage {
            return None;
        }
        self.catalog.describe(&query.to_string())
    }
}
