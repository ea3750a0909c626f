//! The statements that keep an aggregate stage's algebraic state (per-group counts, sums and
//! extremes) and derive its output rows from it (pure SQL text).

use super::{key_index, listed};
use crate::delta::ir::{key_match_sql, keys_in_work_sql};

/// The work table of per-group deltas, shaped by the state table.
pub fn groups_work(plan: &crate::delta::algebraic::AlgebraicPlan, state: &str) -> String {
    let mut items: Vec<String> = (0..plan.keys)
        .map(|i| format!("__pgs_s.__pgs_k{i}"))
        .collect();
    items.push("__pgs_s.__pgs_n AS __pgs_dn".into());
    for (j, a) in plan.aggregates.iter().enumerate() {
        use crate::delta::algebraic::Kind::*;
        match a.kind {
            CountStar => {}
            Count => items.push(format!("__pgs_s.__pgs_c{j} AS __pgs_dc{j}")),
            Sum | Avg => {
                items.push(format!("__pgs_s.__pgs_c{j} AS __pgs_dc{j}"));
                items.push(format!("__pgs_s.__pgs_s{j} AS __pgs_ds{j}"));
            }
            Min | Max => {
                items.push(format!("__pgs_s.__pgs_c{j} AS __pgs_dc{j}"));
                items.push(format!("__pgs_s.__pgs_m{j} AS __pgs_ins{j}"));
                items.push(format!("__pgs_s.__pgs_m{j} AS __pgs_del{j}"));
                items.push(format!("0::pg_catalog.int8 AS __pgs_dnet{j}"));
            }
        }
    }
    format!(
        "AS SELECT {} FROM {state} __pgs_s WITH NO DATA",
        items.join(", ")
    )
}

/// The state's keys as key columns of the state table.
fn state_keys(plan: &crate::delta::algebraic::AlgebraicPlan) -> Vec<String> {
    crate::delta::algebraic::key_columns(plan)
}

/// Captures the per-group deltas into `groups`.
pub fn capture_groups(groups: &str, plan: &crate::delta::algebraic::AlgebraicPlan) -> String {
    format!(
        "INSERT INTO {groups} SELECT * FROM (\n{}\n) __pgs_d",
        plan.delta_sql
    )
}

/// The groups whose MIN / MAX lost its extreme, into `rescan`, and their state recomputed, into
/// `state_work`.
pub fn capture_rescan(
    groups: &str,
    rescan: &str,
    state_work: &str,
    state: &str,
    plan: &crate::delta::algebraic::AlgebraicPlan,
) -> Option<[String; 2]> {
    let condition = plan.rescan_condition.as_ref()?;
    let keys = state_keys(plan);
    let key_list: Vec<String> = keys.iter().map(|k| format!("__pgs_d.{k}")).collect();
    let select_keys = if key_list.is_empty() {
        "0".to_string()
    } else {
        key_list.join(", ")
    };
    let new_groups = plan
        .new_group_rescan_condition
        .as_deref()
        .unwrap_or("false");
    Some([
        format!(
            "INSERT INTO {rescan} SELECT {select_keys} FROM {groups} __pgs_d LEFT JOIN {state} __pgs_s ON {m} \
             WHERE CASE WHEN __pgs_s.__pgs_n IS NULL THEN {new_groups} ELSE {condition} END",
            m = key_match_sql("__pgs_d", "__pgs_s", &keys),
        ),
        format!("INSERT INTO {state_work} {}", plan.rescan_sql),
    ])
}

/// Moves the state by the deltas: rescanned groups replaced by their recomputed state, then one
/// MERGE moving every other touched group's counts and sums, starting new groups and dropping
/// the groups left empty (a new group whose changes cancel out is never written).
pub fn update_state(
    plan: &crate::delta::algebraic::AlgebraicPlan,
    state: &str,
    groups: &str,
    rescan: &str,
    state_work: &str,
) -> Vec<String> {
    let keys = state_keys(plan);
    let mut statements = Vec::new();
    // Groups rescanned: their state is the recomputed one, which the MERGE leaves alone. The
    // MERGE's source marks them by one outer join with the rescan table (its keys are distinct,
    // taken from the grouped deltas), matched on the key hash first (hashable) and then on the
    // keys with NULLs equal; a subquery in a WHEN clause would run once per touched group.
    let (source, rescanned_matched, rescanned_new) = if plan.rescan_condition.is_some() {
        statements.push(if keys.is_empty() {
            format!("DELETE FROM {state} WHERE EXISTS (SELECT 1 FROM {rescan})")
        } else {
            format!(
                "DELETE FROM {state} __pgs_s WHERE {}",
                keys_in_work_sql(("__pgs_s", &keys), rescan, ("__pgs_r", &keys))
            )
        });
        statements.push(format!("INSERT INTO {state} SELECT * FROM {state_work}"));
        let marked = if keys.is_empty() {
            format!(
                "(SELECT __pgs_g.*, EXISTS (SELECT 1 FROM {rescan}) AS __pgs_rescanned FROM {groups} __pgs_g)"
            )
        } else {
            format!(
                "(SELECT __pgs_g.*, __pgs_r.__pgs_hit IS NOT NULL AS __pgs_rescanned FROM {groups} __pgs_g \
                 LEFT JOIN (SELECT *, true AS __pgs_hit FROM {rescan}) __pgs_r ON {})",
                key_match_sql("__pgs_r", "__pgs_g", &keys)
            )
        };
        (
            marked,
            "WHEN MATCHED AND __pgs_d.__pgs_rescanned THEN DO NOTHING ".to_string(),
            " AND NOT __pgs_d.__pgs_rescanned".to_string(),
        )
    } else {
        (groups.to_string(), String::new(), String::new())
    };
    // (The one group of an aggregate without GROUP BY stays, empty or not.)
    let (emptied, cancelled) = if plan.scalar {
        (String::new(), String::new())
    } else {
        (
            "WHEN MATCHED AND __pgs_s.__pgs_n + __pgs_d.__pgs_dn = 0 THEN DELETE ".to_string(),
            " AND __pgs_d.__pgs_dn <> 0".to_string(),
        )
    };
    let insert_columns: Vec<String> = keys.iter().chain(&plan.state_columns).cloned().collect();
    let insert_values: Vec<String> = keys
        .iter()
        .map(|k| format!("__pgs_d.{k}"))
        .chain(plan.new_state.iter().cloned())
        .collect();
    statements.push(format!(
        "MERGE INTO {state} __pgs_s USING {source} __pgs_d ON {m} \
         {rescanned_matched}{emptied}WHEN MATCHED THEN UPDATE SET {updates} \
         WHEN NOT MATCHED{rescanned_new}{cancelled} THEN INSERT ({columns}) VALUES ({values})",
        m = key_match_sql("__pgs_s", "__pgs_d", &keys),
        updates = plan.state_updates.join(", "),
        columns = insert_columns.join(", "),
        values = insert_values.join(", "),
    ));
    statements
}

/// The touched groups' keys and the output rows of the state, as the parenthesized queries
/// [`super::apply_keyed_at_once`] reads (`affected`, `fresh`): the root's apply in one MERGE
/// straight from the state, with no work tables between. (Each touched group's row is looked
/// up through the state's key index by the MERGE's join from its key; the groups' keys are
/// distinct already, being grouped by them.)
pub fn algebraic_at_once(
    plan: &crate::delta::algebraic::AlgebraicPlan,
    state: &str,
    groups: &str,
    columns: &[String],
) -> (String, String) {
    let keys = state_keys(plan);
    let affected = if keys.is_empty() {
        format!("(SELECT DISTINCT 0 AS \"__pgs_k0\" FROM {groups} __pgs_d)")
    } else {
        let listed: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("__pgs_d.{k} AS \"__pgs_k{i}\""))
            .collect();
        format!("(SELECT {} FROM {groups} __pgs_d)", listed.join(", "))
    };
    (
        affected,
        format!(
            "(SELECT * FROM ({rows}) __pgs_o ({names}))",
            rows = algebraic_full(plan, state),
            names = listed("", columns),
        ),
    )
}

/// The touched groups' keys into `affected`, their output rows from the state into `fresh`.
pub fn algebraic_outputs(
    plan: &crate::delta::algebraic::AlgebraicPlan,
    state: &str,
    groups: &str,
    affected: &str,
    fresh: &str,
    columns: &[String],
) -> [String; 2] {
    let keys = state_keys(plan);
    let width = keys.len().max(1);
    let key_columns: Vec<String> = (0..width).map(|i| format!("__pgs_k{i}")).collect();
    let from_groups = if keys.is_empty() {
        "0".to_string()
    } else {
        keys.iter()
            .map(|k| format!("__pgs_d.{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    [
        format!(
            "INSERT INTO {affected} ({}) SELECT DISTINCT {from_groups} FROM {groups} __pgs_d",
            key_columns.join(", ")
        ),
        format!(
            "INSERT INTO {fresh} ({targets}) {rows} AND {touched}",
            targets = listed("", columns),
            rows = algebraic_full(plan, state),
            touched = keys_in_work_sql(("__pgs_s", &keys), groups, ("__pgs_d", &keys)),
        ),
    ]
}

/// The output rows of the groups in `state` that the result holds (live, past HAVING), in the
/// stage's column order, as a SELECT ending in its WHERE clause: the whole stage's rows from its
/// state alone (a FULL refresh, which has just rebuilt the state, reads its input once), and
/// with a condition added, those of the groups a DIFFERENTIAL refresh touched.
pub fn algebraic_full(plan: &crate::delta::algebraic::AlgebraicPlan, state: &str) -> String {
    let having = plan
        .having
        .as_ref()
        .map(|h| format!(" AND ({h})"))
        .unwrap_or_default();
    let live = if plan.scalar {
        "true"
    } else {
        "__pgs_s.__pgs_n > 0"
    };
    format!(
        "SELECT {outputs} FROM {state} __pgs_s WHERE {live}{having}",
        outputs = plan.outputs.join(", ")
    )
}

/// The state table's identity index: unique on its keys' hash and its keys, NULLs equal.
pub fn state_index(state: &str, plan: &crate::delta::algebraic::AlgebraicPlan) -> String {
    key_index(state, None, &state_keys(plan), &[])
}
