//! Algebraic maintenance of a grouped stage whose aggregates are COUNT, SUM and AVG (of exact
//! numbers) and MIN / MAX: per group, counts and sums are kept in a state table and moved by the
//! signed change of the input; a MIN / MAX group is rescanned only when its extreme was deleted.
//! The stage's select list and HAVING may be any expression over its keys and those aggregates:
//! they are computed from the state of the touched groups (delta planning).

use super::ast::{folded, generated_expr};
use crate::sql_text::quote_ident;
use sqlparser::ast::{
    DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, VisitMut, VisitorMut,
};
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

/// A call of an aggregate with one argument (or `*`) and no FILTER, OVER, WITHIN GROUP or ORDER
/// BY: its name (folded; `pg_catalog.` dropped), DISTINCT or ALL as written, and its argument
/// (None for `*`).
pub struct OneArgumentCall {
    pub name: String,
    pub duplicate_treatment: Option<DuplicateTreatment>,
    pub argument: Option<Expr>,
}

/// `expr` as a [`OneArgumentCall`], when it is one.
pub fn one_argument_call(expr: &Expr) -> Option<OneArgumentCall> {
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
        [name] => name.clone(),
        [schema, name] if schema == "pg_catalog" => name.clone(),
        _ => return None,
    };
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    if !list.clauses.is_empty() || list.args.len() != 1 {
        return None;
    }
    let argument = match &list.args[0] {
        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => None,
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
        _ => return None,
    };
    Some(OneArgumentCall {
        name,
        duplicate_treatment: list.duplicate_treatment,
        argument,
    })
}

/// The aggregate an expression is, when the state can keep it.
pub fn algebraic_aggregate(expr: &Expr) -> Option<Aggregate> {
    let OneArgumentCall {
        name,
        duplicate_treatment: None,
        argument,
    } = one_argument_call(expr)?
    else {
        return None;
    };
    let name = name.as_str();
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
    let aggregates = kept_aggregates(stage)?;
    let outputs: Vec<String> = stage
        .outputs
        .iter()
        .map(|e| over_state(e, stage.keys, &aggregates, stage.same_column).map(|e| e.to_string()))
        .collect::<Option<_>>()?;
    let having = match stage.having {
        Some(h) => Some(over_state(h, stage.keys, &aggregates, stage.same_column)?.to_string()),
        None => None,
    };
    let input_sql = signed_input(&input_projection(stage.keys, &aggregates))?;
    let mut parts = vec![row_count_state()];
    parts.extend(
        aggregates
            .iter()
            .enumerate()
            .filter_map(|(j, a)| aggregate_state(j, a)),
    );
    let delta_sql = delta_sql(stage.keys.len(), &parts, &input_sql);
    let mut state_projection: Vec<String> = keys_as_columns(stage.keys);
    state_projection.extend(state_columns(&parts).map(|c| c.select.clone()));
    let state_sql = current_input(&state_projection, None);
    let rescan_sql = rescan_sql(stage.keys, &state_projection, current_input, rescan_table);
    let conditions = |condition: fn(&StatePart) -> Option<&String>| {
        let listed: Vec<&str> = parts
            .iter()
            .filter_map(condition)
            .map(String::as_str)
            .collect();
        (!listed.is_empty()).then(|| format!("({})", listed.join(" OR ")))
    };
    Some(AlgebraicPlan {
        keys: stage.keys.len(),
        input_sql,
        delta_sql,
        state_sql,
        rescan_sql,
        state_columns: state_columns(&parts).map(|c| c.name.clone()).collect(),
        new_state: state_columns(&parts).map(|c| c.new.clone()).collect(),
        state_updates: state_columns(&parts).map(|c| c.update.clone()).collect(),
        rescan_condition: conditions(|p| p.rescan.as_ref()),
        new_group_rescan_condition: conditions(|p| p.new_group_rescan.as_ref()),
        aggregates,
        outputs,
        having,
        scalar: stage.keys.is_empty(),
    })
}

/// The stage's aggregate calls as kept aggregates; None when one is not algebraic, or is a
/// SUM / AVG of a type that is not exact.
fn kept_aggregates(stage: &GroupedStage) -> Option<Vec<Aggregate>> {
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
    Some(aggregates)
}

/// The keys as columns `__pgs_k<i>`.
fn keys_as_columns(keys: &[Expr]) -> Vec<String> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| format!("{k} AS __pgs_k{i}"))
        .collect()
}

/// The input's columns: keys `__pgs_k<i>`, then each aggregate's argument `__pgs_a<j>`.
fn input_projection(keys: &[Expr], aggregates: &[Aggregate]) -> Vec<String> {
    let mut projection = keys_as_columns(keys);
    for (j, a) in aggregates.iter().enumerate() {
        if let Some(argument) = &a.argument {
            projection.push(format!("{argument} AS __pgs_a{j}"));
        }
    }
    projection
}

/// What the group's row count or one kept aggregate adds to the state: its columns of the
/// per-group delta `__pgs_d` (over input rows `__pgs_i`), its state columns, and which groups
/// it makes rescanned.
struct StatePart {
    deltas: Vec<String>,
    columns: Vec<StateColumn>,
    /// Groups whose extreme was deleted, on `__pgs_d` and `__pgs_s` (MIN / MAX).
    rescan: Option<String>,
    /// New groups that also lost rows, on `__pgs_d` (MIN / MAX).
    new_group_rescan: Option<String>,
    /// Columns computed over each group's signed input rows (a window partitioned by the
    /// keys, `__pgs_grp`) before the deltas read them (MIN / MAX: the deleted extreme).
    windows: Vec<String>,
}

/// One state column: its name, its value from the input now (`AS` it), a new group's value
/// from delta row `__pgs_d`, and its update of state `__pgs_s` by `__pgs_d`.
struct StateColumn {
    name: String,
    select: String,
    new: String,
    update: String,
}

/// Every state column of `parts`, in order.
fn state_columns(parts: &[StatePart]) -> impl Iterator<Item = &StateColumn> + Clone {
    parts.iter().flat_map(|p| &p.columns)
}

/// The group's row count `__pgs_n` (every group has it: COUNT(*) reads it).
fn row_count_state() -> StatePart {
    StatePart {
        deltas: vec!["sum(__pgs_i.__pgs_w)::pg_catalog.int8 AS __pgs_dn".to_string()],
        columns: vec![StateColumn {
            name: "__pgs_n".to_string(),
            select: "count(*)::pg_catalog.int8 AS __pgs_n".to_string(),
            new: "__pgs_d.__pgs_dn".to_string(),
            update: "__pgs_n = __pgs_s.__pgs_n + __pgs_d.__pgs_dn".to_string(),
        }],
        rescan: None,
        new_group_rescan: None,
        windows: Vec::new(),
    }
}

/// The state aggregate `j` keeps (None for COUNT(*), kept by the row count): the count of its
/// non-NULL arguments, then a sum (SUM, AVG) or an extreme (MIN, MAX).
fn aggregate_state(j: usize, aggregate: &Aggregate) -> Option<StatePart> {
    let argument = aggregate.argument.as_ref()?;
    let mut part = count_state(j, argument);
    match aggregate.kind {
        Kind::Sum | Kind::Avg => add_sum_state(&mut part, j, argument),
        Kind::Min => add_extreme_state(&mut part, j, argument, ("min", "<=", "LEAST")),
        Kind::Max => add_extreme_state(&mut part, j, argument, ("max", ">=", "GREATEST")),
        Kind::Count => {}
        Kind::CountStar => unreachable!("COUNT(*) has no argument"),
    }
    Some(part)
}

/// COUNT(argument) of aggregate `j`: its non-NULL arguments `__pgs_c<j>`.
fn count_state(j: usize, argument: &Expr) -> StatePart {
    let arg = format!("__pgs_i.__pgs_a{j}");
    StatePart {
        deltas: vec![format!(
            "COALESCE(sum(__pgs_i.__pgs_w) FILTER (WHERE {arg} IS NOT NULL), 0)::pg_catalog.int8 AS __pgs_dc{j}"
        )],
        columns: vec![StateColumn {
            name: format!("__pgs_c{j}"),
            select: format!("count({argument})::pg_catalog.int8 AS __pgs_c{j}"),
            new: format!("__pgs_d.__pgs_dc{j}"),
            update: format!("__pgs_c{j} = __pgs_s.__pgs_c{j} + __pgs_d.__pgs_dc{j}"),
        }],
        rescan: None,
        new_group_rescan: None,
        windows: Vec::new(),
    }
}

/// Whether aggregate `j` still has non-NULL arguments after delta row `__pgs_d`.
fn live(j: usize) -> String {
    format!("__pgs_s.__pgs_c{j} + __pgs_d.__pgs_dc{j} > 0")
}

/// SUM / AVG of aggregate `j`: the sum of its arguments `__pgs_s<j>` (after the count).
fn add_sum_state(part: &mut StatePart, j: usize, argument: &Expr) {
    let live = live(j);
    part.deltas.push(format!(
        "sum(__pgs_i.__pgs_w * __pgs_i.__pgs_a{j}) AS __pgs_ds{j}"
    ));
    part.columns.push(StateColumn {
        name: format!("__pgs_s{j}"),
        select: format!("sum({argument}) AS __pgs_s{j}"),
        new: format!("__pgs_d.__pgs_ds{j}"),
        update: format!(
            "__pgs_s{j} = CASE WHEN {live} THEN COALESCE(__pgs_s.__pgs_s{j}, 0) + COALESCE(__pgs_d.__pgs_ds{j}, 0) END"
        ),
    });
}

/// MIN / MAX of aggregate `j` (`f`, the comparison a deleted extreme meets, and the SQL
/// function that keeps the extreme): the extreme `__pgs_m<j>`, moved by inserted rows, its
/// group rescanned when a deleted row reached it and no row is known to hold that value still.
fn add_extreme_state(
    part: &mut StatePart,
    j: usize,
    argument: &Expr,
    (f, op, extreme): (&str, &str, &str),
) {
    let live = live(j);
    let arg = format!("__pgs_i.__pgs_a{j}");
    part.deltas.push(format!(
        "{f}({arg}) FILTER (WHERE __pgs_i.__pgs_w > 0) AS __pgs_ins{j}"
    ));
    part.deltas.push(format!(
        "{f}({arg}) FILTER (WHERE __pgs_i.__pgs_w < 0) AS __pgs_del{j}"
    ));
    // The net count of rows at the deleted extreme: a change often deletes and inserts rows of
    // the same value (a self-join's delta terms, a row updated twice by one transaction whose
    // `updated_at = now()` is the same both times), which leaves that value where it was.
    // Counted by identity (`record_image_eq`, the same bytes), not by the type's equality (1.0 = 1.00,
    // 'a' = 'A' in citext), so the extreme kept is a value rows hold, as the query shows it;
    // -1 (no row known to hold it) when the deleted rows at the extreme differ in identity.
    part.windows.push(format!(
        "{f}(__pgs_x.__pgs_a{j}) FILTER (WHERE __pgs_x.__pgs_w < 0) OVER __pgs_grp AS __pgs_dext{j}"
    ));
    let same = format!("pg_catalog.record_image_eq(ROW({arg}), ROW(__pgs_i.__pgs_dext{j}))");
    part.deltas.push(format!(
        "(CASE WHEN bool_or(__pgs_i.__pgs_w < 0 AND {arg} = __pgs_i.__pgs_dext{j} AND NOT {same}) THEN -1 \
         ELSE COALESCE(sum(__pgs_i.__pgs_w) FILTER (WHERE {same}), 0) END)::pg_catalog.int8 AS __pgs_dnet{j}"
    ));
    part.columns.push(StateColumn {
        name: format!("__pgs_m{j}"),
        select: format!("{f}({argument}) AS __pgs_m{j}"),
        new: format!("__pgs_d.__pgs_ins{j}"),
        update: format!(
            "__pgs_m{j} = CASE WHEN {live} THEN {extreme}(__pgs_s.__pgs_m{j}, __pgs_d.__pgs_ins{j}) END"
        ),
    });
    // A deleted row reaching the extreme needs no rescan when an inserted one goes strictly
    // beyond every deleted one (a row updated to a newer `updated_at`): that inserted value
    // is not among the deleted, and no value left is beyond it, so it is the new extreme,
    // which the update above keeps. Nor when rows still hold the deleted extreme: the change
    // added more rows of that value than it took (`__pgs_dnet`), or as many of the stored
    // extreme itself, the same bytes (which at least one row held before). Then no value left
    // is beyond it but inserted ones, and the update keeps the right one. (A stored extreme that is NULL,
    // a group with no value yet, compares as unknown: such a group that lost a row is
    // rescanned too, or it would keep an extreme the same changes inserted and deleted.)
    let strict = op.trim_end_matches('=');
    let replaced = format!("COALESCE(__pgs_d.__pgs_ins{j} {strict} __pgs_d.__pgs_del{j}, false)");
    let held = format!(
        "(__pgs_d.__pgs_dnet{j} > 0 OR (__pgs_d.__pgs_dnet{j} = 0 AND pg_catalog.record_image_eq(ROW(__pgs_d.__pgs_del{j}), ROW(__pgs_s.__pgs_m{j}))))"
    );
    part.rescan = Some(format!(
        "(__pgs_d.__pgs_del{j} IS NOT NULL AND (__pgs_s.__pgs_m{j} IS NULL OR (__pgs_d.__pgs_del{j} {op} __pgs_s.__pgs_m{j} AND NOT {replaced} AND NOT {held})))"
    ));
    part.new_group_rescan = Some(format!(
        "(__pgs_d.__pgs_del{j} IS NOT NULL AND NOT {replaced} AND NOT __pgs_d.__pgs_dnet{j} > 0)"
    ));
}

/// Per touched group: keys `__pgs_k<i>` and every part's delta columns over the input's signed
/// rows `__pgs_i` (without keys, none when there is no input row).
fn delta_sql(keys: usize, parts: &[StatePart], input_sql: &str) -> String {
    let keys_out: Vec<String> = (0..keys).map(|i| format!("__pgs_i.__pgs_k{i}")).collect();
    let delta_columns: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.deltas.iter().map(String::as_str))
        .collect();
    // (Without keys an aggregate returns a row even over no input: none then.)
    let group_by = if keys_out.is_empty() {
        " HAVING count(*) > 0".to_string()
    } else {
        format!(" GROUP BY {}", keys_out.join(", "))
    };
    let windows: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.windows.iter().map(String::as_str))
        .collect();
    let input_sql = if windows.is_empty() {
        input_sql.to_string()
    } else {
        let partition: Vec<String> = (0..keys).map(|i| format!("__pgs_x.__pgs_k{i}")).collect();
        let partition = if partition.is_empty() {
            String::new()
        } else {
            format!("PARTITION BY {}", partition.join(", "))
        };
        format!(
            "SELECT __pgs_x.*, {} FROM (\n{input_sql}\n) __pgs_x WINDOW __pgs_grp AS ({partition})",
            windows.join(", ")
        )
    };
    format!(
        "SELECT {}{} FROM (\n{input_sql}\n) __pgs_i{group_by}",
        keys_out
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} AS __pgs_k{i}, "))
            .collect::<String>(),
        delta_columns.join(", "),
    )
}

/// The state of the groups in the rescan table `rescan_table` (`__pgs_k<i>...`) from the
/// input now (every group's without keys).
fn rescan_sql(
    keys: &[Expr],
    state_projection: &[String],
    current_input: &dyn Fn(&[String], Option<&str>) -> String,
    rescan_table: &str,
) -> String {
    if keys.is_empty() {
        return current_input(state_projection, None);
    }
    // The groups to rescan, found in the input by plain equality (the input's indexes on
    // its key columns serve it: a few groups never cost a scan of the whole input), and,
    // only when a rescanned key has a NULL (a one-time test of the small rescan table), the
    // groups with NULL keys, compared with NULLs equal (one-element arrays: their equality
    // takes NULLs as equal; with a NULL flag, as ARRAY[x] of a NULL array is the empty array).
    // The two sets of groups are disjoint. Neither subquery refers to
    // the input, so a distributed planner (Citus) can ship the rescan table to the input.
    let key_list: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let each_key = |pattern: &dyn Fn(usize, &str) -> String, joiner: &str| {
        key_list
            .iter()
            .enumerate()
            .map(|(i, k)| pattern(i, k))
            .collect::<Vec<_>>()
            .join(joiner)
    };
    let inputs = each_key(&|_, k| format!("({k})"), ", ");
    let rescanned = each_key(&|i, _| format!("__pgs_r.__pgs_k{i}"), ", ");
    let input_arrays = each_key(&|_, k| format!("ARRAY[({k})], ({k}) IS NULL"), ", ");
    let rescanned_arrays = each_key(
        &|i, _| format!("ARRAY[__pgs_r.__pgs_k{i}], __pgs_r.__pgs_k{i} IS NULL"),
        ", ",
    );
    let rescanned_null = each_key(&|i, _| format!("__pgs_r.__pgs_k{i} IS NULL"), " OR ");
    let input_null = each_key(&|_, k| format!("({k}) IS NULL"), " OR ");
    format!(
        "{}\nUNION ALL\n{}",
        current_input(
            state_projection,
            Some(&format!(
                "({inputs}) IN (SELECT {rescanned} FROM {rescan_table} __pgs_r)"
            )),
        ),
        current_input(
            state_projection,
            Some(&format!(
                "EXISTS (SELECT 1 FROM {rescan_table} __pgs_r WHERE {rescanned_null}) AND ({input_null}) \
                 AND ({input_arrays}) IN (SELECT {rescanned_arrays} FROM {rescan_table} __pgs_r)"
            )),
        )
    )
}

/// The state table's key columns, in order.
pub fn key_columns(plan: &AlgebraicPlan) -> Vec<String> {
    (0..plan.keys).map(|i| format!("__pgs_k{i}")).collect()
}

/// A quoted state column (they are all generated names).
pub fn column(name: &str) -> String {
    quote_ident(name)
}
