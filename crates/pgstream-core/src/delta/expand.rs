//! Parsing a defining query and expanding it for delta planning: CTEs and views inlined as
//! subqueries, every captured table reference replaced by a numbered marker.

use super::{Catalog, Relation, Unsupported};
use sqlparser::ast::{
    Expr, Ident, InTarget, ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableAlias,
    TableAliasColumnDef, TableFactor, TableWithJoins,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Views within views deeper than this are refused (and catch a view cycle, which
/// PostgreSQL itself prevents).
const MAX_VIEW_DEPTH: usize = 16;

/// One reference to a captured table in the expanded query.
#[derive(Debug, Clone)]
pub struct SourceRef {
    pub relid: u32,
    pub columns: Vec<String>,
    /// Columns (name, type) the change buffer does not keep: read as typed NULLs.
    pub absent: Vec<(String, String)>,
    /// The name as the query wrote it.
    pub written: String,
    /// An aggregate subquery over the table, standing as one occurrence (None: the table).
    pub aggregate: Option<Box<super::aggsub::Aggregate>>,
}

/// The marker a captured table reference `index` is replaced by while planning.
pub fn marker(index: usize) -> String {
    format!("__pgs_src_{index}__")
}

/// The marker a relation padded with NULLs in an anti-join block is replaced by: an empty
/// relation with the table's columns, which is not an occurrence.
pub fn null_marker(index: usize) -> String {
    format!("__pgs_null_{index}__")
}

/// The index of a captured table reference from its marker name.
pub fn marker_index(name: &ObjectName) -> Option<usize> {
    name.to_string()
        .strip_prefix("__pgs_src_")
        .and_then(|rest| rest.strip_suffix("__"))
        .and_then(|n| n.parse().ok())
}

/// Whether `factor` is a NULL-padded relation of an anti-join block.
pub fn is_padded(factor: &TableFactor) -> bool {
    matches!(factor, TableFactor::Table { name, .. } if name.to_string().starts_with("__pgs_null_"))
}

/// Parses `sql` as exactly one query.
pub fn parse_query(sql: &str) -> Result<Query, Unsupported> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| Unsupported(format!("syntax the delta planner cannot parse ({e})")))?;
    match statements.as_slice() {
        [Statement::Query(query)] => Ok(*query.clone()),
        _ => Err(Unsupported("a statement that is not one SELECT".into())),
    }
}

/// A name part as PostgreSQL folds it: unquoted identifiers in lower case.
pub fn folded(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

fn name_parts(name: &ObjectName) -> Result<Vec<Ident>, Unsupported> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(ident.clone()),
            ObjectNamePart::Function(_) => Err(Unsupported(format!("relation name {name}"))),
        })
        .collect()
}

/// A CTE visible where a table reference is expanded.
#[derive(Clone)]
struct ScopedCte {
    name: String,
    query: Query,
    columns: Vec<TableAliasColumnDef>,
}

struct Expander<'a> {
    catalog: &'a dyn Catalog,
    sources: Vec<SourceRef>,
}

/// Inlines CTEs and views and marks captured tables; returns the table references in marker
/// order.
pub fn expand(query: &mut Query, catalog: &dyn Catalog) -> Result<Vec<SourceRef>, Unsupported> {
    let mut expander = Expander {
        catalog,
        sources: Vec::new(),
    };
    expander.query(query, &[], 0)?;
    Ok(expander.sources)
}

impl Expander<'_> {
    fn query(
        &mut self,
        query: &mut Query,
        scope: &[ScopedCte],
        depth: usize,
    ) -> Result<(), Unsupported> {
        let mut local = scope.to_vec();
        if let Some(with) = query.with.take() {
            if with.recursive {
                return Err(Unsupported("WITH RECURSIVE".into()));
            }
            for cte in with.cte_tables {
                let mut body = *cte.query;
                self.query(&mut body, &local, depth)?;
                local.push(ScopedCte {
                    name: folded(&cte.alias.name),
                    query: body,
                    columns: cte.alias.columns,
                });
            }
        }
        self.set_expr(&mut query.body, &local, depth)
    }

    fn set_expr(
        &mut self,
        body: &mut SetExpr,
        scope: &[ScopedCte],
        depth: usize,
    ) -> Result<(), Unsupported> {
        match body {
            SetExpr::Select(select) => {
                for table in select.from.iter_mut() {
                    self.table_with_joins(table, scope, depth)?;
                }
                if let Some(selection) = select.selection.as_mut() {
                    self.condition(selection, scope, depth)?;
                }
                Ok(())
            }
            SetExpr::Query(query) => self.query(query, scope, depth),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, scope, depth)?;
                self.set_expr(right, scope, depth)
            }
            SetExpr::Values(_) => Ok(()),
            other => Err(Unsupported(format!("query body {other}"))),
        }
    }

    /// Expands the subqueries of a WHERE condition's AND/OR/NOT structure (those anywhere
    /// else are refused later).
    fn condition(
        &mut self,
        expr: &mut Expr,
        scope: &[ScopedCte],
        depth: usize,
    ) -> Result<(), Unsupported> {
        match expr {
            Expr::BinaryOp { left, right, .. } => {
                self.condition(left, scope, depth)?;
                self.condition(right, scope, depth)
            }
            Expr::UnaryOp { expr, .. } | Expr::Nested(expr) => self.condition(expr, scope, depth),
            Expr::Exists { subquery, .. } => self.query(subquery, scope, depth),
            Expr::In {
                target: InTarget::Subquery(subquery),
                ..
            } => self.query(subquery, scope, depth),
            _ => Ok(()),
        }
    }

    fn table_with_joins(
        &mut self,
        table: &mut TableWithJoins,
        scope: &[ScopedCte],
        depth: usize,
    ) -> Result<(), Unsupported> {
        self.factor(&mut table.relation, scope, depth)?;
        for join in table.joins.iter_mut() {
            self.factor(&mut join.relation, scope, depth)?;
        }
        Ok(())
    }

    fn factor(
        &mut self,
        factor: &mut TableFactor,
        scope: &[ScopedCte],
        depth: usize,
    ) -> Result<(), Unsupported> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                sample,
                ..
            } => {
                if args.is_some() {
                    return Err(Unsupported(format!("function {name}() in FROM")));
                }
                if sample.is_some() {
                    return Err(Unsupported("TABLESAMPLE".into()));
                }
                let parts = name_parts(name)?;
                let last = parts.last().cloned().expect("a name has a part");
                let default_alias = || TableAlias {
                    explicit: true,
                    name: last.clone(),
                    columns: vec![],
                    at: None,
                };
                if parts.len() == 1 {
                    let wanted = folded(&last);
                    if let Some(cte) = scope.iter().rev().find(|c| c.name == wanted) {
                        let mut alias = alias.clone().unwrap_or_else(default_alias);
                        if alias.columns.is_empty() {
                            alias.columns = cte.columns.clone();
                        }
                        *factor = derived(cte.query.clone(), alias);
                        return Ok(());
                    }
                }
                let folded_parts: Vec<String> = parts.iter().map(folded).collect();
                match self.catalog.relation(&folded_parts) {
                    None => Err(Unsupported(format!(
                        "relation {name}, which does not exist"
                    ))),
                    Some(Relation::NotCapturable { reason }) => Err(Unsupported(format!(
                        "source {name}, a {reason} (its changes cannot be captured)"
                    ))),
                    Some(Relation::View { definition }) => {
                        if depth >= MAX_VIEW_DEPTH {
                            return Err(Unsupported(format!(
                                "views nested deeper than {MAX_VIEW_DEPTH}"
                            )));
                        }
                        let mut view = parse_query(definition.trim().trim_end_matches(';'))?;
                        self.query(&mut view, &[], depth + 1)?;
                        let alias = alias.clone().unwrap_or_else(default_alias);
                        *factor = derived(view, alias);
                        Ok(())
                    }
                    Some(Relation::Table {
                        relid,
                        columns,
                        absent,
                    }) => {
                        let index = self.sources.len();
                        self.sources.push(SourceRef {
                            relid,
                            columns,
                            absent,
                            written: name.to_string(),
                            aggregate: None,
                        });
                        if alias.is_none() {
                            *alias = Some(default_alias());
                        }
                        *name = ObjectName::from(vec![Ident::new(marker(index))]);
                        Ok(())
                    }
                }
            }
            TableFactor::Derived {
                subquery,
                lateral,
                sample,
                ..
            } => {
                if *lateral {
                    return Err(Unsupported("LATERAL".into()));
                }
                if sample.is_some() {
                    return Err(Unsupported("TABLESAMPLE".into()));
                }
                self.query(subquery, scope, depth)
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.table_with_joins(table_with_joins, scope, depth),
            other => Err(Unsupported(format!("FROM item {other}"))),
        }
    }
}

fn derived(query: Query, alias: TableAlias) -> TableFactor {
    TableFactor::Derived {
        lateral: false,
        subquery: Box::new(query),
        alias: Some(alias),
        sample: None,
    }
}
