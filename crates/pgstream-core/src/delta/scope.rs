//! Column names the way PostgreSQL gives them: the output names of a SELECT (its FigureColname
//! rules and `*` expansion), the columns each FROM item brings, and which FROM item a column
//! reference belongs to (delta planning).

use super::ast::{as_marker, folded};
use sqlparser::ast::{
    DataType, Expr, Function, JoinConstraint, JoinOperator, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, TableFactor, TableWithJoins,
};

/// One FROM item as a column reference sees it: its alias and its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeItem {
    pub alias: String,
    pub columns: Vec<String>,
}

/// The columns of occurrence `i` (a table's, or a lower stage's visible ones).
pub type OccurrenceColumns<'a> = &'a dyn Fn(usize) -> Vec<String>;

/// The FROM items of `select`, flattened through joins, in order.
pub fn items(select: &Select, columns: OccurrenceColumns) -> Vec<ScopeItem> {
    let mut out = Vec::new();
    for table in &select.from {
        from_items(table, columns, &mut out);
    }
    out
}

fn from_items(table: &TableWithJoins, columns: OccurrenceColumns, out: &mut Vec<ScopeItem>) {
    factor_items(&table.relation, columns, out);
    for join in &table.joins {
        factor_items(&join.relation, columns, out);
    }
}

fn factor_items(factor: &TableFactor, columns: OccurrenceColumns, out: &mut Vec<ScopeItem>) {
    let with_alias =
        |default: String, alias: &Option<sqlparser::ast::TableAlias>, own: Vec<String>| {
            let mut own = own;
            let name = match alias {
                Some(a) => {
                    for (slot, renamed) in own.iter_mut().zip(&a.columns) {
                        *slot = folded(&renamed.name);
                    }
                    folded(&a.name)
                }
                None => default,
            };
            ScopeItem {
                alias: name,
                columns: own,
            }
        };
    if let Some((index, alias)) = as_marker(factor) {
        let alias = alias.cloned();
        out.push(with_alias(String::new(), &alias, columns(index)));
        return;
    }
    match factor {
        TableFactor::Derived {
            subquery, alias, ..
        } => out.push(with_alias(
            String::new(),
            alias,
            output_names(subquery, columns),
        )),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => from_items(table_with_joins, columns, out),
        TableFactor::Table { name, alias, .. } => {
            // Only markers are left after expansion; a name here has no known columns.
            let default = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(folded)
                .unwrap_or_default();
            out.push(with_alias(default, alias, vec![]))
        }
        _ => {}
    }
}

/// The output column names of `query`.
pub fn output_names(query: &Query, columns: OccurrenceColumns) -> Vec<String> {
    body_names(&query.body, columns)
}

fn body_names(body: &SetExpr, columns: OccurrenceColumns) -> Vec<String> {
    match body {
        SetExpr::Select(select) => select_names(select, columns),
        SetExpr::Query(query) => output_names(query, columns),
        // A set operation is named by its first branch.
        SetExpr::SetOperation { left, .. } => body_names(left, columns),
        SetExpr::Values(values) => (1..=values.rows.first().map(|r| r.len()).unwrap_or(0))
            .map(|i| format!("column{i}"))
            .collect(),
        _ => vec![],
    }
}

/// The output names of one SELECT: aliases, FigureColname, `*` and `t.*` expanded (columns
/// merged by USING come once, first).
pub fn select_names(select: &Select, columns: OccurrenceColumns) -> Vec<String> {
    let scope = items(select, columns);
    let merged = using_columns(select);
    let mut names = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::ExprWithAlias { alias, .. } => names.push(folded(alias)),
            SelectItem::UnnamedExpr(expr) => names.push(figure_colname(expr)),
            SelectItem::Wildcard(_) => {
                names.extend(merged.iter().cloned());
                for item in &scope {
                    names.extend(item.columns.iter().filter(|c| !merged.contains(c)).cloned());
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                if let SelectItemQualifiedWildcardKind::ObjectName(name) = kind {
                    let wanted = name.0.last().and_then(|p| p.as_ident()).map(folded);
                    if let Some(item) = scope.iter().find(|i| Some(&i.alias) == wanted.as_ref()) {
                        names.extend(item.columns.iter().cloned());
                    }
                }
            }
            SelectItem::ExprWithAliases { aliases, .. } => names.extend(aliases.iter().map(folded)),
        }
    }
    names
}

/// Columns merged by `JOIN ... USING (...)` in `select`'s FROM.
fn using_columns(select: &Select) -> Vec<String> {
    let mut merged = Vec::new();
    for table in &select.from {
        for join in &table.joins {
            if let Some(JoinConstraint::Using(names)) = join_constraint(&join.join_operator) {
                for name in names {
                    if let Some(ident) = name.0.last().and_then(|p| p.as_ident()) {
                        let column = folded(ident);
                        if !merged.contains(&column) {
                            merged.push(column);
                        }
                    }
                }
            }
        }
    }
    merged
}

/// The constraint of a join operator that has one.
pub fn join_constraint(operator: &JoinOperator) -> Option<&JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c) => Some(c),
        _ => None,
    }
}

/// PostgreSQL's name for an unaliased select-list expression (FigureColname).
pub fn figure_colname(expr: &Expr) -> String {
    figure(expr).unwrap_or_else(|| "?column?".to_string())
}

fn figure(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(folded(ident)),
        Expr::CompoundIdentifier(parts) => parts.last().map(folded),
        Expr::Function(f) => Some(function_name(f)),
        Expr::Nested(inner) => figure(inner),
        Expr::Cast {
            expr, data_type, ..
        } => figure(expr).or_else(|| Some(type_name(data_type))),
        Expr::Case { .. } => Some("case".into()),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Array(_) => Some("array".into()),
        Expr::Extract { .. } => Some("extract".into()),
        Expr::Substring { .. } => Some("substring".into()),
        Expr::Position { .. } => Some("position".into()),
        Expr::Overlay { .. } => Some("overlay".into()),
        Expr::Trim { .. } => Some("btrim".into()),
        Expr::Ceil { .. } => Some("ceil".into()),
        Expr::Floor { .. } => Some("floor".into()),
        Expr::AtTimeZone { .. } => Some("timezone".into()),
        Expr::Subquery(query) => match query.body.as_ref() {
            SetExpr::Select(select) => match select.projection.as_slice() {
                [SelectItem::ExprWithAlias { alias, .. }] => Some(folded(alias)),
                [SelectItem::UnnamedExpr(e)] => figure(e),
                _ => None,
            },
            _ => None,
        },
        Expr::CompoundFieldAccess { access_chain, .. } => {
            access_chain.last().and_then(|a| match a {
                sqlparser::ast::AccessExpr::Dot(Expr::Identifier(i)) => Some(folded(i)),
                _ => None,
            })
        }
        _ => None,
    }
}

fn function_name(f: &Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(folded)
        .unwrap_or_else(|| "?column?".into())
}

/// The name PostgreSQL gives a cast's column when its operand has none (the type's name).
fn type_name(data_type: &DataType) -> String {
    let text = data_type.to_string().to_lowercase();
    let base = text.split('(').next().unwrap_or("").trim().to_string();
    match base.as_str() {
        "int" | "integer" => "int4".into(),
        "smallint" => "int2".into(),
        "bigint" => "int8".into(),
        "real" => "float4".into(),
        "double precision" | "float" => "float8".into(),
        "decimal" => "numeric".into(),
        "boolean" => "bool".into(),
        "character varying" => "varchar".into(),
        "character" | "char" => "bpchar".into(),
        "timestamp with time zone" => "timestamptz".into(),
        "timestamp without time zone" => "timestamp".into(),
        "time with time zone" => "timetz".into(),
        "time without time zone" => "time".into(),
        other => other.rsplit('.').next().unwrap_or(other).to_string(),
    }
}

/// Where a column reference points in `scope`: the index of the FROM item, or None (another
/// scope: an outer query's column, or unknown).
pub fn resolve(expr: &Expr, scope: &[ScopeItem]) -> Option<usize> {
    match expr {
        Expr::Identifier(ident) => {
            let name = folded(ident);
            scope.iter().position(|item| item.columns.contains(&name))
        }
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let alias = folded(&parts[parts.len() - 2]);
            let column = folded(&parts[parts.len() - 1]);
            scope.iter().position(|item| {
                item.alias == alias && (item.columns.is_empty() || item.columns.contains(&column))
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::ast::parse_query;

    fn cols(i: usize) -> Vec<String> {
        match i {
            0 => vec!["id".into(), "k".into(), "v".into()],
            _ => vec!["k".into(), "w".into()],
        }
    }

    #[test]
    fn names_follow_postgres() {
        let query = parse_query(
            "SELECT *, a.k AS kk, sum(v), v::int, 1::bigint, CASE WHEN v > 0 THEN 1 END, \
             x.w, extract(year from now()), coalesce(v, 0) \
             FROM __pgs_occ_0__ a JOIN __pgs_occ_1__ x USING (k)",
        )
        .unwrap();
        assert_eq!(
            output_names(&query, &cols),
            vec!["k", "id", "v", "w", "kk", "sum", "v", "int8", "case", "w", "extract", "coalesce"]
        );
        let query =
            parse_query("SELECT s.* FROM (SELECT id AS i, v FROM __pgs_occ_0__ t) AS s (ident)")
                .unwrap();
        assert_eq!(output_names(&query, &cols), vec!["ident", "v"]);
    }

    #[test]
    fn references_find_their_from_item() {
        let query = parse_query("SELECT 1 FROM __pgs_occ_0__ a, __pgs_occ_1__ b").unwrap();
        let SetExpr::Select(select) = query.body.as_ref() else {
            unreachable!()
        };
        let scope = items(select, &cols);
        let id = crate::delta::ast::generated_expr("id");
        let bw = crate::delta::ast::generated_expr("b.w");
        let outer = crate::delta::ast::generated_expr("o.id");
        assert_eq!(resolve(&id, &scope), Some(0));
        assert_eq!(resolve(&bw, &scope), Some(1));
        assert_eq!(resolve(&outer, &scope), None);
    }
}
