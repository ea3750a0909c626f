//! Constructs no delta is computed for, refused with what they are and where they stand (the
//! CTE, view or subquery around them) (delta planning).

use super::ast::folded;
use super::ir::{Unsupported, TOP_LEVEL};
use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, Query, Select, TableFactor, Value, Visit, Visitor,
};
use std::ops::ControlFlow;

/// Where something stands: the innermost CTE, view or subquery alias around it.
pub fn location_of(aliases: &[String]) -> String {
    match aliases.last() {
        Some(alias) => format!("CTE, view or subquery \"{alias}\""),
        None => TOP_LEVEL.to_string(),
    }
}

struct ConstructCheck {
    aliases: Vec<String>,
}

impl ConstructCheck {
    fn refuse(&self, construct: impl Into<String>) -> ControlFlow<Unsupported> {
        ControlFlow::Break(Unsupported::new(construct).at(&location_of(&self.aliases)))
    }
}

impl Visitor for ConstructCheck {
    type Break = Unsupported;

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Unsupported> {
        if let TableFactor::Derived {
            alias: Some(alias), ..
        } = factor
        {
            self.aliases.push(folded(&alias.name));
        } else if let TableFactor::Derived { .. } = factor {
            self.aliases.push("(unnamed)".into());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Unsupported> {
        if matches!(factor, TableFactor::Derived { .. }) {
            self.aliases.pop();
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Unsupported> {
        if !query.locks.is_empty() {
            return self.refuse("FOR UPDATE / FOR SHARE");
        }
        if (query.limit_clause.is_some() || query.fetch.is_some())
            && query.order_by.is_none()
            && !super::ast::limits_to_no_rows(query)
        {
            return self.refuse(
                "LIMIT / OFFSET / FETCH without ORDER BY (which rows it keeps is not defined)",
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Unsupported> {
        if matches!(select.distinct, Some(Distinct::On(_))) {
            return self.refuse("DISTINCT ON");
        }
        if !select.named_window.is_empty() {
            return self.refuse("WINDOW clause (window functions)");
        }
        match &select.group_by {
            GroupByExpr::All(_) => return self.refuse("GROUP BY ALL"),
            GroupByExpr::Expressions(exprs, modifiers) => {
                let grouping_sets = exprs
                    .iter()
                    .any(|e| matches!(e, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)));
                if grouping_sets || !modifiers.is_empty() {
                    return self.refuse("GROUPING SETS / ROLLUP / CUBE");
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Unsupported> {
        match expr {
            Expr::Function(f) if f.over.is_some() => {
                self.refuse(format!("window function {}()", f.name))
            }
            Expr::Function(f) if !f.within_group.is_empty() => {
                self.refuse(format!("ordered-set aggregate {}() WITHIN GROUP", f.name))
            }
            Expr::AnyOp { right, .. } | Expr::AllOp { right, .. }
                if matches!(right.as_ref(), Expr::Subquery(_)) =>
            {
                self.refuse("ANY / ALL (subquery)")
            }
            Expr::Value(value) => match relative_date_literal(&value.value) {
                Some(word) => self.refuse(format!(
                    "the literal '{word}' (as a date or time it is read as the clock at every \
                     refresh; use a fixed date)"
                )),
                None => ControlFlow::Continue(()),
            },
            Expr::TypedString(typed) => match relative_date_literal(&typed.value.value) {
                Some(word) => self.refuse(format!(
                    "the literal '{word}' (read as the clock at every refresh; use a fixed date)"
                )),
                None => ControlFlow::Continue(()),
            },
            _ => ControlFlow::Continue(()),
        }
    }
}

/// The special date/time input a string literal is ('now', 'today', 'tomorrow', 'yesterday'):
/// PostgreSQL reads it as the clock when it becomes a date or time, at every refresh anew.
fn relative_date_literal(value: &Value) -> Option<String> {
    let text = match value {
        Value::SingleQuotedString(t) | Value::EscapedStringLiteral(t) => t,
        _ => return None,
    };
    let word = text.trim().to_ascii_lowercase();
    ["now", "today", "tomorrow", "yesterday"]
        .contains(&word.as_str())
        .then_some(word)
}

/// Refuses constructs no delta can be computed for, naming the first one found and where.
pub fn check_constructs(query: &Query) -> Result<(), Unsupported> {
    let mut check = ConstructCheck { aliases: vec![] };
    match query.visit(&mut check) {
        ControlFlow::Break(unsupported) => Err(unsupported),
        ControlFlow::Continue(()) => Ok(()),
    }
}
