//! Row identity of a linear stage: the keys of the relations it reads (tables' primary keys,
//! keyed stages' keys) carried through joins — dropping a relation whose key is equated to
//! columns of another (a many-to-one join) — as the output columns that hold them (delta
//! planning).

use super::ast::{as_marker, folded};
use super::cut::conjuncts;
use super::scope::{self, ScopeItem};
use sqlparser::ast::{
    BinaryOperator, Expr, JoinOperator, Select, SelectItem, SelectItemQualifiedWildcardKind,
    SetExpr, TableFactor, TableWithJoins,
};

/// A column of a FROM item: (item index in the scope, column name).
type ItemColumn = (usize, String);

/// What keys.rs needs of the stage's occurrences.
pub struct KeyContext<'a> {
    /// The columns of occurrence `i`.
    pub columns: &'a dyn Fn(usize) -> Vec<String>,
    /// A key of occurrence `i`, as its column names.
    pub key: &'a dyn Fn(usize) -> Option<Vec<String>>,
}

/// The output columns of `select` that form a key of its rows, if there are such.
pub fn select_key(select: &Select, ctx: &KeyContext) -> Option<Vec<String>> {
    // A FULL JOIN pads both sides: a row padded from each side can carry the same NULL key (a
    // NULL group key on the left and one on the right), so its keys make no key of the result.
    if select.from.iter().any(has_full_join) {
        return None;
    }
    let scope = scope::items(select, ctx.columns);
    // The flattened FROM items and their keys.
    let mut factors: Vec<&TableFactor> = Vec::new();
    for table in &select.from {
        flatten(table, &mut factors);
    }
    if factors.len() != scope.len() {
        return None;
    }
    let mut keys: Vec<Option<Vec<String>>> = Vec::new();
    for factor in &factors {
        keys.push(factor_key(factor, ctx));
    }
    if keys.iter().any(Option::is_none) {
        return None;
    }
    let keys: Vec<Vec<String>> = keys.into_iter().map(Option::unwrap).collect();
    let equalities = equalities(select, &scope);
    // Drop a relation whose whole key is equated to columns of relations still kept.
    let mut kept: Vec<bool> = vec![true; keys.len()];
    for x in 0..keys.len() {
        let determined = keys[x].iter().all(|column| {
            equalities.iter().any(|(a, b, nullable_only)| {
                let (mine, other) = if a.0 == x && &a.1 == column {
                    (a, b)
                } else if b.0 == x && &b.1 == column && !nullable_only {
                    (b, a)
                } else {
                    return false;
                };
                let _ = mine;
                other.0 != x && kept[other.0]
            })
        });
        if determined && !keys[x].is_empty() {
            kept[x] = false;
        }
    }
    let needed: Vec<ItemColumn> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| kept[*i])
        .flat_map(|(i, key)| key.iter().map(move |c| (i, c.clone())))
        .collect();
    output_names_of(select, &scope, &needed)
}

/// The FROM items of a join tree, in order.
fn flatten<'a>(table: &'a TableWithJoins, out: &mut Vec<&'a TableFactor>) {
    flatten_factor(&table.relation, out);
    for join in &table.joins {
        flatten_factor(&join.relation, out);
    }
}

fn flatten_factor<'a>(factor: &'a TableFactor, out: &mut Vec<&'a TableFactor>) {
    match factor {
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => flatten(table_with_joins, out),
        other => out.push(other),
    }
}

/// A key of one FROM item as its own column names.
fn factor_key(factor: &TableFactor, ctx: &KeyContext) -> Option<Vec<String>> {
    if let Some((index, alias)) = as_marker(factor) {
        let key = (ctx.key)(index)?;
        // A column list in the alias renames the columns.
        let Some(alias) = alias.filter(|a| !a.columns.is_empty()) else {
            return Some(key);
        };
        let original = (ctx.columns)(index);
        return key
            .iter()
            .map(|k| {
                let position = original.iter().position(|c| c == k)?;
                Some(
                    alias
                        .columns
                        .get(position)
                        .map(|c| folded(&c.name))
                        .unwrap_or_else(|| k.clone()),
                )
            })
            .collect();
    }
    match factor {
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            let SetExpr::Select(select) = subquery.body.as_ref() else {
                return None;
            };
            let key = select_key(select, ctx)?;
            let names = scope::output_names(subquery, ctx.columns);
            match alias.as_ref().filter(|a| !a.columns.is_empty()) {
                None => Some(key),
                Some(alias) => key
                    .iter()
                    .map(|k| {
                        let position = names.iter().position(|n| n == k)?;
                        Some(
                            alias
                                .columns
                                .get(position)
                                .map(|c| folded(&c.name))
                                .unwrap_or_else(|| k.clone()),
                        )
                    })
                    .collect(),
            }
        }
        _ => None,
    }
}

/// Column equalities of inner joins and WHERE (either side may be dropped), and of LEFT / RIGHT
/// joins (only the NULL-padded side's column may be determined by the other: the third field
/// says the first column is the padded one's and the pair holds in that direction only).
fn equalities(select: &Select, scope: &[ScopeItem]) -> Vec<(ItemColumn, ItemColumn, bool)> {
    let mut out = Vec::new();
    let mut add = |cond: &Expr, padded: Option<&[usize]>| {
        add_equalities(cond, padded, scope, &mut out);
    };
    if let Some(selection) = &select.selection {
        add(selection, None);
    }
    let mut position = 0usize;
    for table in &select.from {
        let mut factors = Vec::new();
        flatten_factor(&table.relation, &mut factors);
        let mut seen = factors.len();
        for join in &table.joins {
            let mut joined = Vec::new();
            flatten_factor(&join.relation, &mut joined);
            let range: Vec<usize> = (position + seen..position + seen + joined.len()).collect();
            match &join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => {
                    if let sqlparser::ast::JoinConstraint::On(on) = c {
                        add(on, None);
                    }
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => {
                    if let sqlparser::ast::JoinConstraint::On(on) = c {
                        add(on, Some(&range));
                    }
                }
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => {
                    if let sqlparser::ast::JoinConstraint::On(on) = c {
                        let before: Vec<usize> = (position..position + seen).collect();
                        add(on, Some(&before));
                    }
                }
                _ => {}
            }
            seen += joined.len();
        }
        position += seen;
    }
    out
}

/// The column equalities among the conjuncts of `cond` added to `out`; with `padded` (the
/// NULL-padded side's items) only those from a padded column to one of the other side.
fn add_equalities(
    cond: &Expr,
    padded: Option<&[usize]>,
    scope: &[ScopeItem],
    out: &mut Vec<(ItemColumn, ItemColumn, bool)>,
) {
    for c in conjuncts(cond.clone()) {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = &c
        {
            let (Some(a), Some(b)) = (item_column(left, scope), item_column(right, scope)) else {
                continue;
            };
            match padded {
                None => out.push((a, b, false)),
                Some(padded) => {
                    if padded.contains(&a.0) && !padded.contains(&b.0) {
                        out.push((a, b, true));
                    } else if padded.contains(&b.0) && !padded.contains(&a.0) {
                        out.push((b, a, true));
                    }
                }
            }
        }
    }
}

/// The scope item and column a column reference names.
fn item_column(e: &Expr, scope: &[ScopeItem]) -> Option<ItemColumn> {
    let item = scope::resolve(e, scope)?;
    let column = match e {
        Expr::Identifier(i) => folded(i),
        Expr::CompoundIdentifier(parts) => folded(parts.last()?),
        _ => return None,
    };
    Some((item, column))
}

/// Whether `table` has a FULL JOIN, also inside parenthesized joins.
fn has_full_join(table: &TableWithJoins) -> bool {
    let nested = |factor: &TableFactor| match factor {
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => has_full_join(table_with_joins),
        _ => false,
    };
    nested(&table.relation)
        || table
            .joins
            .iter()
            .any(|j| matches!(j.join_operator, JoinOperator::FullOuter(_)) || nested(&j.relation))
}

/// The output names holding `needed` columns (plain column references, `*` or `t.*`), if all are
/// output.
fn output_names_of(
    select: &Select,
    scope: &[ScopeItem],
    needed: &[ItemColumn],
) -> Option<Vec<String>> {
    let mut found: Vec<Option<String>> = vec![None; needed.len()];
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                let Some(item_index) = scope::resolve(e, scope) else {
                    continue;
                };
                let column = match e {
                    Expr::Identifier(i) => folded(i),
                    Expr::CompoundIdentifier(parts) => folded(parts.last()?),
                    _ => continue,
                };
                let name = match item {
                    SelectItem::ExprWithAlias { alias, .. } => folded(alias),
                    _ => column.clone(),
                };
                if let Some(p) = needed
                    .iter()
                    .position(|n| n.0 == item_index && n.1 == column)
                {
                    found[p].get_or_insert(name);
                }
            }
            SelectItem::Wildcard(_) => {
                for (p, n) in needed.iter().enumerate() {
                    found[p].get_or_insert(n.1.clone());
                }
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _) => {
                let alias = name.0.last().and_then(|p| p.as_ident()).map(folded);
                for (p, n) in needed.iter().enumerate() {
                    if Some(&scope[n.0].alias) == alias.as_ref() {
                        found[p].get_or_insert(n.1.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let names: Option<Vec<String>> = found.into_iter().collect();
    let names = names?;
    // Two key columns under one output name cannot be told apart.
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    (unique.len() == names.len()).then_some(names)
}
