//! Each stage's SQL: all of its rows (FULL), and how its refresh computes its change — signed
//! rows, the keys to recompute and their rows, algebraic state, or a recompute of a top-k —
//! with occurrences read as `terms` says (delta planning).

use super::algebraic::{self, AlgebraicPlan, GroupedStage};
use super::ast::{folded, generated_expr, generated_select, item, query_of, restrict};
use super::blocks::{self, Block};
use super::cut::{aggregate_calls, group_keys, Draft, DraftKind, Drafts};
use super::ir::{Catalog, PlanRequest, Unsupported, TOP_LEVEL};
use super::ir::{Identity, IdentityChoice, Input, Names, StageIndex, TableInput};
use super::keys::{self, KeyContext};
use super::scope;
use super::terms::Reader;
use crate::sql_text::quote_ident;
use sqlparser::ast::{Expr, Query, Select, SelectItem, SetExpr};

mod kinds;
mod stage;

use kinds::StageContext;

/// A query planned for DIFFERENTIAL refresh: its stages in refresh order (the root last).
#[derive(Debug, Clone)]
pub struct Plan {
    pub stages: Vec<StagePlan>,
    /// The captured tables the query reads (sorted).
    pub tables: Vec<u32>,
    /// How the stream table identifies its rows.
    pub root_identity: IdentityChoice,
    /// The changed tables whose change rows the refresh copies into its delta tables first.
    pub deltas: Vec<TableInput>,
    /// Columns of delta tables worth an index `(relid, column)`: those dependent filters look
    /// change rows up by for every outer row.
    pub delta_indexes: Vec<(u32, String)>,
}

impl StagePlan {
    /// `0: linear: signed changed rows (the query)`.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} ({})",
            self.index,
            self.kind.describe(),
            self.location
        )
    }

    /// The SQL its DIFFERENTIAL refresh runs (None when nothing it reads changed).
    pub fn refresh_sql(&self) -> Option<String> {
        match &self.refresh {
            StageRefresh::Signed { delta_sql } => Some(delta_sql.clone()),
            StageRefresh::Keys {
                affected_sql,
                fresh_sql,
            } => Some(format!(
                "-- keys touched:\n{affected_sql}\n-- their rows now:\n{fresh_sql}"
            )),
            StageRefresh::Algebraic(a) => Some(format!(
                "-- per-group deltas:\n{}\n-- state of rescanned groups:\n{}",
                a.delta_sql, a.rescan_sql
            )),
            StageRefresh::Recompute => Some(self.full_sql.clone()),
            StageRefresh::Unchanged => None,
        }
    }
}

impl Plan {
    pub fn root(&self) -> &StagePlan {
        self.stages.last().expect("a plan has a root stage")
    }

    /// A plan of one stage that is only ever recomputed: `query` as it is (a FULL stream table,
    /// or a query DIFFERENTIAL cannot maintain).
    pub fn single(query: &str, columns: Vec<String>, identity: Identity) -> Plan {
        let visible = columns.len();
        Plan {
            stages: vec![StagePlan {
                index: 0,
                location: TOP_LEVEL.into(),
                kind: StageKind::Linear,
                identity: identity.clone(),
                columns,
                visible,
                full_sql: query.to_string(),
                refresh: StageRefresh::Recompute,
                algebraic: None,
                tables: vec![],
                reads: vec![],
                feeds: false,
                changed: true,
                order_index: None,
                lookup_columns: vec![],
                standalone_sql: query.to_string(),
            }],
            tables: vec![],
            root_identity: IdentityChoice {
                identity,
                reason: "recomputed FULL".into(),
            },
            deltas: vec![],
            delta_indexes: vec![],
        }
    }

    /// The tables of the engine this plan keeps between refreshes (inner stages' tables and
    /// algebraic stages' state), each with the columns it has, in order (`__pgs_row_id` left
    /// out; names cut to the 63 bytes PostgreSQL keeps). A table of the same name with other
    /// columns was made for another plan of the same query: one an earlier version of the
    /// planner cut into other stages.
    pub fn private_tables(&self, names: &Names) -> Vec<(String, Vec<String>)> {
        let root = self.stages.len() - 1;
        let kept = |columns: &[String]| -> Vec<String> {
            columns
                .iter()
                .map(|c| crate::names::with_suffix(c, ""))
                .collect()
        };
        let mut out = Vec::new();
        for stage in &self.stages {
            if stage.index != root {
                out.push((names.aux_table(stage.index), kept(&stage.columns)));
            }
            if let Some(plan) = &stage.algebraic {
                let columns = crate::delta::algebraic::key_columns(plan)
                    .into_iter()
                    .chain(plan.state_columns.iter().cloned())
                    .collect();
                out.push((names.state_table(stage.index), columns));
            }
        }
        out
    }
}

/// What a stage computes (for explain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    Linear,
    Aggregate { algebraic: bool },
    Distinct,
    TopK,
}

impl StageKind {
    /// What a stage of this kind computes, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            StageKind::Linear => "linear: signed changed rows",
            StageKind::Aggregate { algebraic: true } => {
                "aggregate: per-group state moved by the changes"
            }
            StageKind::Aggregate { algebraic: false } => "aggregate: touched groups recomputed",
            StageKind::Distinct => "distinct: touched rows recomputed",
            StageKind::TopK => "top-k: recomputed from its input stage",
        }
    }
}

/// How a stage's refresh computes its change.
#[derive(Debug, Clone, PartialEq)]
pub enum StageRefresh {
    /// Nothing it reads changed.
    Unchanged,
    /// Signed changed rows `(__pgs_w, __pgs_t row text, columns...)`.
    Signed { delta_sql: String },
    /// The keys the changes touched (`__pgs_k<i>`, in key order), and the stage's rows of the
    /// keys in the affected work table now (all columns).
    Keys {
        affected_sql: String,
        fresh_sql: String,
    },
    /// Algebraic state moved by the signed change of the input.
    Algebraic(Box<AlgebraicPlan>),
    /// Recomputed from its input (a top-k over a stage).
    Recompute,
}

/// A column of an index, with its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexColumn {
    pub name: String,
    pub descending: bool,
    pub nulls_first: bool,
}

/// One stage of a plan.
#[derive(Debug, Clone)]
pub struct StagePlan {
    pub index: StageIndex,
    /// Where in the query it stands.
    pub location: String,
    pub kind: StageKind,
    pub identity: Identity,
    /// Its relation's columns (the stream table's, or the auxiliary table's); the first
    /// `visible` are what stages above read.
    pub columns: Vec<String>,
    pub visible: usize,
    /// Every row of it, from the tables and the lower stages' tables as they are now.
    pub full_sql: String,
    pub refresh: StageRefresh,
    /// Algebraic stages keep their state also when recomputed FULL.
    pub algebraic: Option<AlgebraicPlan>,
    /// The captured tables it reads, directly or through lower stages.
    pub tables: Vec<u32>,
    /// The stages it reads directly.
    pub reads: Vec<StageIndex>,
    /// A stage above reads its change set.
    pub feeds: bool,
    /// Whether anything it reads may have changed.
    pub changed: bool,
    /// Columns an index on the auxiliary table should cover (a top-k above reads it in this
    /// order).
    pub order_index: Option<Vec<IndexColumn>>,
    /// Columns stages above look its rows up by, one by one (dependent filters over it): each
    /// gets an index on its table and on its change set.
    pub lookup_columns: Vec<String>,
    /// Every row of it with the lower stages read as their own queries (not their tables).
    pub standalone_sql: String,
}

/// The leaf SELECTs of a stage body (UNION ALL branches), with VALUES leaves as None.
fn leaves(body: &SetExpr) -> Vec<Option<&Select>> {
    match body {
        SetExpr::Select(select) => vec![Some(select)],
        SetExpr::Query(query) => leaves(&query.body),
        SetExpr::SetOperation { left, right, .. } => {
            let mut out = leaves(left);
            out.extend(leaves(right));
            out
        }
        _ => vec![None],
    }
}

/// Renders every stage of `drafts`.
pub fn render(
    drafts: Drafts,
    catalog: &dyn Catalog,
    request: &PlanRequest,
) -> Result<Plan, Unsupported> {
    let mut collected = Collected {
        stages: Vec::with_capacity(drafts.stages.len()),
        tables: Vec::new(),
        deltas: Vec::new(),
        delta_indexes: Vec::new(),
    };
    for (index, draft) in drafts.stages.iter().enumerate() {
        let stage = stage::render_stage(index, draft, &mut collected, catalog, request)?;
        collected.stages.push(stage);
    }
    Ok(collected.into_plan())
}

/// What the stages rendered so far add up to.
struct Collected {
    stages: Vec<StagePlan>,
    /// The captured tables read (repeats allowed until the plan is made).
    tables: Vec<u32>,
    /// The changed tables read, each once.
    deltas: Vec<TableInput>,
    /// Columns of delta tables dependent filters look up by (repeats allowed).
    delta_indexes: Vec<(u32, String)>,
}

impl Collected {
    /// The plan of all stages: tables sorted, delta indexes kept only on delta tables' columns.
    fn into_plan(self) -> Plan {
        let Collected {
            stages,
            mut tables,
            mut deltas,
            mut delta_indexes,
        } = self;
        tables.sort_unstable();
        tables.dedup();
        let root = stages.last().expect("a plan has a root");
        let root_identity = IdentityChoice {
            identity: root.identity.clone(),
            reason: identity_reason(root),
        };
        deltas.sort_by_key(|d| d.relid);
        delta_indexes.sort();
        delta_indexes.dedup();
        delta_indexes.retain(|(relid, column)| {
            deltas.iter().any(|d| {
                d.relid == *relid
                    && d.columns.contains(column)
                    && !d.absent.iter().any(|(a, _)| a == column)
            })
        });
        Plan {
            stages,
            tables,
            root_identity,
            deltas,
            delta_indexes,
        }
    }
}

/// Why the root has its identity (explain).
fn identity_reason(root: &StagePlan) -> String {
    match (&root.identity, root.kind) {
        (Identity::Key(k), StageKind::Aggregate { .. }) if k.is_empty() => {
            "one row (an aggregate without GROUP BY)".into()
        }
        (Identity::Key(k), StageKind::Aggregate { .. }) => {
            format!("the GROUP BY key ({})", k.join(", "))
        }
        (Identity::Key(_), StageKind::Distinct) => "all columns (DISTINCT / UNION)".into(),
        (Identity::Key(k), _) => format!("the key of the tables it reads ({})", k.join(", ")),
        (Identity::Multiset, StageKind::TopK) => "a multiset with __pgs_row_id (a top-k)".into(),
        (Identity::Multiset, _) => {
            "a multiset with __pgs_row_id (no key of its sources is in its columns)".into()
        }
    }
}

/// `SELECT * FROM (query)` as text, for restrictions added around a query.
fn wrap(query: &Query) -> String {
    format!("SELECT __pgs_q.* FROM ({query}) __pgs_q")
}

/// UNION ALL of key queries, or an empty one with `width` key columns.
fn union_or_empty(parts: Vec<String>, width: usize) -> String {
    if parts.is_empty() {
        let nulls: Vec<String> = (0..width).map(|i| format!("NULL AS __pgs_k{i}")).collect();
        format!("SELECT {} WHERE false", nulls.join(", "))
    } else {
        parts.join("\nUNION ALL\n")
    }
}

/// Restrictions of rows to the keys in `affected` (`__pgs_k<i>`): one for keys without NULLs
/// (an IN the planner can push down to indexes), one for keys with a NULL (matched NULL-safe).
fn key_restrictions(keys: &[Expr], affected: &str) -> (Expr, Expr) {
    let listed: Vec<String> = keys.iter().map(|k| format!("({k})")).collect();
    let columns: Vec<String> = (0..keys.len()).map(|i| format!("__pgs_k{i}")).collect();
    let non_null = generated_expr(&format!(
        "({}) IN (SELECT {} FROM {affected})",
        listed.join(", "),
        columns.join(", ")
    ));
    let all_set = |prefix: &str, exprs: &[String]| {
        exprs
            .iter()
            .map(|e| format!("{prefix}{e} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    // NULL-safe as one-element arrays (their equality takes NULLs as equal; with a NULL flag,
    // as ARRAY[x] of a NULL array is the empty array), and not correlated: a distributed planner (Citus) ships `affected` to the rows instead.
    let arrays = |prefix: &str, exprs: &[String]| {
        exprs
            .iter()
            .map(|e| format!("ARRAY[{prefix}{e}], {prefix}{e} IS NULL"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let null = generated_expr(&format!(
        "NOT ({}) AND ({}) IN (SELECT {} FROM {affected} __pgs_a WHERE NOT ({}))",
        all_set("", &listed),
        arrays("", &listed),
        arrays("__pgs_a.", &columns),
        all_set("__pgs_a.", &columns),
    ));
    (non_null, null)
}

/// Whether two column references name the same column of `scope`.
fn same_column(a: &Expr, b: &Expr, scope_items: &[scope::ScopeItem]) -> bool {
    let column = |e: &Expr| match e {
        Expr::Identifier(i) => Some(folded(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(folded),
        _ => None,
    };
    match (
        scope::resolve(a, scope_items),
        scope::resolve(b, scope_items),
    ) {
        (Some(x), Some(y)) => x == y && column(a).is_some() && column(a) == column(b),
        _ => false,
    }
}

/// The result types of a grouped stage's aggregate calls, as the database describes them.
fn call_types(
    select: &Select,
    calls: &[Expr],
    reader: &Reader,
    catalog: &dyn Catalog,
) -> Vec<Option<String>> {
    if calls.is_empty() {
        return vec![];
    }
    let mut probe = select.clone();
    probe.projection = calls
        .iter()
        .enumerate()
        .map(|(j, c)| item(c.clone(), &format!("__pgs_a{j}")))
        .collect();
    probe.having = None;
    reader.substitute(&mut probe, &[], &[]);
    match catalog.describe(&query_of(probe).to_string()) {
        Some(described) if described.len() == calls.len() => {
            described.into_iter().map(|(_, t)| Some(t)).collect()
        }
        _ => vec![None; calls.len()],
    }
}

/// Helper for tests and explain: the SELECT of a block as SQL.
#[allow(dead_code)]
pub fn block_sql(block: &Block) -> String {
    query_of(block.select.clone()).to_string()
}

/// The names of a plan's objects for stream table `id`.
pub fn names(id: i64) -> Names {
    Names { id }
}
