//! Algebraic maintenance of GROUP BY queries whose aggregates are COUNT, SUM and AVG (of exact
//! numbers) and MIN / MAX: per group, counts and sums are kept in a state table and moved by the
//! change rows; a MIN / MAX group is rescanned only when its extreme was deleted (delta
//! planning, pure SQL text).

use super::blocks::Block;
use super::expand::SourceRef;
use super::render::{quote_ident, signed_block_terms};
use super::{key_hash_sql, KeyHashing, Unsupported};
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Select, SelectItem,
};
use std::collections::HashSet;

/// Name the rescanned-groups relation has in the capture statement (a CTE).
pub const RESCAN: &str = "__pgs_rescan";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

/// One output column: a group key (its index) or an aggregate (its argument).
#[derive(Debug, Clone)]
enum Output {
    Key(usize),
    Aggregate {
        kind: Aggregate,
        argument: Option<String>,
    },
}

/// The SQL of an algebraically maintained GROUP BY query.
#[derive(Debug, Clone)]
pub struct AlgebraicPlan {
    /// Per touched group: `h`, key values `__pgs_k<i>`, `__pgs_dn` (rows added minus removed)
    /// and per aggregate `__pgs_dc<j>` (non-NULL values added minus removed), `__pgs_ds<j>`
    /// (their sum), `__pgs_ins<j>` / `__pgs_del<j>` (extreme inserted / deleted value).
    pub delta_sql: String,
    /// Groups whose MIN / MAX lost its extreme: a condition on delta row `__pgs_d` and the
    /// stream table's row `__pgs_t`. None without MIN / MAX.
    pub rescan_condition: Option<String>,
    /// The state of every group (`h`, `__pgs_n`, `__pgs_c<j>`, `__pgs_s<j>`, `__pgs_m<j>`),
    /// and of the groups in `__pgs_rescan(h)`.
    pub state_sql: String,
    pub state_rescan_sql: String,
    /// State columns after `h`, in order.
    pub state_columns: Vec<String>,
    /// What a delta row `__pgs_d` inserts as a new group's state, per state column.
    pub new_state: Vec<String>,
    /// `column = ...` updates of an existing group's state `__pgs_s` by delta `EXCLUDED`.
    pub state_updates: Vec<String>,
    /// The output columns, computed from delta row `__pgs_d` (keys) and state `__pgs_s`.
    pub outputs: Vec<String>,
    /// No GROUP BY: the one group always exists.
    pub scalar: bool,
}

fn aggregate_of(expr: &Expr) -> Option<(Aggregate, Option<String>)> {
    let Expr::Function(f) = expr else { return None };
    if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
        return None;
    }
    let parts: Vec<String> = f
        .name
        .0
        .iter()
        .map(|p| p.to_string().to_lowercase())
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
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.to_string()),
        _ => return None,
    };
    let kind = match (name, &argument) {
        ("count", None) => Aggregate::CountStar,
        ("count", Some(_)) => Aggregate::Count,
        ("sum", Some(_)) => Aggregate::Sum,
        ("avg", Some(_)) => Aggregate::Avg,
        ("min", Some(_)) => Aggregate::Min,
        ("max", Some(_)) => Aggregate::Max,
        _ => return None,
    };
    Some((kind, argument))
}

/// Whether a SUM / AVG result of this type is exact (so adding and subtracting drifts nothing).
fn exact(type_name: &str) -> bool {
    let t = type_name.to_lowercase();
    t == "bigint" || t == "integer" || t == "smallint" || t.starts_with("numeric")
}

/// The algebraic plan of a GROUP BY `select` with `keys`, if its select list is keys and
/// COUNT / SUM / AVG / MIN / MAX only, SUMs and AVGs are exact (`outputs`: the stream table's
/// columns, name and type), and it has no HAVING.
pub fn plan(
    select: &Select,
    keys: &[Expr],
    blocks: &[Block],
    sources: &[SourceRef],
    changed: Option<&HashSet<u32>>,
    outputs: &[(String, String)],
    hashing: KeyHashing,
) -> Result<Option<AlgebraicPlan>, Unsupported> {
    if select.having.is_some() || outputs.len() != select.projection.len() {
        return Ok(None);
    }
    let mut items = Vec::new();
    for (item, (_, type_name)) in select.projection.iter().zip(outputs) {
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => return Ok(None),
        };
        if let Some(k) = keys.iter().position(|key| key == expr) {
            items.push(Output::Key(k));
            continue;
        }
        match aggregate_of(expr) {
            Some((kind @ (Aggregate::Sum | Aggregate::Avg), _)) if !exact(type_name) => {
                let _ = kind;
                return Ok(None);
            }
            Some((kind, argument)) => items.push(Output::Aggregate { kind, argument }),
            None => return Ok(None),
        }
    }
    let key_hash = key_hash_sql(&super::render::key_record(keys), hashing);
    // The input's signed change rows: key text, key values, aggregate arguments.
    let mut projection = vec![format!("{key_hash} AS __pgs_k")];
    projection.extend(
        keys.iter()
            .enumerate()
            .map(|(i, k)| format!("{k} AS __pgs_k{i}")),
    );
    for (j, item) in items.iter().enumerate() {
        if let Output::Aggregate {
            argument: Some(argument),
            ..
        } = item
        {
            projection.push(format!("{argument} AS __pgs_a{j}"));
        }
    }
    let mut parts = Vec::new();
    for block in blocks {
        let mut input = block.clone();
        input.select.projection = vec![SelectItem::UnnamedExpr(Expr::Identifier(Ident::new(
            "__pgs_projection__",
        )))];
        input.select.group_by = GroupByExpr::Expressions(vec![], vec![]);
        input.select.having = None;
        for (coefficient, term) in signed_block_terms(&input, sources, changed)? {
            let term = term.replacen("__pgs_projection__", &projection.join(", "), 1);
            parts.push(format!(
                "SELECT {coefficient}::int4 AS __pgs_w, __pgs_q.* FROM ({term}) __pgs_q"
            ));
        }
    }
    let mut delta_columns = vec!["sum(__pgs_i.__pgs_w)::int8 AS __pgs_dn".to_string()];
    let mut state_select = vec!["count(*)::int8 AS __pgs_n".to_string()];
    let mut state_columns = vec!["__pgs_n".to_string()];
    let mut new_state = vec!["__pgs_d.__pgs_dn".to_string()];
    let mut state_updates = vec!["__pgs_n = __pgs_s.__pgs_n + EXCLUDED.__pgs_n".to_string()];
    let mut rescan = Vec::new();
    let mut output_sql = Vec::new();
    for (j, (item, (column, type_name))) in items.iter().zip(outputs).enumerate() {
        let cast = |sql: String| format!("({sql})::{type_name}");
        match item {
            Output::Key(k) => output_sql.push(cast(format!("__pgs_d.__pgs_k{k}"))),
            Output::Aggregate {
                kind: Aggregate::CountStar,
                ..
            } => output_sql.push(cast("__pgs_s.__pgs_n".into())),
            Output::Aggregate {
                kind,
                argument: Some(argument),
            } => {
                let a = format!("__pgs_i.__pgs_a{j}");
                delta_columns.push(format!(
                    "COALESCE(sum(__pgs_i.__pgs_w) FILTER (WHERE {a} IS NOT NULL), 0)::int8 AS __pgs_dc{j}"
                ));
                state_select.push(format!("count({argument})::int8 AS __pgs_c{j}"));
                state_columns.push(format!("__pgs_c{j}"));
                new_state.push(format!("__pgs_d.__pgs_dc{j}"));
                state_updates.push(format!(
                    "__pgs_c{j} = __pgs_s.__pgs_c{j} + EXCLUDED.__pgs_c{j}"
                ));
                let live = format!("__pgs_s.__pgs_c{j} + EXCLUDED.__pgs_c{j} > 0");
                match kind {
                    Aggregate::Count => output_sql.push(cast(format!("__pgs_s.__pgs_c{j}"))),
                    Aggregate::Sum | Aggregate::Avg => {
                        delta_columns.push(format!("sum(__pgs_i.__pgs_w * {a}) AS __pgs_ds{j}"));
                        state_select.push(format!("sum({argument}) AS __pgs_s{j}"));
                        state_columns.push(format!("__pgs_s{j}"));
                        new_state.push(format!("__pgs_d.__pgs_ds{j}"));
                        state_updates.push(format!(
                            "__pgs_s{j} = CASE WHEN {live} THEN COALESCE(__pgs_s.__pgs_s{j}, 0) + COALESCE(EXCLUDED.__pgs_s{j}, 0) END"
                        ));
                        output_sql.push(cast(if *kind == Aggregate::Sum {
                            format!("CASE WHEN __pgs_s.__pgs_c{j} > 0 THEN __pgs_s.__pgs_s{j} END")
                        } else {
                            format!(
                                "CASE WHEN __pgs_s.__pgs_c{j} > 0 THEN __pgs_s.__pgs_s{j}::numeric / __pgs_s.__pgs_c{j} END"
                            )
                        }));
                    }
                    Aggregate::Min | Aggregate::Max => {
                        let (f, op) = if *kind == Aggregate::Min {
                            ("min", "<=")
                        } else {
                            ("max", ">=")
                        };
                        delta_columns.push(format!(
                            "{f}({a}) FILTER (WHERE __pgs_i.__pgs_w > 0) AS __pgs_ins{j}"
                        ));
                        delta_columns.push(format!(
                            "{f}({a}) FILTER (WHERE __pgs_i.__pgs_w < 0) AS __pgs_del{j}"
                        ));
                        state_select.push(format!("{f}({argument}) AS __pgs_m{j}"));
                        state_columns.push(format!("__pgs_m{j}"));
                        new_state.push(format!("__pgs_d.__pgs_ins{j}"));
                        let extreme = if *kind == Aggregate::Min {
                            "LEAST"
                        } else {
                            "GREATEST"
                        };
                        state_updates.push(format!(
                            "__pgs_m{j} = CASE WHEN {live} THEN {extreme}(__pgs_s.__pgs_m{j}, EXCLUDED.__pgs_m{j}) END"
                        ));
                        rescan.push(format!(
                            "__pgs_d.__pgs_del{j} {op} __pgs_t.{}",
                            quote_ident(column)
                        ));
                        output_sql.push(cast(format!(
                            "CASE WHEN __pgs_s.__pgs_c{j} > 0 THEN __pgs_s.__pgs_m{j} END"
                        )));
                    }
                    Aggregate::CountStar => unreachable!("COUNT(*) has no argument"),
                }
            }
            Output::Aggregate { .. } => return Ok(None),
        }
    }
    let mut group_by = vec!["__pgs_i.__pgs_k".to_string()];
    group_by.extend((0..keys.len()).map(|i| format!("__pgs_i.__pgs_k{i}")));
    if parts.is_empty() {
        // No changed source: an empty input of the right shape.
        if let Some(block) = blocks.first() {
            let mut input = block.clone();
            input.select.projection = vec![SelectItem::UnnamedExpr(Expr::Identifier(Ident::new(
                "__pgs_projection__",
            )))];
            input.select.group_by = GroupByExpr::Expressions(vec![], vec![]);
            input.select.having = None;
            let text = super::render::substitute(&input.select.to_string(), sources, &[]).replacen(
                "__pgs_projection__",
                &projection.join(", "),
                1,
            );
            parts.push(format!(
                "SELECT 0::int4 AS __pgs_w, __pgs_q.* FROM ({text}) __pgs_q WHERE false"
            ));
        } else {
            return Ok(None);
        }
    }
    let input = parts.join("\nUNION ALL\n");
    let delta_sql = {
        format!(
            "SELECT {hash} AS h, {keys_out}{delta} FROM (\n{input}\n) __pgs_i GROUP BY {group_by}",
            hash = "__pgs_i.__pgs_k",
            keys_out = (0..keys.len())
                .map(|i| format!("__pgs_i.__pgs_k{i}, "))
                .collect::<String>(),
            delta = delta_columns.join(", "),
            group_by = group_by.join(", ")
        )
    };
    let state = |restricted: bool| {
        let mut state = select.clone();
        state.having = None;
        let mut list = vec![format!("{key_hash} AS h")];
        list.extend(state_select.iter().cloned());
        state.projection = vec![SelectItem::UnnamedExpr(Expr::Identifier(Ident::new(
            "__pgs_projection__",
        )))];
        if restricted && keys.is_empty() {
            // One group, and an aggregate without GROUP BY returns a row even when WHERE
            // keeps none: filter the result instead.
            let all = state
                .to_string()
                .replacen("__pgs_projection__", &list.join(", "), 1);
            return format!("SELECT * FROM ({all}) __pgs_all WHERE h IN (SELECT h FROM {RESCAN})");
        }
        if restricted {
            let restriction = format!("{key_hash} IN (SELECT h FROM {RESCAN})");
            let original = select
                .selection
                .as_ref()
                .map(|w| w.to_string())
                .unwrap_or_else(|| "true".into());
            state.selection = Some(Expr::Identifier(Ident::new("__pgs_where__")));
            return state
                .to_string()
                .replacen("__pgs_projection__", &list.join(", "), 1)
                .replacen(
                    "__pgs_where__",
                    &format!("({original}) AND {restriction}"),
                    1,
                );
        }
        state
            .to_string()
            .replacen("__pgs_projection__", &list.join(", "), 1)
    };
    Ok(Some(AlgebraicPlan {
        delta_sql,
        rescan_condition: (!rescan.is_empty()).then(|| format!("({})", rescan.join(" OR "))),
        state_sql: state(false),
        state_rescan_sql: state(true),
        state_columns,
        new_state,
        state_updates,
        outputs: output_sql,
        scalar: keys.is_empty(),
    }))
}

/// The state table of stream table `id`.
pub fn state_table(id: i64) -> String {
    format!("pgstream_changes.{}", quote_ident(&format!("agg_{id}")))
}

/// `sql` with the refresh parameters as typed NULLs, for creating work tables of its shape.
fn without_parameters(sql: &str) -> String {
    sql.replace("$1::", "NULL::text::")
        .replace("$2::", "NULL::text::")
        .replace("$3::", "NULL::")
}

/// The work table of per-group deltas (what follows its name in CREATE TABLE).
pub fn groups_work(plan: &AlgebraicPlan) -> String {
    format!(
        "AS SELECT * FROM ({}) __pgs_d WITH NO DATA",
        without_parameters(&plan.delta_sql)
    )
}

/// The work table of recomputed group state.
pub fn state_work(plan: &AlgebraicPlan) -> String {
    format!("AS {} WITH NO DATA", plan.state_sql)
}

/// Captures per-group deltas, and the state of groups whose extreme was deleted recomputed,
/// in one snapshot.
pub fn capture(
    plan: &AlgebraicPlan,
    target: &str,
    delta: &str,
    rescan: &str,
    state: &str,
) -> String {
    let mut ctes = vec![
        format!("__pgs_delta AS MATERIALIZED (\n{}\n)", plan.delta_sql),
        format!("__pgs_saved AS (INSERT INTO {delta} SELECT * FROM __pgs_delta RETURNING 1)"),
    ];
    if let Some(condition) = &plan.rescan_condition {
        ctes.push(format!(
            "{RESCAN} AS MATERIALIZED (SELECT __pgs_d.h FROM __pgs_delta __pgs_d \
             JOIN {target} __pgs_t ON __pgs_t.\"__pgs_row_id\" = __pgs_d.h WHERE {condition})"
        ));
        ctes.push(format!(
            "__pgs_rescanned AS (INSERT INTO {rescan} SELECT h FROM {RESCAN} RETURNING 1)"
        ));
        ctes.push(format!(
            "__pgs_state AS (INSERT INTO {state} {} RETURNING 1)",
            plan.state_rescan_sql
        ));
    }
    super::statements::with_position(&ctes.join(", "), "__pgs_saved")
}

/// Moves the state table by the deltas (rescanned groups replaced by their recomputed state).
pub fn update_state(
    plan: &AlgebraicPlan,
    state_table: &str,
    delta: &str,
    rescan: &str,
    state: &str,
) -> Vec<String> {
    let columns = plan.state_columns.join(", ");
    let mut statements = vec![
        format!("DELETE FROM {state_table} WHERE h IN (SELECT h FROM {rescan})"),
        format!("INSERT INTO {state_table} SELECT * FROM {state}"),
        format!(
            "INSERT INTO {state_table} AS __pgs_s (h, {columns}) \
             SELECT __pgs_d.h, {values} FROM {delta} __pgs_d \
             WHERE __pgs_d.h NOT IN (SELECT h FROM {rescan}) \
             ON CONFLICT (h) DO UPDATE SET {updates}",
            values = plan.new_state.join(", "),
            updates = plan.state_updates.join(", ")
        ),
    ];
    if !plan.scalar {
        statements.push(format!("DELETE FROM {state_table} WHERE __pgs_n = 0"));
    }
    statements
}

/// The new rows of the touched groups, into the keyed work tables `affected` and `fresh`.
pub fn outputs(
    plan: &AlgebraicPlan,
    state_table: &str,
    delta: &str,
    affected: &str,
    fresh: &str,
    columns: &[String],
) -> [String; 2] {
    let targets: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    [
        format!("INSERT INTO {affected} (h) SELECT h FROM {delta}"),
        format!(
            "INSERT INTO {fresh} (__pgs_h, __pgs_del, {targets}) SELECT __pgs_d.h, false, {outputs} \
             FROM {delta} __pgs_d JOIN {state_table} __pgs_s ON __pgs_s.h = __pgs_d.h",
            targets = targets.join(", "),
            outputs = plan.outputs.join(", ")
        ),
    ]
}

/// Replaces the state table with the recomputed state of every group (FULL refresh).
pub fn install_state(id: i64, state: &str) -> [String; 3] {
    let state_table = state_table(id);
    [
        format!("DROP TABLE IF EXISTS {state_table}"),
        format!("CREATE TABLE {state_table} AS SELECT * FROM {state}"),
        format!("ALTER TABLE {state_table} ADD PRIMARY KEY (h)"),
    ]
}
