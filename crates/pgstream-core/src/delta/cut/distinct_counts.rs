//! COUNT(DISTINCT x) kept from counts: a grouped SELECT counting the distinct values of one or
//! more x beside COUNT / SUM / MIN / MAX becomes a stage grouped by its keys and x (one row per
//! distinct value, the other aggregates partial; with several x, one such stage per x, read as
//! one UNION ALL in which each x has its own column) and a grouped stage over it (the distinct
//! values counted, the partials added up), all maintained from their change (delta planning).

use super::super::ast::named_factor;
use super::sets::typed_literal;
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

/// The parts of `calls` and the distinct values they count (each expression once, in the order
/// of the calls), when every call is a [`Part`] and at least one counts distinct values.
pub(super) fn split_parts(calls: &[Expr]) -> Option<(Vec<Part>, Vec<Expr>)> {
    let parts: Vec<Part> = calls.iter().map(part_of).collect::<Option<_>>()?;
    let mut counted: Vec<Expr> = Vec::new();
    for part in &parts {
        if let Part::CountDistinct(x) = part {
            if !counted.iter().any(|c| c.to_string() == x.to_string()) {
                counted.push(x.clone());
            }
        }
    }
    (!counted.is_empty()).then_some((parts, counted))
}

/// The column of the stage of distinct values that holds counted value `slot` (of `slots`).
fn value_column(slot: usize, slots: usize) -> String {
    if slots == 1 {
        "__pgs_dx".to_string()
    } else {
        format!("__pgs_dx{slot}")
    }
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
/// cast when the database did not name it); a distinct count counts its value's column.
fn combined(part: &Part, j: usize, sum_type: Option<&str>, counted: &[Expr]) -> Expr {
    let p = format!("{DISTINCT_VALUES}.__pgs_p{j}");
    generated_expr(&match part {
        Part::CountStar | Part::Count(_) => format!("CAST(COALESCE(sum({p}), 0) AS BIGINT)"),
        Part::Sum(_) => match sum_type {
            Some(t) => format!("CAST(sum({p}) AS {t})"),
            None => format!("sum({p})"),
        },
        Part::Min(_) => format!("min({p})"),
        Part::Max(_) => format!("max({p})"),
        Part::CountDistinct(x) => {
            let slot = counted
                .iter()
                .position(|c| c.to_string() == x.to_string())
                .expect("every counted value has a column");
            format!(
                "count({DISTINCT_VALUES}.{})",
                value_column(slot, counted.len())
            )
        }
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

/// A grouped SELECT being split: its keys, its aggregates as parts, the values it counts.
struct Split<'a> {
    select: &'a Select,
    keys: Vec<Expr>,
    parts: Vec<Part>,
    counted: Vec<Expr>,
}

impl Split<'_> {
    /// The stage of the distinct values of counted value `slot`, alone: per group and value a
    /// row (the first value's rows carry the partial aggregates).
    fn own_values(&self, slot: usize) -> Select {
        let mut values = self.select.clone();
        values.having = None;
        values.projection = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| item(k.clone(), &format!("__pgs_g{i}")))
            .chain(std::iter::once(item(
                self.counted[slot].clone(),
                &value_column(slot, self.counted.len()),
            )))
            .chain(self.parts.iter().enumerate().filter_map(|(j, part)| {
                partial(part)
                    .filter(|_| slot == 0)
                    .map(|p| item(p, &format!("__pgs_p{j}")))
            }))
            .collect();
        values.group_by = GroupByExpr::Expressions(
            self.keys
                .iter()
                .cloned()
                .chain(std::iter::once(self.counted[slot].clone()))
                .collect(),
            vec![],
        );
        values
    }
}

/// Output columns (name, type) as the database described them.
struct Types(Vec<(String, String)>);

impl Types {
    fn of(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(column, _)| column == name)
            .map(|(_, t)| t.as_str())
    }
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
        let Some((parts, counted)) = split_parts(&calls) else {
            return Ok(None);
        };
        let split = Split {
            select,
            keys,
            parts,
            counted,
        };
        // The types as the database describes them: each counted value must make a key of its
        // stage (not a row constructor's `record`, not a type without hashing), and adding up
        // partial sums changes their type (bigint to numeric): cast back to it.
        let mut types: Vec<(String, String)> = Vec::new();
        for slot in 0..split.counted.len() {
            let Some(described) = self.described(&split.own_values(slot)) else {
                return Ok(None);
            };
            types.extend(described);
        }
        let types = Types(types);
        for slot in 0..split.counted.len() {
            match types.of(&value_column(slot, split.counted.len())) {
                Some(t) if !t.starts_with("record") && self.catalog.keyable(t) => {}
                _ => return Ok(None),
            }
        }
        let Some(values) = self.values_query(&split, &types) else {
            return Ok(None);
        };
        let Some((projection, having)) = self.over_values(&split, &calls, &types) else {
            return Ok(None);
        };
        let stage = self.stage_of(values, &format!("{location} (its distinct values)"))?;
        let mut outer = generated_select("SELECT 1 FROM __pgs_from__");
        outer.from[0].relation = marker_factor(stage, Some(table_alias(DISTINCT_VALUES)));
        outer.projection = projection;
        outer.group_by = GroupByExpr::Expressions(
            (0..split.keys.len())
                .map(|i| column_ref(DISTINCT_VALUES, &format!("__pgs_g{i}")))
                .collect(),
            vec![],
        );
        outer.having = having;
        self.linearize(&mut outer, location)?;
        Ok(Some((query_of(outer), DraftKind::Grouped)))
    }

    /// The query of the stage of distinct values: one value's own, or one UNION ALL of the
    /// values' stages, a column per counted value (NULL in the other values' rows, which no
    /// count counts), the partials in the first value's rows. None when a NULL of a column's
    /// type cannot be written.
    fn values_query(&self, split: &Split, types: &Types) -> Option<Query> {
        let slots = split.counted.len();
        if slots == 1 {
            return Some(query_of(split.own_values(0)));
        }
        let null_of = |column: &str| types.of(column).and_then(|t| self.typed_null(t));
        let mut branches = Vec::new();
        for slot in 0..slots {
            let mut branch = split.own_values(slot);
            let mut projection = branch.projection[..split.keys.len()].to_vec();
            for other in 0..slots {
                let column = value_column(other, slots);
                projection.push(if other == slot {
                    item(split.counted[slot].clone(), &column)
                } else {
                    item(null_of(&column)?, &column)
                });
            }
            for (j, part) in split.parts.iter().enumerate() {
                let column = format!("__pgs_p{j}");
                let Some(partial) = partial(part) else {
                    continue;
                };
                projection.push(if slot == 0 {
                    item(partial, &column)
                } else {
                    item(null_of(&column)?, &column)
                });
            }
            branch.projection = projection;
            branches.push(SetExpr::Select(Box::new(branch)));
        }
        let union = branches
            .into_iter()
            .reduce(|left, right| SetExpr::SetOperation {
                op: SetOperator::Union,
                set_quantifier: SetQuantifier::All,
                left: Box::new(left),
                right: Box::new(right),
            })?;
        Some(query_of_body(union))
    }

    /// The outer stage's select list and HAVING: the original ones over the stage of distinct
    /// values (names kept). None when an expression is left that the split does not recognize.
    fn over_values(
        &self,
        split: &Split,
        calls: &[Expr],
        types: &Types,
    ) -> Option<(Vec<SelectItem>, Option<Expr>)> {
        let outer_calls: Vec<Expr> = split
            .parts
            .iter()
            .enumerate()
            .map(|(j, part)| combined(part, j, types.of(&format!("__pgs_p{j}")), &split.counted))
            .collect();
        let rewrite = |e: &Expr| over_distinct_values(e, &split.keys, calls, &outer_calls);
        let names = self.names_of(&query_of(split.select.clone()));
        let mut projection = Vec::new();
        for (it, name) in split.select.projection.iter().zip(&names) {
            let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = it
            else {
                return None;
            };
            let rewritten = rewrite(e)?;
            projection.push(match it {
                SelectItem::ExprWithAlias { alias, .. } => SelectItem::ExprWithAlias {
                    expr: rewritten,
                    alias: alias.clone(),
                },
                _ => item(rewritten, name),
            });
        }
        let having = match &split.select.having {
            Some(h) => Some(rewrite(h)?),
            None => None,
        };
        Some((projection, having))
    }

    /// A NULL of type `type_name` as the database described it (of its base type when it is a
    /// domain: a NOT NULL domain refuses NULL); None when the name does not parse as a type.
    fn typed_null(&self, type_name: &str) -> Option<Expr> {
        let base = self.catalog.base_type(type_name);
        typed_literal(
            &generated_expr("NULL"),
            base.as_deref().unwrap_or(type_name),
        )
    }

    /// The output columns (name, type) of `select`, as the database describes it with its
    /// tables in place of their markers; None when it reads a stage or the database cannot tell.
    fn described(&self, select: &Select) -> Option<Vec<(String, String)>> {
        self.described_query(&query_of(select.clone()))
    }

    /// [`Self::described`] of a query.
    pub(super) fn described_query(&self, query: &Query) -> Option<Vec<(String, String)>> {
        let mut query = query.clone();
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
