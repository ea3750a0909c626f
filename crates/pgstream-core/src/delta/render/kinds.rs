//! Rendering one stage by its kind: grouped (algebraic or recomputed groups), DISTINCT / UNION
//! (recomputed keys), linear (signed rows), top-k (recomputed) (delta planning).

use super::*;

/// What rendering one stage needs: where it stands and how its inputs are read.
#[derive(Clone, Copy)]
pub(super) struct StageContext<'a> {
    pub index: StageIndex,
    pub draft: &'a Draft,
    pub catalog: &'a dyn Catalog,
    pub request: &'a PlanRequest<'a>,
    pub reader: &'a Reader<'a>,
    pub describing: &'a Reader<'a>,
    pub occurrence_columns: &'a dyn Fn(usize) -> Vec<String>,
    pub occurrence_key: &'a dyn Fn(usize) -> Option<Vec<String>>,
    pub changed: bool,
}

/// A stage rendered by its kind.
pub(super) struct Rendered {
    pub kind: StageKind,
    pub identity: Identity,
    pub algebraic: Option<AlgebraicPlan>,
    pub refresh: StageRefresh,
    /// An index its input stage gets (a top-k reads it in order).
    pub order_index: Option<(StageIndex, Vec<IndexColumn>)>,
}

/// Renders a stage by its kind (a top-k's and a grouped stage's query change in place, a
/// grouped stage may add hidden key columns).
pub(super) fn by_kind(
    ctx: &StageContext,
    query: &mut Query,
    columns: &mut Vec<String>,
) -> Result<Rendered, Unsupported> {
    match &ctx.draft.kind {
        DraftKind::Grouped => grouped(ctx, query, columns),
        DraftKind::Distinct => distinct(ctx, query, columns),
        DraftKind::Linear => linear(ctx, query),
        DraftKind::TopK {
            order_by,
            limit,
            offset,
        } => top_k(ctx, query, order_by, limit, offset.as_deref()),
    }
}

/// A grouped stage: keys (hidden columns for keys not in its list), algebraic state when
/// every aggregate allows, else the touched groups recomputed.
pub(super) fn grouped(
    ctx: &StageContext,
    query: &mut Query,
    columns: &mut Vec<String>,
) -> Result<Rendered, Unsupported> {
    let StageContext {
        draft,
        catalog,
        request,
        occurrence_columns,
        changed,
        ..
    } = *ctx;
    let visible = columns.len();
    let SetExpr::Select(select) = query.body.as_mut() else {
        unreachable!("grouped stages are one SELECT")
    };
    let keys = group_keys(select, &draft.location)?;
    let scope_items = scope::items(select, &occurrence_columns);
    let same_column = |a: &Expr, b: &Expr| same_column(a, b, &scope_items);
    let key_columns = key_columns(select, columns, &keys, &output_exprs(select), &same_column);
    // Every column of the stage, the hidden keys added just now included: the algebraic plan
    // computes each of them from the state.
    let outputs = output_exprs(select);
    let calls = stage_calls(select, visible, catalog);
    let blocks = blocks::blocks(select, catalog).map_err(|e| e.at(&draft.location))?;
    let stage = GroupedStage {
        keys: &keys,
        outputs: &outputs,
        having: select.having.as_ref(),
        calls: &calls,
        same_column: &same_column,
        call_types: &call_types(select, &calls, ctx.describing, catalog),
    };
    let algebraic_plan = algebraic_plan(ctx, select, &stage, &blocks);
    let refresh = if !changed {
        StageRefresh::Unchanged
    } else if let Some(plan) = &algebraic_plan {
        StageRefresh::Algebraic(Box::new(plan.clone()))
    } else if !request.render_terms {
        StageRefresh::Recompute
    } else {
        recomputed_groups(ctx, select, &keys, &blocks)?
    };
    Ok(Rendered {
        kind: StageKind::Aggregate {
            algebraic: algebraic_plan.is_some(),
        },
        identity: Identity::Key(key_columns),
        algebraic: algebraic_plan,
        refresh,
        order_index: None,
    })
}

/// The select-list expressions of a grouped stage, in output order.
fn output_exprs(select: &Select) -> Vec<Expr> {
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
            _ => generated_expr("NULL"),
        })
        .collect()
}

/// The output columns holding the keys; keys not in the select list become hidden columns
/// `__pgs_g<i>` added to `select` and `columns` (inner stages only: the root's keys are
/// visible, see cut).
fn key_columns(
    select: &mut Select,
    columns: &mut Vec<String>,
    keys: &[Expr],
    outputs: &[Expr],
    same_column: &dyn Fn(&Expr, &Expr) -> bool,
) -> Vec<String> {
    let mut key_columns = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        match outputs.iter().position(|o| o == key || same_column(o, key)) {
            Some(p) => key_columns.push(columns[p].clone()),
            None => {
                let name = format!("__pgs_g{i}");
                select.projection.push(item(key.clone(), &name));
                columns.push(name.clone());
                key_columns.push(name);
            }
        }
    }
    key_columns
}

/// The aggregate calls of the `visible` select list, then those only in HAVING.
fn stage_calls(select: &Select, visible: usize, catalog: &dyn Catalog) -> Vec<Expr> {
    let mut calls = aggregate_calls(&select.projection[..visible].to_vec(), catalog);
    for c in aggregate_calls(&select.having, catalog) {
        if !calls.contains(&c) {
            calls.push(c);
        }
    }
    calls
}

/// The grouped stage's algebraic plan, when its aggregates allow (without its signed input
/// rendered when terms are not).
fn algebraic_plan(
    ctx: &StageContext,
    select: &Select,
    stage: &GroupedStage,
    blocks: &[Block],
) -> Option<AlgebraicPlan> {
    let reader = ctx.reader;
    let current_input = |projection: &[String], restriction: Option<&str>| {
        current_input_sql(select, reader, projection, restriction)
    };
    let rescan = ctx.request.names.rescan(ctx.index);
    if ctx.request.render_terms {
        let signed_input =
            |projection: &[String]| signed_input_sql(select, blocks, reader, projection);
        algebraic::plan(stage, &signed_input, &current_input, &rescan)
    } else {
        // Only deciding: whether it would be algebraic, without rendering terms.
        algebraic::plan(stage, &|_| Some(String::new()), &current_input, &rescan)
    }
}

/// The signed change of a grouped stage's input for `projection` (`__pgs_w`, then the
/// projection), over its blocks; None when a block's terms cannot be rendered.
fn signed_input_sql(
    select: &Select,
    blocks: &[Block],
    reader: &Reader,
    projection: &[String],
) -> Option<String> {
    let parsed = generated_select(&format!("SELECT {}", projection.join(", "))).projection;
    let mut parts = Vec::new();
    for block in blocks {
        let mut input = block.clone();
        input.select.projection = parsed.clone();
        input.select.group_by = sqlparser::ast::GroupByExpr::Expressions(vec![], vec![]);
        input.select.having = None;
        for (coefficient, term) in reader.signed_terms(&input, &[select]).ok()? {
            parts.push(format!(
                "SELECT ({coefficient})::pg_catalog.int4 AS __pgs_w, __pgs_q.* FROM ({}) __pgs_q",
                query_of(term)
            ));
        }
    }
    if parts.is_empty() {
        let mut input = select.clone();
        input.projection = parsed;
        input.group_by = sqlparser::ast::GroupByExpr::Expressions(vec![], vec![]);
        input.having = None;
        reader.substitute(&mut input, &[], &[]);
        parts.push(format!(
            "SELECT 0::pg_catalog.int4 AS __pgs_w, __pgs_q.* FROM ({}) __pgs_q WHERE false",
            query_of(input)
        ));
    }
    Some(parts.join("\nUNION ALL\n"))
}

/// A grouped stage's input read now for `projection`, with an optional `restriction`.
fn current_input_sql(
    select: &Select,
    reader: &Reader,
    projection: &[String],
    restriction: Option<&str>,
) -> String {
    let mut input = select.clone();
    input.projection = generated_select(&format!("SELECT {}", projection.join(", "))).projection;
    input.having = None;
    if let Some(r) = restriction {
        restrict(&mut input, generated_expr(r));
    }
    reader.substitute(&mut input, &[], &[]);
    query_of(input).to_string()
}

/// The refresh of a grouped stage that is not algebraic: the groups the changes touched, and
/// their rows recomputed.
fn recomputed_groups(
    ctx: &StageContext,
    select: &Select,
    keys: &[Expr],
    blocks: &[Block],
) -> Result<StageRefresh, Unsupported> {
    let reader = ctx.reader;
    let mut parts = Vec::new();
    for block in blocks {
        let mut input = block.clone();
        input.select.projection = keys
            .iter()
            .enumerate()
            .map(|(i, k)| item(k.clone(), &format!("__pgs_k{i}")))
            .collect();
        if keys.is_empty() {
            input.select.projection = vec![item(generated_expr("0"), "__pgs_k0")];
        }
        input.select.group_by = sqlparser::ast::GroupByExpr::Expressions(vec![], vec![]);
        input.select.having = None;
        for term in reader
            .touching_terms(&input, &[select])
            .map_err(|e| e.at(&ctx.draft.location))?
        {
            parts.push(query_of(term).to_string());
        }
    }
    let affected_sql = union_or_empty(parts, keys.len().max(1));
    let affected = ctx.request.names.affected(ctx.index);
    Ok(StageRefresh::Keys {
        affected_sql,
        fresh_sql: group_rows(select, reader, keys, &affected),
    })
}

/// The rows now of the groups in work table `affected` (all of them, when any, without keys).
fn group_rows(select: &Select, reader: &Reader, keys: &[Expr], affected: &str) -> String {
    if keys.is_empty() {
        let mut sel = select.clone();
        reader.substitute(&mut sel, &[], &[]);
        return format!(
            "{} WHERE EXISTS (SELECT 1 FROM {affected})",
            wrap(&query_of(sel))
        );
    }
    let branch = |restriction: Expr| {
        let mut sel = select.clone();
        restrict(&mut sel, restriction);
        reader.substitute(&mut sel, &[], &[]);
        query_of(sel).to_string()
    };
    let (non_null, null) = key_restrictions(keys, affected);
    format!("{}\nUNION ALL\n{}", branch(non_null), branch(null))
}

/// A DISTINCT or UNION stage: keyed by all its columns, the touched keys recomputed.
pub(super) fn distinct(
    ctx: &StageContext,
    query: &Query,
    columns: &[String],
) -> Result<Rendered, Unsupported> {
    let StageContext {
        index,
        request,
        reader,
        changed,
        ..
    } = *ctx;
    let kind = StageKind::Distinct;
    let identity = Identity::Key(columns.to_vec());
    let refresh = if !changed {
        StageRefresh::Unchanged
    } else if !request.render_terms {
        StageRefresh::Recompute
    } else {
        let affected_sql = touched_rows(ctx, query, columns)?;
        let mut full = query.clone();
        reader.substitute(&mut full, &[], &[]);
        let key_exprs: Vec<Expr> = columns
            .iter()
            .map(|c| generated_expr(&format!("__pgs_q.{}", quote_ident(c))))
            .collect();
        let (non_null, null) = key_restrictions(&key_exprs, &request.names.affected(index));
        let outer = |restriction: Expr| {
            format!(
                "SELECT __pgs_q.* FROM ({full}) __pgs_q ({}) WHERE {restriction}",
                quoted_list(columns)
            )
        };
        StageRefresh::Keys {
            affected_sql,
            fresh_sql: format!("{}\nUNION ALL\n{}", outer(non_null), outer(null)),
        }
    };
    Ok(Rendered {
        kind,
        identity,
        algebraic: None,
        refresh,
        order_index: None,
    })
}

/// The rows (as keys `__pgs_k<i>`, one per column) a DISTINCT or UNION stage's changes
/// touched, over the blocks of its branches.
fn touched_rows(
    ctx: &StageContext,
    query: &Query,
    columns: &[String],
) -> Result<String, Unsupported> {
    let located = |e: Unsupported| e.at(&ctx.draft.location);
    let mut parts = Vec::new();
    for leaf in leaves(&query.body).into_iter().flatten() {
        let mut plain = leaf.clone();
        plain.distinct = None;
        for block in blocks::blocks(&plain, ctx.catalog).map_err(located)? {
            for term in ctx.reader.touching_terms(&block, &[]).map_err(located)? {
                let names: Vec<String> = (0..columns.len())
                    .map(|i| format!("__pgs_q.{} AS __pgs_k{i}", quote_ident(&columns[i])))
                    .collect();
                parts.push(format!(
                    "SELECT {} FROM ({}) __pgs_q ({})",
                    names.join(", "),
                    query_of(term),
                    quoted_list(columns)
                ));
            }
        }
    }
    Ok(union_or_empty(parts, columns.len()))
}

/// Column names quoted and listed: `a, "B"`.
fn quoted_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A linear stage: keyed by its sources' keys when they show, signed rows of its blocks.
pub(super) fn linear(ctx: &StageContext, query: &Query) -> Result<Rendered, Unsupported> {
    let StageContext {
        draft,
        catalog,
        request,
        reader,
        occurrence_columns,
        occurrence_key,
        changed,
        ..
    } = *ctx;
    let located = |e: Unsupported| e.at(&draft.location);
    let kind = StageKind::Linear;
    let identity = match query.body.as_ref() {
        SetExpr::Select(select) => {
            let ctx = KeyContext {
                columns: &occurrence_columns,
                key: &occurrence_key,
            };
            keys::select_key(select, &ctx)
                .map(Identity::Key)
                .unwrap_or(Identity::Multiset)
        }
        _ => Identity::Multiset,
    };
    let refresh = if !changed {
        StageRefresh::Unchanged
    } else if !request.render_terms {
        StageRefresh::Recompute
    } else {
        let mut parts = Vec::new();
        for leaf in leaves(&query.body).into_iter().flatten() {
            for block in blocks::blocks(leaf, catalog).map_err(located)? {
                for (coefficient, term) in reader.signed_terms(&block, &[]).map_err(located)? {
                    parts.push(format!(
                        "SELECT ({coefficient})::pg_catalog.int4 AS __pgs_w, __pgs_q::pg_catalog.text AS __pgs_t, __pgs_q.* FROM ({}) __pgs_q",
                        query_of(term)
                    ));
                }
            }
        }
        let delta_sql = if parts.is_empty() {
            let mut full = query.clone();
            reader.substitute(&mut full, &[], &[]);
            format!(
                "SELECT 0::pg_catalog.int4 AS __pgs_w, __pgs_q::pg_catalog.text AS __pgs_t, __pgs_q.* FROM ({full}) __pgs_q WHERE false"
            )
        } else {
            parts.join("\nUNION ALL\n")
        };
        StageRefresh::Signed { delta_sql }
    };
    // Blocks are checked even when not rendered: refusals surface at create.
    for leaf in leaves(&query.body).into_iter().flatten() {
        blocks::blocks(leaf, catalog).map_err(located)?;
    }
    Ok(Rendered {
        kind,
        identity,
        algebraic: None,
        refresh,
        order_index: None,
    })
}

/// A top-k over its input stage: recomputed when that changed; the input indexed in order.
pub(super) fn top_k(
    ctx: &StageContext,
    query: &mut Query,
    order_by: &[sqlparser::ast::OrderByExpr],
    limit: &Expr,
    offset: Option<&Expr>,
) -> Result<Rendered, Unsupported> {
    let StageContext { draft, changed, .. } = *ctx;
    let kind = StageKind::TopK;
    let identity = Identity::Multiset;
    let refresh = if changed {
        StageRefresh::Recompute
    } else {
        StageRefresh::Unchanged
    };
    let mut ordered = query.clone();
    ordered.order_by = Some(sqlparser::ast::OrderBy {
        kind: sqlparser::ast::OrderByKind::Expressions(order_by.to_vec()),
        interpolate: None,
    });
    ordered.limit_clause = Some(sqlparser::ast::LimitClause::LimitOffset {
        limit: Some(limit.clone()),
        offset: offset.cloned().map(|value| sqlparser::ast::Offset {
            value,
            rows: sqlparser::ast::OffsetRows::None,
        }),
        limit_by: vec![],
    });
    *query = ordered;
    // The input stage gets an index in ORDER BY order.
    let mut order_index = None;
    if let Some(Input::Stage(input)) = draft.inputs.first() {
        let index_columns = order_by
            .iter()
            .filter_map(|o| match &o.expr {
                Expr::CompoundIdentifier(parts) => {
                    let descending =
                        matches!(o.options.sort, Some(sqlparser::ast::OrderBySort::Desc));
                    Some(IndexColumn {
                        name: folded(parts.last()?),
                        descending,
                        nulls_first: o.options.nulls_first.unwrap_or(descending),
                    })
                }
                _ => None,
            })
            .collect();
        order_index = Some((*input, index_columns));
    }
    Ok(Rendered {
        kind,
        identity,
        algebraic: None,
        refresh,
        order_index,
    })
}
