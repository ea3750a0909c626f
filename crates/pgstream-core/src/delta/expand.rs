//! Parsing a defining query and expanding it: CTEs and views inlined as subqueries in FROM,
//! every captured table reference replaced by an occurrence marker (delta planning).

use super::ast::{
    derived, folded, marker_factor, parse_query, restore_subqueries, take_subqueries,
};
use super::ir::TableInput;
use super::ir::{Catalog, Relation, Unsupported, TOP_LEVEL};
use sqlparser::ast::{
    Expr, Ident, InTarget, ObjectName, ObjectNamePart, Query, SetExpr, TableAlias,
    TableAliasColumnDef, TableFactor, TableWithJoins, Visit, Visitor,
};
use std::ops::ControlFlow;

/// Views within views deeper than this are refused (and catch a view cycle, which
/// PostgreSQL itself prevents).
const MAX_VIEW_DEPTH: usize = 16;

/// A query with its CTEs and views inlined; marker `i` stands for `tables[i]`.
#[derive(Debug, Clone)]
pub struct Expanded {
    pub query: Query,
    pub tables: Vec<TableInput>,
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
    tables: Vec<TableInput>,
}

/// Parses `sql` and expands it.
pub fn expand(sql: &str, catalog: &dyn Catalog) -> Result<Expanded, Unsupported> {
    let mut query = parse_query(sql)?;
    let mut expander = Expander {
        catalog,
        tables: Vec::new(),
    };
    expander.query(&mut query, &[], 0, TOP_LEVEL)?;
    Ok(Expanded {
        query,
        tables: expander.tables,
    })
}

impl Expander<'_> {
    fn query(
        &mut self,
        query: &mut Query,
        scope: &[ScopedCte],
        depth: usize,
        location: &str,
    ) -> Result<(), Unsupported> {
        let mut local = scope.to_vec();
        if let Some(with) = query.with.take() {
            if with.recursive {
                return Err(Unsupported::new("WITH RECURSIVE").at(location));
            }
            for cte in with.cte_tables {
                let name = folded(&cte.alias.name);
                let mut body = *cte.query;
                self.query(&mut body, &local, depth, &format!("CTE {name}"))?;
                local.push(ScopedCte {
                    name,
                    query: body,
                    columns: cte.alias.columns,
                });
            }
        }
        self.set_expr(&mut query.body, &local, depth, location)?;
        // Subqueries in ORDER BY expressions are refused by the construct checks.
        Ok(())
    }

    fn set_expr(
        &mut self,
        body: &mut SetExpr,
        scope: &[ScopedCte],
        depth: usize,
        location: &str,
    ) -> Result<(), Unsupported> {
        match body {
            SetExpr::Select(select) => {
                for table in select.from.iter_mut() {
                    self.table_with_joins(table, scope, depth, location)?;
                }
                // Subqueries in expressions (WHERE, HAVING, the select list) see the same CTEs.
                let mut subqueries = take_subqueries(select.as_mut());
                for subquery in subqueries.iter_mut() {
                    self.query(subquery, scope, depth, location)?;
                }
                restore_subqueries(select.as_mut(), subqueries);
                Ok(())
            }
            SetExpr::Query(query) => self.query(query, scope, depth, location),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, scope, depth, location)?;
                self.set_expr(right, scope, depth, location)
            }
            SetExpr::Values(_) => Ok(()),
            SetExpr::Table(table) => Err(Unsupported::new(format!("TABLE {}", table)).at(location)),
            other => Err(Unsupported::new(format!("query body {other}")).at(location)),
        }
    }

    fn table_with_joins(
        &mut self,
        table: &mut TableWithJoins,
        scope: &[ScopedCte],
        depth: usize,
        location: &str,
    ) -> Result<(), Unsupported> {
        self.factor(&mut table.relation, scope, depth, location)?;
        for join in table.joins.iter_mut() {
            self.factor(&mut join.relation, scope, depth, location)?;
        }
        Ok(())
    }

    /// Expands one FROM item: a named relation (CTE, view or table), a subquery or a
    /// parenthesized join.
    fn factor(
        &mut self,
        factor: &mut TableFactor,
        scope: &[ScopedCte],
        depth: usize,
        location: &str,
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
                    return Err(Unsupported::new(format!("function {name}() in FROM")).at(location));
                }
                if sample.is_some() {
                    return Err(Unsupported::new("TABLESAMPLE").at(location));
                }
                *factor = self.named(name, alias.as_ref(), scope, depth, location)?;
                Ok(())
            }
            TableFactor::Derived {
                subquery,
                lateral,
                sample,
                alias,
            } => {
                let here = alias
                    .as_ref()
                    .map(|a| format!("subquery {}", folded(&a.name)))
                    .unwrap_or_else(|| location.to_string());
                if *lateral {
                    return Err(Unsupported::new("LATERAL").at(&here));
                }
                if sample.is_some() {
                    return Err(Unsupported::new("TABLESAMPLE").at(&here));
                }
                self.query(subquery, scope, depth, &here)
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.table_with_joins(table_with_joins, scope, depth, location),
            other => Err(Unsupported::new(format!("FROM item {other}")).at(location)),
        }
    }

    /// What relation `name` in FROM stands as: a CTE in scope or a view inlined as a subquery,
    /// a captured table as an occurrence marker (aliased by its last name part by default).
    fn named(
        &mut self,
        name: &ObjectName,
        alias: Option<&TableAlias>,
        scope: &[ScopedCte],
        depth: usize,
        location: &str,
    ) -> Result<TableFactor, Unsupported> {
        let parts = name_parts(name, location)?;
        let last = parts.last().cloned().expect("a name has a part");
        let alias = alias.cloned().unwrap_or(TableAlias {
            explicit: true,
            name: last.clone(),
            columns: vec![],
            at: None,
        });
        if parts.len() == 1 {
            let wanted = folded(&last);
            if let Some(cte) = scope.iter().rev().find(|c| c.name == wanted) {
                let mut alias = alias;
                if alias.columns.is_empty() {
                    alias.columns = cte.columns.clone();
                }
                return Ok(derived(cte.query.clone(), Some(alias)));
            }
        }
        let folded_parts: Vec<String> = parts.iter().map(folded).collect();
        match self.catalog.relation(&folded_parts) {
            None => {
                Err(Unsupported::new(format!("relation {name}, which does not exist")).at(location))
            }
            Some(Relation::NotCapturable { reason }) => Err(Unsupported::new(format!(
                "source {name}, a {reason} (its changes cannot be captured)"
            ))
            .at(location)),
            Some(Relation::View {
                name: view_name,
                definition,
            }) => {
                let view = self.view(&view_name, &definition, depth, location)?;
                Ok(derived(view, Some(alias)))
            }
            Some(Relation::Table(table)) => {
                let index = self.tables.len();
                self.tables.push(table);
                Ok(marker_factor(index, Some(alias)))
            }
        }
    }

    /// View `view_name`'s definition parsed and expanded (views nested too deep refused).
    fn view(
        &mut self,
        view_name: &str,
        definition: &str,
        depth: usize,
        location: &str,
    ) -> Result<Query, Unsupported> {
        if depth >= MAX_VIEW_DEPTH {
            return Err(
                Unsupported::new(format!("views nested deeper than {MAX_VIEW_DEPTH}")).at(location),
            );
        }
        let mut view = parse_query(definition.trim().trim_end_matches(';'))?;
        self.query(&mut view, &[], depth + 1, &format!("view {view_name}"))?;
        Ok(view)
    }
}

/// The identifiers of a relation name (a function call in it refused).
fn name_parts(name: &ObjectName, location: &str) -> Result<Vec<Ident>, Unsupported> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(ident.clone()),
            ObjectNamePart::Function(_) => {
                Err(Unsupported::new(format!("relation name {name}")).at(location))
            }
        })
        .collect()
}

/// Whether `node` contains a subquery expression (EXISTS, IN, scalar, ANY / ALL).
pub fn has_sublinks<N: Visit>(node: &N) -> bool {
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Exists { .. }
                | Expr::Subquery(_)
                | Expr::In {
                    target: InTarget::Subquery(_),
                    ..
                } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    node.visit(&mut Find).is_break()
}
