//! Rendering a classified query into delta SQL: occurrences of changed sources replaced by
//! their change rows, term by term (delta planning).

use super::blocks::Block;
use super::expand::{marker, marker_index, null_marker, SourceRef};
use super::filters::{self, Combined};
use super::shape::Classified;
use super::{key_hash_sql, DeltaPlan, KeyHashing, Shape, Unsupported, AFFECTED};
use sqlparser::ast::{
    Expr, GroupByExpr, Ident, Query, SelectItem, SetExpr, TableFactor, TableWithJoins,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::collections::HashSet;

/// More terms than this in one delta (3^n - 1 for n changed occurrences in one SELECT) are
/// refused: join fewer changing tables in one SELECT.
const MAX_TERMS: usize = 512;

/// How one occurrence of a source is read in a term.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The table as it is now.
    Current,
    /// Rows inserted since the last refresh.
    Inserted,
    /// Rows deleted since the last refresh.
    Deleted,
    /// Rows inserted or deleted since the last refresh.
    Changed,
}

pub use crate::sql_text::quote_ident;

/// The name of the change-row view of source `relid` (schema pgstream).
pub fn change_view(relid: u32) -> String {
    format!("pgstream.{}", quote_ident(&format!("_rows_{relid}")))
}

/// The change rows of `source` since the last refresh, as a subquery with the table's columns.
/// The change rows no earlier refresh of this stream table covered: not visible in the snapshot
/// it covered (`$1`), nor its own transaction's (`$2`) up to the sequence number it reached (`$3`).
const CHANGE_WINDOW: &str =
    "NOT pg_catalog.pg_visible_in_snapshot(__pgs_b.__pgs_xid, $1::pg_catalog.pg_snapshot) \
     AND NOT COALESCE(__pgs_b.__pgs_xid = $2::pg_catalog.xid8 \
     AND __pgs_b.__pgs_seq <= $3::pg_catalog.int8, false)";

pub fn change_rows_sql(source: &SourceRef, role: Role) -> String {
    let sign = match role {
        Role::Inserted => "__pgs_b.__pgs_w = 1 AND ",
        Role::Deleted => "__pgs_b.__pgs_w = -1 AND ",
        _ => "",
    };
    format!(
        "(SELECT {columns} FROM {view} __pgs_b WHERE {sign}{CHANGE_WINDOW})",
        columns = change_columns(source),
        view = change_view(source.relid)
    )
}

/// The source's columns as read from its change rows: the kept ones, and typed NULLs for
/// those the buffer does not keep (no query reading the changes uses them).
fn change_columns(source: &SourceRef) -> String {
    if source.columns.is_empty() {
        return "1".to_string();
    }
    source
        .columns
        .iter()
        .map(|c| match source.absent.iter().find(|(name, _)| name == c) {
            Some((_, type_name)) => format!("NULL::{type_name} AS {}", quote_ident(c)),
            None => format!("__pgs_b.{}", quote_ident(c)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// All change rows of `source` since the last refresh with their weight `__pgs_w`.
pub fn change_rows_with_weights_sql(source: &SourceRef) -> String {
    format!(
        "(SELECT {columns}, __pgs_b.__pgs_w FROM {view} __pgs_b WHERE {CHANGE_WINDOW})",
        columns = change_columns(source),
        view = change_view(source.relid),
    )
}

/// Occurrence `index` read as `role`: a table (or its change rows), or an aggregate subquery.
pub fn occurrence_sql(index: usize, sources: &[SourceRef], role: Role) -> String {
    let source = &sources[index];
    match (&source.aggregate, role) {
        (Some(aggregate), role) => super::aggsub::relation_sql(aggregate, sources, role),
        (None, Role::Current) => source.written.clone(),
        (None, other) => change_rows_sql(source, other),
    }
}

/// `sql` with every source marker replaced: `roles` maps marker indexes to how they are read
/// (absent: the table itself).
pub fn substitute(sql: &str, sources: &[SourceRef], roles: &[(usize, Role)]) -> String {
    let mut out = sql.to_string();
    // Highest index first, so marker 1 never matches inside marker 12.
    for index in (0..sources.len()).rev() {
        let role = roles
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, r)| *r)
            .unwrap_or(Role::Current);
        out = out.replace(&marker(index), &occurrence_sql(index, sources, role));
        out = out.replace(
            &null_marker(index),
            &format!(
                "(SELECT * FROM {} __pgs_none WHERE false)",
                occurrence_sql(index, sources, Role::Current)
            ),
        );
    }
    out
}

/// Marker indexes of the source occurrences in `body`.
fn occurrences(body: &SetExpr) -> Vec<usize> {
    let mut found = Vec::new();
    collect_set_expr(body, &mut found);
    found
}

fn collect_set_expr(body: &SetExpr, found: &mut Vec<usize>) {
    match body {
        SetExpr::Select(select) => select.from.iter().for_each(|t| collect_from(t, found)),
        SetExpr::Query(query) => collect_set_expr(&query.body, found),
        SetExpr::SetOperation { left, right, .. } => {
            collect_set_expr(left, found);
            collect_set_expr(right, found);
        }
        _ => {}
    }
}

fn collect_from(table: &TableWithJoins, found: &mut Vec<usize>) {
    collect_factor(&table.relation, found);
    table
        .joins
        .iter()
        .for_each(|j| collect_factor(&j.relation, found));
}

fn collect_factor(factor: &TableFactor, found: &mut Vec<usize>) {
    match factor {
        TableFactor::Table { name, .. } => found.extend(marker_index(name)),
        TableFactor::Derived { subquery, .. } => collect_set_expr(&subquery.body, found),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => collect_from(table_with_joins, found),
        _ => {}
    }
}

/// The occurrences in `block`'s FROM whose source may have changed.
fn changeable(block: &Block, sources: &[SourceRef], changed: Option<&HashSet<u32>>) -> Vec<usize> {
    occurrences(&SetExpr::Select(Box::new(block.select.clone())))
        .into_iter()
        .filter(|i| changed.is_none_or(|set| set.contains(&sources[*i].relid)))
        .collect()
}

/// `block` as SQL with occurrences read as `roles` say, its WHERE extended by `extra`.
fn block_sql(
    block: &Block,
    sources: &[SourceRef],
    roles: &[(usize, Role)],
    extra: Option<&str>,
) -> String {
    let text = match extra {
        None => block.select.to_string(),
        Some(extra) => {
            let mut select = block.select.clone();
            select.selection = Some(Expr::Identifier(Ident::new("__pgs_where__")));
            let original = block
                .select
                .selection
                .as_ref()
                .map(|w| w.to_string())
                .unwrap_or_else(|| "true".into());
            select
                .to_string()
                .replace("__pgs_where__", &format!("({original}) AND {extra}"))
        }
    };
    substitute(&text, sources, roles)
}

/// Every term of the signed delta of `block`: (coefficient, SQL). For occurrences o1..on of
/// changed sources, ΔQ = Σ over non-empty subsets U, and over inserted/deleted for each
/// member, of (-1)^(|U|+1) · Π signs · Q(those occurrences read from change rows), with the
/// block's filters as they were before; plus, when a filter's table changed, the rows of the
/// block now whose filter value flipped (+1 passes now, -1 passed before).
pub fn signed_block_terms(
    block: &Block,
    sources: &[SourceRef],
    changed: Option<&HashSet<u32>>,
) -> Result<Vec<(i32, String)>, Unsupported> {
    let occ = changeable(block, sources, changed);
    let count = 3usize.saturating_pow(occ.len() as u32).saturating_sub(1);
    if count > MAX_TERMS {
        return Err(Unsupported(format!(
            "a SELECT joining {} changing tables (at most 5 per SELECT)",
            occ.len()
        )));
    }
    let combined =
        (!block.filters.is_empty()).then(|| filters::combine(&block.filters, sources, changed));
    let before = combined.as_ref().map(|c| c.before.clone());
    let mut terms = Vec::new();
    for subset in 1u32..(1 << occ.len()) {
        let members: Vec<usize> = (0..occ.len())
            .filter(|b| subset & (1 << b) != 0)
            .map(|b| occ[b])
            .collect();
        let base = if members.len() % 2 == 1 { 1 } else { -1 };
        for signs in 0u32..(1 << members.len()) {
            let mut coefficient = base;
            let roles: Vec<(usize, Role)> = members
                .iter()
                .enumerate()
                .map(|(k, index)| {
                    if signs & (1 << k) != 0 {
                        coefficient = -coefficient;
                        (*index, Role::Deleted)
                    } else {
                        (*index, Role::Inserted)
                    }
                })
                .collect();
            terms.push((
                coefficient,
                block_sql(block, sources, &roles, before.as_deref()),
            ));
        }
    }
    if let Some(Combined {
        now,
        before,
        touched: Some(touched),
    }) = &combined
    {
        terms.push((
            1,
            block_sql(
                block,
                sources,
                &[],
                Some(&format!("{touched} AND {now} AND NOT {before}")),
            ),
        ));
        terms.push((
            -1,
            block_sql(
                block,
                sources,
                &[],
                Some(&format!("{touched} AND NOT {now} AND {before}")),
            ),
        ));
    }
    Ok(terms)
}

/// Terms whose rows include every row of `block`'s old or new result that a change touched:
/// each non-empty subset of changed occurrences read from all change rows (filters as before
/// or now), and the rows whose filter value flipped.
fn touching_terms(
    block: &Block,
    sources: &[SourceRef],
    changed: Option<&HashSet<u32>>,
) -> Result<Vec<String>, Unsupported> {
    let occ = changeable(block, sources, changed);
    if occ.len() > 9 {
        return Err(Unsupported(format!(
            "a SELECT joining {} changing tables",
            occ.len()
        )));
    }
    let combined =
        (!block.filters.is_empty()).then(|| filters::combine(&block.filters, sources, changed));
    let either = combined
        .as_ref()
        .map(|c| format!("({} OR {})", c.before, c.now));
    let mut terms: Vec<String> = (1u32..(1 << occ.len()))
        .map(|subset| {
            let roles: Vec<(usize, Role)> = (0..occ.len())
                .filter(|b| subset & (1 << b) != 0)
                .map(|b| (occ[b], Role::Changed))
                .collect();
            block_sql(block, sources, &roles, either.as_deref())
        })
        .collect();
    if let Some(Combined {
        now,
        before,
        touched: Some(touched),
    }) = &combined
    {
        terms.push(block_sql(
            block,
            sources,
            &[],
            Some(&format!("{touched} AND {now} <> {before}")),
        ));
    }
    Ok(terms)
}

fn parse_expr(sql: &str) -> Expr {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .unwrap_or_else(|e| panic!("generated expression {sql} does not parse: {e}"))
}

/// The key of a group as a record: `ROW(k1, ...)`, or a constant for one-row aggregates.
pub fn key_record(keys: &[Expr]) -> String {
    if keys.is_empty() {
        "ROW(0)".to_string()
    } else {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        format!("ROW({})", keys.join(", "))
    }
}

fn key_item(keys: &[Expr], hashing: KeyHashing) -> SelectItem {
    SelectItem::ExprWithAlias {
        expr: parse_expr(&key_hash_sql(&key_record(keys), hashing)),
        alias: Ident::new("__pgs_k"),
    }
}

fn union_all(parts: Vec<String>, empty: String) -> String {
    if parts.is_empty() {
        empty
    } else {
        parts.join("\nUNION ALL\n")
    }
}

/// The expanded query with every source read as it is.
fn current(query: &Query, sources: &[SourceRef]) -> String {
    substitute(&query.to_string(), sources, &[])
}

pub fn render(
    query: &Query,
    classified: &Classified,
    sources: &[SourceRef],
    changed: Option<&HashSet<u32>>,
    outputs: &[(String, String)],
    hashing: KeyHashing,
) -> Result<DeltaPlan, Unsupported> {
    let relids = {
        let mut seen: Vec<u32> = sources.iter().map(|s| s.relid).collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    };
    match classified {
        Classified::Linear { blocks } => {
            let mut parts = Vec::new();
            for block in blocks {
                for (coefficient, term) in signed_block_terms(block, sources, changed)? {
                    parts.push(format!(
                        "SELECT {coefficient}::int4 AS __pgs_w, __pgs_q::text AS __pgs_t, __pgs_q.* FROM ({term}) __pgs_q"
                    ));
                }
            }
            let empty = format!(
                "SELECT 0::int4 AS __pgs_w, __pgs_q::text AS __pgs_t, __pgs_q.* FROM ({}) __pgs_q WHERE false",
                current(query, sources)
            );
            Ok(DeltaPlan {
                shape: Shape::Linear,
                delta_sql: union_all(parts, empty),
                fresh_sql: None,
                full_sql: None,
                sources: relids,
                algebraic: None,
            })
        }
        Classified::Grouped {
            select,
            keys,
            blocks,
        } => {
            let mut parts = Vec::new();
            for block in blocks {
                let mut input = block.clone();
                input.select.projection = vec![key_item(keys, hashing)];
                input.select.group_by = GroupByExpr::Expressions(vec![], vec![]);
                input.select.having = None;
                for term in touching_terms(&input, sources, changed)? {
                    parts.push(format!("SELECT __pgs_q.__pgs_k FROM ({term}) __pgs_q"));
                }
            }
            let with_key = |restricted: bool| {
                let mut keyed = select.as_ref().clone();
                keyed.projection.push(key_item(keys, hashing));
                if restricted {
                    let restriction = if keys.is_empty() {
                        format!("EXISTS (SELECT 1 FROM {AFFECTED})")
                    } else {
                        format!(
                            "{} IN (SELECT h FROM {AFFECTED})",
                            key_hash_sql(&key_record(keys), hashing)
                        )
                    };
                    keyed.selection = Some(match keyed.selection.take() {
                        Some(original) => parse_expr(&format!("({original}) AND {restriction}")),
                        None => parse_expr(&restriction),
                    });
                }
                let mut whole = query.clone();
                *whole.body = SetExpr::Select(Box::new(keyed));
                whole.order_by = None;
                current(&whole, sources)
            };
            let algebraic =
                super::algebraic::plan(select, keys, blocks, sources, changed, outputs, hashing)?
                    .map(|mut plan| {
                        plan.state_sql = substitute(&plan.state_sql, sources, &[]);
                        plan.state_rescan_sql = substitute(&plan.state_rescan_sql, sources, &[]);
                        plan
                    });
            Ok(DeltaPlan {
                shape: Shape::Keyed,
                delta_sql: union_all(parts, "SELECT NULL::int8 AS __pgs_k WHERE false".into()),
                fresh_sql: Some(with_key(true)),
                full_sql: Some(with_key(false)),
                sources: relids,
                algebraic,
            })
        }
        Classified::Distinct { blocks } => {
            let row_key = key_hash_sql("__pgs_q", hashing);
            let mut parts = Vec::new();
            for block in blocks {
                for term in touching_terms(block, sources, changed)? {
                    parts.push(format!("SELECT {row_key} AS __pgs_k FROM ({term}) __pgs_q"));
                }
            }
            let whole = current(query, sources);
            let full = format!("SELECT __pgs_q.*, {row_key} AS __pgs_k FROM ({whole}) __pgs_q");
            Ok(DeltaPlan {
                shape: Shape::Keyed,
                delta_sql: union_all(parts, "SELECT NULL::int8 AS __pgs_k WHERE false".into()),
                fresh_sql: Some(format!(
                    "{full} WHERE {row_key} IN (SELECT h FROM {AFFECTED})"
                )),
                full_sql: Some(full),
                sources: relids,
                algebraic: None,
            })
        }
    }
}
