//! Aggregate subqueries in FROM (and CTEs) over one table, as occurrences of their own: their
//! rows change only in the groups the table's changes touch, so the inserted rows are those
//! groups now and the deleted rows those groups before (recomputed from the table with the
//! changes taken back) (delta planning).

use super::expand::{marker, marker_index, SourceRef};
use super::render::{change_rows_sql, change_rows_with_weights_sql, key_record, quote_ident, Role};
use super::shape::{check_no_sublinks, group_keys, is_grouped};
use super::{key_hash_sql, Catalog, KeyHashing, Unsupported};
use sqlparser::ast::{
    Distinct, Expr, Ident, Query, Select, SetExpr, TableAlias, TableFactor, TableWithJoins,
};

/// An aggregate subquery standing in FROM as one occurrence.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// The source index of the table it aggregates.
    pub inner: usize,
    /// That table's alias inside the subquery.
    pub alias: String,
    /// The subquery (its table still a marker).
    pub select: Select,
    /// The SQL of a group's key hash, in the subquery's scope.
    pub key_hash: String,
}

/// Replaces every aggregate subquery over one captured table in the FROM lists of `query`
/// with an occurrence marker (appending its source entry).
pub fn mark(
    query: &mut Query,
    sources: &mut Vec<SourceRef>,
    catalog: &dyn Catalog,
) -> Result<(), Unsupported> {
    mark_set_expr(&mut query.body, sources, catalog)
}

fn mark_set_expr(
    body: &mut SetExpr,
    sources: &mut Vec<SourceRef>,
    catalog: &dyn Catalog,
) -> Result<(), Unsupported> {
    match body {
        SetExpr::Select(select) => {
            for table in select.from.iter_mut() {
                mark_from(table, sources, catalog)?;
            }
            Ok(())
        }
        SetExpr::Query(query) => mark_set_expr(&mut query.body, sources, catalog),
        SetExpr::SetOperation { left, right, .. } => {
            mark_set_expr(left, sources, catalog)?;
            mark_set_expr(right, sources, catalog)
        }
        _ => Ok(()),
    }
}

fn mark_from(
    table: &mut TableWithJoins,
    sources: &mut Vec<SourceRef>,
    catalog: &dyn Catalog,
) -> Result<(), Unsupported> {
    mark_factor(&mut table.relation, sources, catalog)?;
    for join in table.joins.iter_mut() {
        mark_factor(&mut join.relation, sources, catalog)?;
    }
    Ok(())
}

/// The table marker and alias of a subquery `SELECT ... FROM table [alias] ...` with no joins.
fn single_table(select: &Select) -> Option<(usize, String)> {
    match select.from.as_slice() {
        [TableWithJoins {
            relation:
                TableFactor::Table {
                    name,
                    alias: Some(alias),
                    ..
                },
            joins,
        }] if joins.is_empty() => Some((marker_index(name)?, alias.name.to_string())),
        _ => None,
    }
}

fn mark_factor(
    factor: &mut TableFactor,
    sources: &mut Vec<SourceRef>,
    catalog: &dyn Catalog,
) -> Result<(), Unsupported> {
    match factor {
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            let plain_query = subquery.with.is_none()
                && subquery.order_by.is_none()
                && subquery.limit_clause.is_none()
                && subquery.fetch.is_none();
            let aggregate = match subquery.body.as_ref() {
                SetExpr::Select(select)
                    if plain_query
                        && is_grouped(select, catalog)
                        && !matches!(
                            select.distinct,
                            Some(Distinct::Distinct) | Some(Distinct::On(_))
                        ) =>
                {
                    single_table(select).map(|table| (table, select.as_ref().clone()))
                }
                _ => None,
            };
            let Some(((inner, inner_alias), select)) = aggregate else {
                return mark_set_expr(&mut subquery.body, sources, catalog);
            };
            check_no_sublinks(&select.projection)?;
            check_no_sublinks(&select.selection)?;
            check_no_sublinks(&select.having)?;
            let keys = group_keys(&select)?;
            let hashing: KeyHashing = catalog.key_hashing();
            let entry = SourceRef {
                relid: sources[inner].relid,
                columns: sources[inner].columns.clone(),
                absent: sources[inner].absent.clone(),
                written: String::new(),
                aggregate: Some(Box::new(Aggregate {
                    inner,
                    alias: inner_alias,
                    key_hash: key_hash_sql(&key_record(&keys), hashing),
                    select,
                })),
            };
            let index = sources.len();
            sources.push(entry);
            *factor = marker_factor(index, alias.clone())?;
            Ok(())
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => mark_from(table_with_joins, sources, catalog),
        _ => Ok(()),
    }
}

/// A FROM item naming occurrence `index`'s marker under `alias`.
fn marker_factor(index: usize, alias: Option<TableAlias>) -> Result<TableFactor, Unsupported> {
    let query = super::expand::parse_query(&format!("SELECT 1 FROM {}", marker(index)))?;
    let SetExpr::Select(select) = *query.body else {
        unreachable!("a SELECT parses as a SELECT")
    };
    let mut factor = select
        .from
        .into_iter()
        .next()
        .expect("one FROM item")
        .relation;
    if let TableFactor::Table { alias: slot, .. } = &mut factor {
        *slot = alias;
    }
    Ok(factor)
}

/// The subquery's SQL with its table read as `table` (SQL of a relation) and its WHERE
/// extended by `extra`.
fn subquery_sql(aggregate: &Aggregate, table: &str, extra: Option<&str>) -> String {
    let mut select = aggregate.select.clone();
    let original = select
        .selection
        .as_ref()
        .map(|w| w.to_string())
        .unwrap_or_else(|| "true".into());
    if extra.is_some() {
        select.selection = Some(Expr::Identifier(Ident::new("__pgs_where__")));
    }
    let text = select.to_string().replace(&marker(aggregate.inner), table);
    match extra {
        Some(extra) => text.replacen("__pgs_where__", &format!("({original}) AND {extra}"), 1),
        None => text,
    }
}

/// Key hashes of the groups the table's changes touch.
fn affected(aggregate: &Aggregate, table: &SourceRef) -> String {
    let original = aggregate
        .select
        .selection
        .as_ref()
        .map(|w| w.to_string())
        .unwrap_or_else(|| "true".into());
    format!(
        "(SELECT {hash} FROM {changes} AS {alias} WHERE {original})",
        hash = aggregate.key_hash,
        changes = change_rows_sql(table, Role::Changed),
        alias = aggregate.alias,
    )
}

/// The table's rows of the touched groups as they were: the rows now, less the net
/// insertions, plus the net deletions (netted per row text, so a row inserted and deleted
/// again counts for nothing).
fn old_rows(aggregate: &Aggregate, table: &SourceRef, affected: &str) -> String {
    // Rows are matched on the columns the buffer keeps (the subquery reads no others).
    let columns: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !table.absent.iter().any(|(name, _)| name == *c))
        .map(|c| quote_ident(c))
        .collect();
    let list = |prefix: &str| {
        columns
            .iter()
            .map(|c| format!("{prefix}{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let alias = &aggregate.alias;
    let net = format!(
        "(SELECT DISTINCT ON (__pgs_c.__pgs_tx) {values}, __pgs_c.__pgs_tx, \
         sum(__pgs_c.__pgs_w) OVER (PARTITION BY __pgs_c.__pgs_tx) AS __pgs_n \
         FROM (SELECT __pgs_r.*, ROW({row})::text AS __pgs_tx FROM {changes} __pgs_r) __pgs_c)",
        values = list("__pgs_c."),
        row = list("__pgs_r."),
        changes = change_rows_with_weights_sql(table),
    );
    format!(
        "(SELECT {kept} FROM (SELECT {alias}.*, ROW({own})::text AS __pgs_tx, \
           pg_catalog.row_number() OVER (PARTITION BY ROW({own})::text) AS __pgs_rn \
           FROM {written} AS {alias} WHERE {hash} IN {affected}) __pgs_o \
         LEFT JOIN {net} __pgs_p ON __pgs_p.__pgs_tx = __pgs_o.__pgs_tx AND __pgs_p.__pgs_n > 0 \
         WHERE __pgs_o.__pgs_rn > COALESCE(__pgs_p.__pgs_n, 0) \
         UNION ALL \
         SELECT {gone} FROM {net} __pgs_m CROSS JOIN LATERAL pg_catalog.generate_series(1, -__pgs_m.__pgs_n) \
         WHERE __pgs_m.__pgs_n < 0)",
        own = list(&format!("{alias}.")),
        kept = list("__pgs_o."),
        gone = list("__pgs_m."),
        written = table.written,
        hash = aggregate.key_hash,
    )
}

/// The occurrence's relation read as `role`: the subquery now, the touched groups now
/// (inserted), as they were (deleted), or both.
pub fn relation_sql(aggregate: &Aggregate, sources: &[SourceRef], role: Role) -> String {
    let table = &sources[aggregate.inner];
    let affected = affected(aggregate, table);
    let restrict = format!("{} IN {affected}", aggregate.key_hash);
    let now = |extra: Option<&str>| subquery_sql(aggregate, &table.written, extra);
    let before = || {
        subquery_sql(
            aggregate,
            &old_rows(aggregate, table, &affected),
            Some(&restrict),
        )
    };
    match role {
        Role::Current => format!("({})", now(None)),
        Role::Inserted => format!("({})", now(Some(&restrict))),
        Role::Deleted => format!("({})", before()),
        Role::Changed => format!("({} UNION ALL {})", now(Some(&restrict)), before()),
    }
}
