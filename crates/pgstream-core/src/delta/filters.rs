//! Dependent filters (outer-join anti-joins, EXISTS / IN subqueries in WHERE) as expressions:
//! their value now, their value before the changes (counted from the relation and its change
//! rows), and which rows a change of their relation can affect (delta planning).

use super::ast::{
    and, column_ref, expr_with, folded, generated_expr, not, or, query_of, realias, select_from,
    unparenthesized,
};
use super::blocks::{Filter, FilterKind};
use super::cut::conjuncts;
use super::ir::Role;
use sqlparser::ast::{
    BinaryOperator, Expr, InTarget, LimitClause, Offset, OffsetRows, SelectItem, SetExpr,
    TableFactor,
};

/// Renders a filter's relation read as a role (keeping its alias).
pub type RelationAs<'a> = &'a dyn Fn(&TableFactor, Role) -> TableFactor;

fn cond(filter: &Filter) -> Expr {
    filter
        .cond
        .clone()
        .unwrap_or_else(|| generated_expr("true"))
}

/// The condition that matches rows of the filter's relation to the outer row, beyond `cond`.
fn matching(filter: &Filter) -> Option<Expr> {
    match &filter.kind {
        FilterKind::In { lhs, item } | FilterKind::NotIn { lhs, item } => Some(expr_with(
            "(__pgs_hole_0__) = (__pgs_hole_1__)",
            &[item, lhs],
        )),
        _ => None,
    }
}

fn with_extra(base: Expr, extra: Option<Expr>) -> Expr {
    match extra {
        Some(extra) => and(base, extra),
        None => base,
    }
}

/// `(SELECT count(*) FROM <relation as role> WHERE cond [AND extra])`.
fn count(filter: &Filter, role: Role, extra: Option<Expr>, relation_as: RelationAs) -> Expr {
    let projection = vec![SelectItem::UnnamedExpr(generated_expr("count(*)"))];
    let select = select_from(
        projection,
        relation_as(&filter.relation, role),
        Some(with_extra(cond(filter), extra)),
    );
    Expr::Subquery(Box::new(query_of(select)))
}

/// Whether a row matched before the changes: the count before (now, minus inserted, plus
/// deleted rows) above zero, that is, more rows matching now than `inserted - deleted` change
/// rows. Asked with EXISTS and that excess as OFFSET, the relation as it is now is read only up
/// to the first row past it (a customer's 15 orders: one or two), not counted in full.
fn matched_before(filter: &Filter, extra: Option<Expr>, relation_as: RelationAs) -> Expr {
    let excess = || {
        expr_with(
            "(__pgs_hole_0__ - __pgs_hole_1__)",
            &[
                &count(filter, Role::Inserted, extra.clone(), relation_as),
                &count(filter, Role::Deleted, extra.clone(), relation_as),
            ],
        )
    };
    let mut now = query_of(select_from(
        vec![SelectItem::UnnamedExpr(generated_expr("1"))],
        relation_as(&filter.relation, Role::Current),
        Some(with_extra(cond(filter), extra.clone())),
    ));
    now.limit_clause = Some(LimitClause::LimitOffset {
        limit: None,
        offset: Some(Offset {
            value: expr_with("GREATEST(__pgs_hole_0__, 0)", &[&excess()]),
            rows: OffsetRows::None,
        }),
        limit_by: Vec::new(),
    });
    let exists = Expr::Exists {
        subquery: Box::new(now),
        negated: false,
    };
    expr_with(
        "(__pgs_hole_0__ < 0 OR __pgs_hole_1__)",
        &[&excess(), &exists],
    )
}

/// `SELECT <item> FROM <relation now> WHERE cond` as a subquery.
fn now_subquery(
    filter: &Filter,
    item: Expr,
    relation_as: RelationAs,
) -> Box<sqlparser::ast::Query> {
    Box::new(query_of(select_from(
        vec![SelectItem::UnnamedExpr(item)],
        relation_as(&filter.relation, Role::Current),
        Some(cond(filter)),
    )))
}

/// The filter on its relation as it is now.
pub fn now(filter: &Filter, relation_as: RelationAs) -> Expr {
    match &filter.kind {
        FilterKind::Exists => Expr::Exists {
            subquery: now_subquery(filter, generated_expr("1"), relation_as),
            negated: false,
        },
        FilterKind::NotExists => Expr::Exists {
            subquery: now_subquery(filter, generated_expr("1"), relation_as),
            negated: true,
        },
        FilterKind::In { lhs, item } => Expr::In {
            expr: Box::new(Expr::Nested(Box::new(lhs.clone()))),
            target: sqlparser::ast::InTarget::Subquery(now_subquery(
                filter,
                item.clone(),
                relation_as,
            )),
            negated: false,
            global: false,
        },
        FilterKind::NotIn { lhs, item } => Expr::In {
            expr: Box::new(Expr::Nested(Box::new(lhs.clone()))),
            target: sqlparser::ast::InTarget::Subquery(now_subquery(
                filter,
                item.clone(),
                relation_as,
            )),
            negated: true,
            global: false,
        },
    }
}

/// The filter on its relation as it was at the last refresh.
pub fn before(filter: &Filter, relation_as: RelationAs) -> Expr {
    let matches = matched_before(filter, matching(filter), relation_as);
    match &filter.kind {
        FilterKind::Exists | FilterKind::In { .. } => matches,
        FilterKind::NotExists => not(matches),
        FilterKind::NotIn { lhs, item } => {
            let any = matched_before(filter, None, relation_as);
            let nulls = matched_before(
                filter,
                Some(expr_with("(__pgs_hole_0__) IS NULL", &[item])),
                relation_as,
            );
            expr_with(
                "(NOT __pgs_hole_0__ OR ((__pgs_hole_1__) IS NOT NULL AND NOT __pgs_hole_2__ AND NOT __pgs_hole_3__))",
                &[&any, lhs, &matches, &nulls],
            )
        }
    }
}

/// Rows whose filter value a change of its relation can have flipped: those matching a changed
/// row (for NOT IN also any outer row when a NULL or the first/last row came or went).
pub fn touched(filter: &Filter, relation_as: RelationAs) -> Expr {
    let extra = match &filter.kind {
        FilterKind::NotIn { lhs, item } => Some(expr_with(
            "((__pgs_hole_0__) = (__pgs_hole_1__) OR (__pgs_hole_0__) IS NULL OR (__pgs_hole_1__) IS NULL)",
            &[item, lhs],
        )),
        _ => matching(filter),
    };
    Expr::Exists {
        subquery: Box::new(query_of(select_from(
            vec![SelectItem::UnnamedExpr(generated_expr("1"))],
            relation_as(&filter.relation, Role::Changed),
            Some(with_extra(cond(filter), extra)),
        ))),
        negated: false,
    }
}

/// The names of the columns `relation` (a change rows relation as rendered) shows, when they can
/// be read from its text: a subquery selecting plain columns, renamed from the first on by a
/// column list on its alias (which may name fewer columns than there are).
fn shown_columns(relation: &TableFactor) -> Option<Vec<String>> {
    let TableFactor::Derived {
        alias, subquery, ..
    } = relation
    else {
        return None;
    };
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return None;
    };
    let mut names: Vec<String> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(Expr::Identifier(c)) => Some(folded(c)),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts.last().map(folded),
            SelectItem::ExprWithAlias { alias, .. } => Some(folded(alias)),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let renamed = alias
        .as_ref()
        .map(|a| a.columns.as_slice())
        .unwrap_or_default();
    if renamed.len() > names.len() {
        return None;
    }
    for (name, column) in names.iter_mut().zip(renamed) {
        *name = folded(&column.name);
    }
    Some(names)
}

/// The correlation of `filter` as equalities between a column of its relation and a column of
/// the outer row: (the relation's side as the driver's subquery reads it, the outer side),
/// sorted. A name under the relation's alias is its column (read as `__pgs_drv.<column>`), one
/// under another alias the outer row's. A bare name (other than the alias: a whole row) is the
/// relation's column when `shown` (the columns its change rows show, as the filter reads them)
/// has it and the outer row's otherwise, as PostgreSQL resolves it; with `shown` unknown it
/// is taken for the relation's side and kept bare, resolving in the driver as in the filter,
/// and two bare names are left alone. For IN also the item and its left-hand side.
fn correlation(filter: &Filter, shown: Option<&[String]>) -> Vec<(Expr, Expr)> {
    // (Unknown for a name with other than ASCII letters: PostgreSQL folds only A-Z.)
    let is_shown = |c: &sqlparser::ast::Ident| {
        shown
            .filter(|_| c.value.is_ascii())
            .map(|s| s.contains(&folded(c)))
    };
    let own = |e: &Expr| match e {
        Expr::Identifier(c) if folded(c) != filter.alias => match is_shown(c) {
            Some(true) => Some(column_ref("__pgs_drv", &folded(c))),
            Some(false) => None,
            None => Some(e.clone()),
        },
        Expr::CompoundIdentifier(parts)
            if parts.len() == 2 && folded(&parts[0]) == filter.alias =>
        {
            Some(column_ref("__pgs_drv", &folded(&parts[1])))
        }
        _ => None,
    };
    let outer = |e: &Expr| match e {
        Expr::CompoundIdentifier(parts) => parts.len() == 2 && folded(&parts[0]) != filter.alias,
        Expr::Identifier(c) => folded(c) != filter.alias && is_shown(c) == Some(false),
        _ => false,
    };
    let mut pairs: Vec<(Expr, Expr)> = Vec::new();
    for part in filter.cond.clone().map(conjuncts).unwrap_or_default() {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = unparenthesized(&part)
        {
            match (own(left), own(right)) {
                (Some(column), _) if outer(right) => pairs.push((column, (**right).clone())),
                (_, Some(column)) if outer(left) => pairs.push((column, (**left).clone())),
                _ => {}
            }
        }
    }
    if let FilterKind::In { lhs, item } = &filter.kind {
        if let Some(column) = own(item) {
            pairs.push((column, lhs.clone()));
        }
    }
    pairs.sort_by_key(|(inner, outer)| (inner.to_string(), outer.to_string()));
    pairs.dedup_by_key(|(inner, outer)| (inner.to_string(), outer.to_string()));
    pairs
}

/// `(outer, …) IN (SELECT column, … FROM <changed rows of the relation>)`: what every outer row
/// that [`touched`] finds meets, from the filter's [`correlation`] (None without one). As a
/// conjunct of its own, PostgreSQL can drive such a term from the change rows' keys instead of
/// reading the whole outer relation and looking for change rows row by row. The relation is
/// named `__pgs_drv`, so that filters correlated alike on one relation give the same condition.
fn driver(filter: &Filter, relation_as: RelationAs) -> Option<Expr> {
    if matches!(filter.kind, FilterKind::NotIn { .. }) {
        return None;
    }
    let mut relation = relation_as(&filter.relation, Role::Changed);
    let pairs = correlation(filter, shown_columns(&relation).as_deref());
    if pairs.is_empty() {
        return None;
    }
    realias(&mut relation, "__pgs_drv");
    let (inner, outer): (Vec<Expr>, Vec<Expr>) = pairs.into_iter().unzip();
    let projection = inner.into_iter().map(SelectItem::UnnamedExpr).collect();
    Some(Expr::In {
        expr: Box::new(match outer.len() {
            1 => Expr::Nested(Box::new(outer[0].clone())),
            _ => Expr::Tuple(outer),
        }),
        target: InTarget::Subquery(Box::new(query_of(select_from(projection, relation, None)))),
        negated: false,
        global: false,
    })
}

/// The block's filters combined: now, before, and the rows a change may have touched.
pub struct Combined {
    pub now: Expr,
    pub before: Expr,
    /// The rows a change may have touched (none when no filter's relation changed, so before
    /// = now) as disjoint conditions, each led by a condition PostgreSQL can join on
    /// ([`driver`]) where every changed filter has one: one when the drivers are the same;
    /// otherwise one per changed filter, the rows it touches that no filter before it touches (an OR of the INs would read the whole outer relation;
    /// one IN over a UNION ALL of the change rows would compare by the union's type, which may
    /// not be either filter's: citext and text, char(n) and varchar).
    pub touched_parts: Vec<Expr>,
}

/// Combines `filters`; `changed(occurrence)` says whether an occurrence may have changed.
pub fn combine(
    filters: &[Filter],
    changed: &dyn Fn(usize) -> bool,
    relation_as: RelationAs,
) -> Combined {
    let all = |parts: Vec<Expr>| {
        let joined = parts.into_iter().reduce(and).expect("filters");
        expr_with("COALESCE(__pgs_hole_0__, false)", &[&joined])
    };
    let now_sql = all(filters.iter().map(|f| now(f, relation_as)).collect());
    // Each changed filter's touched rows, in the order of `filters`.
    let touched_by: Vec<Option<Expr>> = filters
        .iter()
        .map(|f| changed(f.occurrence).then(|| touched(f, relation_as)))
        .collect();
    // A row no change row touches has the filter value it has now: the counts that give the
    // value before (a count of the whole matching set, where NOT EXISTS / EXISTS stop at the
    // first match) are only taken for the rows a change touched.
    let before_sql = all(filters
        .iter()
        .zip(&touched_by)
        .map(|(f, touched)| match touched {
            Some(touched) => expr_with(
                "CASE WHEN __pgs_hole_0__ THEN __pgs_hole_1__ ELSE __pgs_hole_2__ END",
                &[touched, &before(f, relation_as), &now(f, relation_as)],
            ),
            None => now(f, relation_as),
        })
        .collect());
    let changed_filters: Vec<&Filter> = filters.iter().filter(|f| changed(f.occurrence)).collect();
    let touched_each: Vec<Expr> = touched_by.into_iter().flatten().collect();
    let drivers: Option<Vec<Expr>> = changed_filters
        .iter()
        .map(|f| driver(f, relation_as))
        .collect();
    Combined {
        now: now_sql,
        before: before_sql,
        touched_parts: disjoint_parts(&touched_each, drivers),
    }
}

/// The rows of `touched` (each changed filter's touched rows; their OR) as the
/// [`Combined::touched_parts`], given each filter's driver (None when one has none).
fn disjoint_parts(touched: &[Expr], drivers: Option<Vec<Expr>>) -> Vec<Expr> {
    let Some(any) = touched.iter().cloned().reduce(or) else {
        return vec![];
    };
    let Some(drivers) = drivers else {
        return vec![any];
    };
    let first = drivers[0].to_string();
    if drivers.iter().all(|d| d.to_string() == first) {
        return vec![and(drivers[0].clone(), any)];
    }
    drivers
        .into_iter()
        .zip(touched)
        .enumerate()
        .map(|(i, (driver, touched_here))| {
            let part = and(driver, touched_here.clone());
            match touched[..i].iter().cloned().reduce(or) {
                Some(earlier) => and(part, not(earlier)),
                None => part,
            }
        })
        .collect()
}
