//! SQL of dependent filters (outer-join anti-joins, EXISTS / IN subqueries in WHERE): their
//! value now, their value before the changes (counted from the table and its change rows),
//! and which rows a change of their table can affect (delta planning).

use super::blocks::{Filter, FilterKind};
use super::expand::SourceRef;
use super::render::{occurrence_sql, Role};
use std::collections::HashSet;

fn cond(filter: &Filter) -> String {
    filter.cond.clone().unwrap_or_else(|| "true".into())
}

/// `AND`-condition that matches rows of the filter's table to the outer row, beyond `cond`.
fn matching(filter: &Filter) -> String {
    match &filter.kind {
        FilterKind::In { lhs, item } | FilterKind::NotIn { lhs, item } => {
            format!(" AND ({item}) = ({lhs})")
        }
        _ => String::new(),
    }
}

/// Rows of `relation` (SQL of the table or its change rows) under the filter's alias matching
/// `extra`, counted.
fn count(filter: &Filter, relation: &str, extra: &str) -> String {
    format!(
        "(SELECT count(*) FROM {relation} AS {alias} WHERE ({cond}){extra})",
        alias = filter.alias,
        cond = cond(filter)
    )
}

/// The count before the changes: now, minus inserted, plus deleted rows.
fn old_count(filter: &Filter, sources: &[SourceRef], extra: &str) -> String {
    let relation = |role| occurrence_sql(filter.relation, sources, role);
    format!(
        "({} - {} + {})",
        count(filter, &relation(Role::Current), extra),
        count(filter, &relation(Role::Inserted), extra),
        count(filter, &relation(Role::Deleted), extra)
    )
}

/// The filter on the table as it is now.
pub fn now(filter: &Filter, sources: &[SourceRef]) -> String {
    let sub = |select: &str| {
        format!(
            "(SELECT {select} FROM {table} AS {alias} WHERE {cond})",
            table = occurrence_sql(filter.relation, sources, Role::Current),
            alias = filter.alias,
            cond = cond(filter)
        )
    };
    match &filter.kind {
        FilterKind::Exists => format!("EXISTS {}", sub("1")),
        FilterKind::NotExists => format!("NOT EXISTS {}", sub("1")),
        FilterKind::In { lhs, item } => format!("({lhs}) IN {}", sub(item)),
        FilterKind::NotIn { lhs, item } => format!("({lhs}) NOT IN {}", sub(item)),
    }
}

/// The filter on the table as it was at the last refresh.
pub fn before(filter: &Filter, sources: &[SourceRef]) -> String {
    let matches = old_count(filter, sources, &matching(filter));
    match &filter.kind {
        FilterKind::Exists | FilterKind::In { .. } => format!("{matches} > 0"),
        FilterKind::NotExists => format!("{matches} = 0"),
        FilterKind::NotIn { lhs, item } => format!(
            "({total} = 0 OR (({lhs}) IS NOT NULL AND {matches} = 0 AND {nulls} = 0))",
            total = old_count(filter, sources, ""),
            nulls = old_count(filter, sources, &format!(" AND ({item}) IS NULL")),
        ),
    }
}

/// Rows whose filter value a change of its table can have flipped: those matching a changed
/// row (for NOT IN also any outer row when a NULL or the first/last row came or went).
pub fn touched(filter: &Filter, sources: &[SourceRef]) -> String {
    let extra = match &filter.kind {
        FilterKind::NotIn { lhs, item } => {
            format!(" AND (({item}) = ({lhs}) OR ({item}) IS NULL OR ({lhs}) IS NULL)")
        }
        _ => matching(filter),
    };
    format!(
        "EXISTS (SELECT 1 FROM {changes} AS {alias} WHERE ({cond}){extra})",
        changes = occurrence_sql(filter.relation, sources, Role::Changed),
        alias = filter.alias,
        cond = cond(filter)
    )
}

/// The block's filters combined: now, before, and the rows a change may have touched (`None`
/// when no filter's table changed, so before = now).
pub struct Combined {
    pub now: String,
    pub before: String,
    pub touched: Option<String>,
}

pub fn combine(
    filters: &[Filter],
    sources: &[SourceRef],
    changed: Option<&HashSet<u32>>,
) -> Combined {
    let is_changed =
        |f: &Filter| changed.is_none_or(|set| set.contains(&sources[f.relation].relid));
    let all = |render: &dyn Fn(&Filter) -> String| {
        let parts: Vec<String> = filters.iter().map(|f| format!("({})", render(f))).collect();
        format!("COALESCE({}, false)", parts.join(" AND "))
    };
    let now_sql = all(&|f| now(f, sources));
    let before_sql = all(&|f| {
        if is_changed(f) {
            before(f, sources)
        } else {
            now(f, sources)
        }
    });
    let touched: Vec<String> = filters
        .iter()
        .filter(|f| is_changed(f))
        .map(|f| touched(f, sources))
        .collect();
    Combined {
        now: now_sql,
        before: before_sql,
        touched: (!touched.is_empty()).then(|| format!("({})", touched.join(" OR "))),
    }
}
