//! Algebraic maintenance of a grouped stage whose aggregates are COUNT, SUM and AVG (of exact
//! numbers) and MIN / MAX: per group, counts and sums are kept in a state table and moved by the
//! signed change of the input; a MIN / MAX group is rescanned only when its extreme was deleted.
//! The stage's select list and HAVING may be any expression over its keys and those aggregates:
//! they are computed from the state of the touched groups (delta planning).

use super::ast::{folded, generated_expr};
use crate::sql_text::quote_ident;
use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, VisitMut, VisitorMut};
use std::ops::ControlFlow;

/// One aggregate the state keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

/// An aggregate call of the stage and its argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub call: Expr,
    pub kind: Kind,
    pub argument: Option<Expr>,
}

/// The aggregate an expression is, when the state can keep it.
pub fn algebraic_aggregate(expr: &Expr) -> Option<Aggregate> {
    let Expr::Function(f) = expr else { return None };
    if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
        return None;
    }
    let parts: Vec<String> = f
        .name
        .0
        .iter()
        .map(|p| p.as_ident().map(folded).unwrap_or_default())
        .collect();
    let name = match parts.as_slice() {
        [name] => name.as_str(),
        [schema, name] if schema == "pg_catalog" => name.as_str(),
        _ => return None,
    };
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() || list.args.len() != 1 {
        return None;
    }
    let argument = match &list.args[0] {
        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => None,
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
        _ => return None,
    };
    let kind = match (name, &argument) {
        ("count", None) => Kind::CountStar,
        ("count", Some(_)) => Kind::Count,
        ("sum", Some(_)) => Kind::Sum,
        ("avg", Some(_)) => Kind::Avg,
        ("min", Some(_)) => Kind::Min,
        ("max", Some(_)) => Kind::Max,
        _ => return None,
    };
    Some(Aggregate {
        call: expr.clone(),
        kind,
        argument,
    })
}

/// Whether a SUM / AVG result of this type is exact (adding and subtracting drifts nothing).
pub fn exact(type_name: &str) -> bool {
    let t = type_name.to_lowercase();
    t == "bigint" || t == "integer" || t == "smallint" || t.starts_with("numeric")
}

/// The state of an algebraic stage: its SQL pieces, all over these relations and columns —
/// input rows `__pgs_i` (`__pgs_w`, keys `__pgs_k<i>`, arguments `__pgs_a<j>`), per-group
/// deltas `__pgs_d`, the state table `__pgs_s` (keys `__pgs_k<i>`, `__pgs_n`, per aggregate
/// `__pgs_c<j>`, `__pgs_s<j>`, `__pgs_m<j>`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlgebraicPlan {
    pub keys: usize,
    pub aggregates: Vec<Aggregate>,
    /// The input's change as signed rows: `(__pgs_w, __pgs_k<i>..., __pgs_a<j>...)`.
    pub input_sql: String,
    /// Per touched group: `__pgs_k<i>`, `__pgs_dn` and per aggregate its deltas.
    pub delta_sql: String,
    /// Every group's state from the input now (FULL); `rescan_sql` the same for the groups in
    /// the rescan work table (`__pgs_k<i>...`).
    pub state_sql: String,
    pub rescan_sql: String,
    /// The state columns after the keys, in order, and what a delta row `__pgs_d` starts a new
    /// group's state with.
    pub state_columns: Vec<String>,
    pub new_state: Vec<String>,
    /// `column = ...` updates of a group's state `__pgs_s` by a delta row `__pgs_d`.
    pub state_updates: Vec<String>,
    /// Groups whose MIN / MAX lost its extreme, as a condition on `__pgs_d` and `__pgs_s`.
    pub rescan_condition: Option<String>,
    /// New groups (no state yet) to rescan, as a condition on `__pgs_d`: those that also lost
    /// rows in the same changes (the deleted row may have been the inserted extreme).
    pub new_group_rescan_condition: Option<String>,
    /// The stage's output columns from state `__pgs_s` (the select list, keys included).
    pub outputs: Vec<String>,
    /// HAVING over state `__pgs_s`.
    pub having: Option<String>,
    /// No GROUP BY: the one group always exists.
    pub scalar: bool,
}

/// The SQL of each kept aggregate over state `__pgs_s`, as it would be computed.
fn from_state(aggregate: &Aggregate, j: usize) -> String {
    match aggregate.kind {
        Kind::CountStar => "__pgs_s.__pgs_n".into(),
        Kind::Count => format!("__pgs_s.__pgs_c{j}"),
        Kind::Sum => format!("(CASE WHEN __pgs_s.__pgs_c{j} > 0 THEN __pgs_s.__pgs_s{j} END)"),
        Kind::Avg => format!(
            "(CASE WHEN __pgs_s.__pgs_c{j} > 0 THEN __pgs_s.__pgs_s{j}::pg_catalog.numeric / __pgs_s.__pgs_c{j} END)"
        ),
        Kind::Min | Kind::Max => {
            format!("(CASE WHEN __pgs_s.__pgs_c{j} > 0 THEN __pgs_s.__pgs_m{j} END)")
        }
    }
}

/// `expr` over state `__pgs_s`: aggregate calls from the state, group keys its key columns.
/// None when it refers to something else (a column not grouped, an aggregate not kept).
pub fn over_state(
    expr: &Expr,
    keys: &[Expr],
    aggregates: &[Aggregate],
    same_column: &dyn Fn(&Expr, &Expr) -> bool,
) -> Option<Expr> {
    struct Replace<'a> {
        keys: &'a [Expr],
        aggregates: &'a [Aggregate],
        same_column: &'a dyn Fn(&Expr, &Expr) -> bool,
        failed: bool,
    }
    impl VisitorMut for Replace<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Some(j) = self.aggregates.iter().position(|a| a.call == *expr) {
                *expr = generated_expr(&from_state(&self.aggregates[j], j));
            } else if let Some(i) = self
                .keys
                .iter()
                .position(|k| k == expr || (self.same_column)(k, expr))
            {
                *expr = generated_expr(&format!("__pgs_s.__pgs_k{i}"));
            } else if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                // A column that is not a key (state columns were put in above, and are not
                // visited again: pre-visit replaced them before their children).
                let name = expr.to_string();
                if !name.starts_with("__pgs_s.") {
                    self.failed = true;
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut out = expr.clone();
    let mut replace = Replace {
        keys,
        aggregates,
        same_column,
        failed: false,
    };
    let _ = out.visit(&mut replace);
    (!replace.failed).then_some(out)
}

/// What the planner knows of one grouped stage.
pub struct GroupedStage<'a> {
    pub keys: &'a [Expr],
    /// The select-list expressions, in output order.
    pub outputs: &'a [Expr],
    pub having: Option<&'a Expr>,
    /// The aggregate calls in the select list and HAVING.
    pub calls: &'a [Expr],
    /// The stage's input (its FROM and WHERE) read now, as `SELECT ... FROM ... WHERE ...`
    /// without a projection: `{projection}` stands where the select list goes, `{restriction}`
    /// where a condition ANDed to WHERE goes.
    pub same_column: &'a dyn Fn(&Expr, &Expr) -> bool,
    /// Result type of each aggregate call (None: not known, taken as exact).
    pub call_types: &'a [Option<String>],
}

/// The algebraic plan of a grouped stage, when its aggregates are all kept algebraically and
/// exact, and its outputs and HAVING are expressions over them and the keys. `input` renders
/// the input's signed change (`signed`) and its current rows (`now`) for a projection and an
/// optional restriction.
pub fn plan(
    stage: &GroupedStage,
    signed_input: &dyn Fn(&[String]) -> Option<String>,
    current_input: &dyn Fn(&[String], Option<&str>) -> String,
    rescan_table: &str,
) -> Option<AlgebraicPlan> {
    let mut aggregates = Vec::new();
    for (call, type_name) in stage.calls.iter().zip(stage.call_types) {
        let aggregate = algebraic_aggregate(call)?;
        if matches!(aggregate.kind, Kind::Sum | Kind::Avg) {
            if let Some(t) = type_name {
                if !exact(t) {
                    return None;
                }
            }
        }
        aggregates.push(aggregate);
    }
    let outputs: Vec<String> = stage
        .outputs
        .iter()
        .map(|e| over_state(e, stage.keys, &aggregates, stage.same_column).map(|e| e.to_string()))
        .collect::<Option<_>>()?;
    let having = match stage.having {
        Some(h) => Some(over_state(h, stage.keys, &aggregates, stage.same_column)?.to_string()),
        None => None,
    };
    // The input's columns: keys, then each aggregate's argument.
    let mut projection: Vec<String> = stage
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} AS __pgs_k{i}"))
        .collect();
    for (j, a) in aggregates.iter().enumerate() {
        if let Some(argument) = &a.argument {
            projection.push(format!("{argument} AS __pgs_a{j}"));
        }
    }
    let input_sql = signed_input(&projection)?;
    let keys_out: Vec<String> = (0..stage.keys.len())
        .map(|i| format!("__pgs_i.__pgs_k{i}"))
        .collect();
    let mut delta_columns = vec!["sum(__pgs_i.__pgs_w)::pg_catalog.int8 AS __pgs_dn".to_string()];
    let mut state_select = vec!["count(*)::pg_catalog.int8 AS __pgs_n".to_string()];
    let mut state_columns = vec!["__pgs_n".to_string()];
    let mut new_state = vec!["__pgs_d.__pgs_dn".to_string()];
    let mut state_updates = vec!["__pgs_n = __pgs_s.__pgs_n + __pgs_d.__pgs_dn".to_string()];
    let mut rescan = Vec::new();
    let mut new_group_rescan = Vec::new();
    for (j, a) in aggregates.iter().enumerate() {
        let Some(argument) = &a.argument else {
            continue;
        };
        let arg = format!("__pgs_i.__pgs_a{j}");
        delta_columns.push(format!(
            "COALESCE(sum(__pgs_i.__pgs_w) FILTER (WHERE {arg} IS NOT NULL), 0)::pg_catalog.int8 AS __pgs_dc{j}"
        ));
        state_select.push(format!("count({argument})::pg_catalog.int8 AS __pgs_c{j}"));
        state_columns.push(format!("__pgs_c{j}"));
        new_state.push(format!("__pgs_d.__pgs_dc{j}"));
        state_updates.push(format!(
            "__pgs_c{j} = __pgs_s.__pgs_c{j} + __pgs_d.__pgs_dc{j}"
        ));
        let live = format!("__pgs_s.__pgs_c{j} + __pgs_d.__pgs_dc{j} > 0");
        match a.kind {
            Kind::Sum | Kind::Avg => {
                delta_columns.push(format!("sum(__pgs_i.__pgs_w * {arg}) AS __pgs_ds{j}"));
                state_select.push(format!("sum({argument}) AS __pgs_s{j}"));
                state_columns.push(format!("__pgs_s{j}"));
                new_state.push(format!("__pgs_d.__pgs_ds{j}"));
                state_updates.push(format!(
                    "__pgs_s{j} = CASE WHEN {live} THEN COALESCE(__pgs_s.__pgs_s{j}, 0) + COALESCE(__pgs_d.__pgs_ds{j}, 0) END"
                ));
            }
            Kind::Min | Kind::Max => {
                let (f, op, extreme) = if a.kind == Kind::Min {
                    ("min", "<=", "LEAST")
                } else {
                    ("max", ">=", "GREATEST")
                };
                delta_columns.push(format!(
                    "{f}({arg}) FILTER (WHERE __pgs_i.__pgs_w > 0) AS __pgs_ins{j}"
                ));
                delta_columns.push(format!(
                    "{f}({arg}) FILTER (WHERE __pgs_i.__pgs_w < 0) AS __pgs_del{j}"
                ));
                state_select.push(format!("{f}({argument}) AS __pgs_m{j}"));
                state_columns.push(format!("__pgs_m{j}"));
                new_state.push(format!("__pgs_d.__pgs_ins{j}"));
                state_updates.push(format!(
                    "__pgs_m{j} = CASE WHEN {live} THEN {extreme}(__pgs_s.__pgs_m{j}, __pgs_d.__pgs_ins{j}) END"
                ));
                rescan.push(format!("__pgs_d.__pgs_del{j} {op} __pgs_s.__pgs_m{j}"));
                new_group_rescan.push(format!("__pgs_d.__pgs_del{j} IS NOT NULL"));
            }
            Kind::Count => {}
            Kind::CountStar => unreachable!("COUNT(*) has no argument"),
        }
    }
    // (Without keys an aggregate returns a row even over no input: none then.)
    let group_by = if keys_out.is_empty() {
        " HAVING count(*) > 0".to_string()
    } else {
        format!(" GROUP BY {}", keys_out.join(", "))
    };
    let delta_sql = format!(
        "SELECT {}{} FROM (\n{input_sql}\n) __pgs_i{group_by}",
        keys_out
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} AS __pgs_k{i}, "))
            .collect::<String>(),
        delta_columns.join(", "),
    );
    let mut state_projection: Vec<String> = stage
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} AS __pgs_k{i}"))
        .collect();
    state_projection.extend(state_select);
    let key_list: Vec<String> = stage.keys.iter().map(|k| k.to_string()).collect();
    let state_sql = current_input(&state_projection, None);
    let rescan_sql = if stage.keys.is_empty() {
        current_input(&state_projection, None)
    } else {
        // The groups to rescan, found in the input by plain equality (the input's indexes on
        // its key columns serve it: a few groups never cost a scan of the whole input), and,
        // only when a rescanned key has a NULL (a one-time test of the small rescan table), the
        // groups with NULL keys, compared with NULLs equal. The two sets of groups are disjoint.
        let equal: Vec<String> = key_list
            .iter()
            .enumerate()
            .map(|(i, k)| format!("__pgs_r.__pgs_k{i} = ({k})"))
            .collect();
        let same: Vec<String> = key_list
            .iter()
            .enumerate()
            .map(|(i, k)| format!("__pgs_r.__pgs_k{i} IS NOT DISTINCT FROM ({k})"))
            .collect();
        let rescanned_null: Vec<String> = (0..key_list.len())
            .map(|i| format!("__pgs_r.__pgs_k{i} IS NULL"))
            .collect();
        let input_null: Vec<String> = key_list.iter().map(|k| format!("({k}) IS NULL")).collect();
        format!(
            "{}\nUNION ALL\n{}",
            current_input(
                &state_projection,
                Some(&format!(
                    "EXISTS (SELECT 1 FROM {rescan_table} __pgs_r WHERE {})",
                    equal.join(" AND ")
                )),
            ),
            current_input(
                &state_projection,
                Some(&format!(
                    "EXISTS (SELECT 1 FROM {rescan_table} __pgs_r WHERE {}) AND ({}) \
                     AND EXISTS (SELECT 1 FROM {rescan_table} __pgs_r WHERE {})",
                    rescanned_null.join(" OR "),
                    input_null.join(" OR "),
                    same.join(" AND ")
                )),
            )
        )
    };
    Some(AlgebraicPlan {
        keys: stage.keys.len(),
        aggregates,
        input_sql,
        delta_sql,
        state_sql,
        rescan_sql,
        state_columns,
        new_state,
        state_updates,
        rescan_condition: (!rescan.is_empty()).then(|| format!("({})", rescan.join(" OR "))),
        new_group_rescan_condition: (!new_group_rescan.is_empty())
            .then(|| format!("({})", new_group_rescan.join(" OR "))),
        outputs,
        having,
        scalar: stage.keys.is_empty(),
    })
}

/// The state table's key columns, in order.
pub fn key_columns(plan: &AlgebraicPlan) -> Vec<String> {
    (0..plan.keys).map(|i| format!("__pgs_k{i}")).collect()
}

/// A quoted state column (they are all generated names).
pub fn column(name: &str) -> String {
    quote_ident(name)
}
