//! Rendering one stage over the stages before it: what it reads and whether that changed, its
//! SQL by kind, its key checked, and the indexes it asks of the stages below (delta planning).

use super::*;

/// How a stage's inputs are read, over the stages rendered before it.
struct StageInputs<'a> {
    draft: &'a Draft,
    stages: &'a [StagePlan],
    catalog: &'a dyn Catalog,
    request: &'a PlanRequest<'a>,
}

impl StageInputs<'_> {
    /// The captured tables it reads, directly or through lower stages, and the stages it reads
    /// directly (each sorted, without repeats).
    fn tables_and_reads(&self) -> (Vec<u32>, Vec<StageIndex>) {
        let mut tables: Vec<u32> = Vec::new();
        let mut reads: Vec<StageIndex> = Vec::new();
        for input in &self.draft.inputs {
            match input {
                Input::Table(t) => tables.push(t.relid),
                Input::Stage(s) => {
                    reads.push(*s);
                    tables.extend(self.stages[*s].tables.iter().copied());
                }
            }
        }
        tables.sort_unstable();
        tables.dedup();
        reads.sort_unstable();
        reads.dedup();
        (tables, reads)
    }

    /// Whether occurrence `i` may have changed since the last refresh.
    fn changed(&self, i: usize) -> bool {
        match &self.draft.inputs[i] {
            Input::Table(t) => self.request.changed.is_none_or(|c| c.contains(&t.relid)),
            Input::Stage(s) => self.stages[*s].changed,
        }
    }

    /// Whether anything it reads may have changed.
    fn any_changed(&self) -> bool {
        (0..self.draft.inputs.len()).any(|i| self.changed(i))
    }

    /// Adds the changed tables it reads to `deltas` (each table once).
    fn collect_deltas(&self, deltas: &mut Vec<TableInput>) {
        for (i, input) in self.draft.inputs.iter().enumerate() {
            if let Input::Table(t) = input {
                if self.changed(i) && !deltas.iter().any(|d: &TableInput| d.relid == t.relid) {
                    deltas.push(t.clone());
                }
            }
        }
    }

    /// The visible columns of lower stage `s`.
    fn stage_columns(&self, s: usize) -> Vec<String> {
        self.stages[s].columns[..self.stages[s].visible].to_vec()
    }

    /// The columns occurrence `i` has.
    fn occurrence_columns(&self, i: usize) -> Vec<String> {
        match &self.draft.inputs[i] {
            Input::Table(t) => t.columns.clone(),
            Input::Stage(s) => self.stage_columns(*s),
        }
    }

    /// A key of occurrence `i`: its table's, or its stage's when all its columns are visible.
    fn occurrence_key(&self, i: usize) -> Option<Vec<String>> {
        match &self.draft.inputs[i] {
            Input::Table(t) => self.catalog.table_key(t.relid),
            Input::Stage(s) => match &self.stages[*s].identity {
                Identity::Key(k) if k.iter().all(|c| self.stage_columns(*s).contains(c)) => {
                    Some(k.clone())
                }
                _ => None,
            },
        }
    }
}

/// A stage rendered, with what it asks of the stages below it.
struct RenderedStage {
    plan: StagePlan,
    /// An index in order on an input stage (a top-k reads it).
    order_index: Option<(StageIndex, Vec<IndexColumn>)>,
    /// Columns of lower stages dependent filters look rows up by.
    lookups: Vec<(StageIndex, String)>,
}

/// Renders stage `index` over the stages in `collected`, adding to its tables, deltas and
/// delta indexes and giving the stages below the indexes it asks for.
pub(super) fn render_stage(
    index: StageIndex,
    draft: &Draft,
    collected: &mut Collected,
    catalog: &dyn Catalog,
    request: &PlanRequest,
) -> Result<StagePlan, Unsupported> {
    let inputs = StageInputs {
        draft,
        stages: &collected.stages,
        catalog,
        request,
    };
    let (own_tables, reads) = inputs.tables_and_reads();
    collected.tables.extend(own_tables.iter().copied());
    inputs.collect_deltas(&mut collected.deltas);
    let changed = inputs.any_changed();
    let stage_columns = |s: usize| inputs.stage_columns(s);
    let input_changed = |i: usize| inputs.changed(i);
    let standalone_of = |s: usize| inputs.stages[s].standalone_sql.clone();
    let one_row = |i: usize| match &draft.inputs[i] {
        Input::Stage(s) => inputs.stages[*s].identity == Identity::Key(Vec::new()),
        Input::Table(_) => false,
    };
    let reader = Reader {
        inputs: &draft.inputs,
        names: request.names,
        stage_columns: &stage_columns,
        changed: &input_changed,
        one_row: &one_row,
        standalone: None,
    };
    let describing = Reader {
        standalone: Some(&standalone_of),
        ..reader
    };
    let occurrence_columns = |i: usize| inputs.occurrence_columns(i);
    let occurrence_key = |i: usize| inputs.occurrence_key(i);
    let ctx = StageContext {
        index,
        draft,
        catalog,
        request,
        reader: &reader,
        describing: &describing,
        occurrence_columns: &occurrence_columns,
        occurrence_key: &occurrence_key,
        changed,
    };
    let rendered = render_body(&ctx, &mut collected.delta_indexes)?;
    link_lower_stages(
        &mut collected.stages,
        rendered.order_index,
        rendered.lookups,
        &reads,
    );
    Ok(StagePlan {
        tables: own_tables,
        reads,
        ..rendered.plan
    })
}

/// A stage's SQL by its kind, FULL and standalone, with its key checked; the columns its
/// dependent filters look up by (a table's added to `delta_indexes`).
fn render_body(
    ctx: &StageContext,
    delta_indexes: &mut Vec<(u32, String)>,
) -> Result<RenderedStage, Unsupported> {
    let StageContext {
        index,
        draft,
        catalog,
        request,
        reader,
        describing,
        changed,
        ..
    } = *ctx;
    let mut query = draft.query.clone();
    let mut columns = draft.columns.clone();
    let visible = columns.len();
    let rendered = kinds::by_kind(ctx, &mut query, &mut columns)?;
    let lookups = if request.render_terms {
        filter_lookups(&query, draft, catalog, delta_indexes)
    } else {
        Vec::new()
    };
    let mut full = query.clone();
    reader.substitute(&mut full, &[], &[]);
    let mut standalone = query.clone();
    describing.substitute(&mut standalone, &[], &[]);
    let standalone_sql = standalone.to_string();
    let identity = keyable_identity(rendered.identity, rendered.kind, &standalone_sql, ctx)?;
    let plan = StagePlan {
        index,
        location: draft.location.clone(),
        kind: rendered.kind,
        identity,
        columns,
        visible,
        full_sql: full.to_string(),
        refresh: rendered.refresh,
        algebraic: rendered.algebraic,
        tables: vec![],
        reads: vec![],
        feeds: false,
        changed,
        order_index: None,
        lookup_columns: vec![],
        standalone_sql,
    };
    Ok(RenderedStage {
        plan,
        order_index: rendered.order_index,
        lookups,
    })
}

/// The columns the dependent filters of `query` look change rows up by: a table's added to
/// `delta_indexes`, a lower stage's returned.
fn filter_lookups(
    query: &Query,
    draft: &Draft,
    catalog: &dyn Catalog,
    delta_indexes: &mut Vec<(u32, String)>,
) -> Vec<(StageIndex, String)> {
    let mut lookups = Vec::new();
    for leaf in leaves(&query.body).into_iter().flatten() {
        for block in blocks::blocks(leaf, catalog).unwrap_or_default() {
            for filter in &block.filters {
                match draft.inputs.get(filter.occurrence) {
                    Some(Input::Table(t)) => delta_indexes
                        .extend(filter.equality_columns().into_iter().map(|c| (t.relid, c))),
                    Some(Input::Stage(s)) => {
                        lookups.extend(filter.equality_columns().into_iter().map(|c| (*s, c)))
                    }
                    None => {}
                }
            }
        }
    }
    lookups
}

/// `identity` with its key columns checked to hash and sort (a unique index on its hash and
/// it): a linear stage with one that does not becomes a multiset, other stages are refused.
fn keyable_identity(
    identity: Identity,
    kind: StageKind,
    standalone_sql: &str,
    ctx: &StageContext,
) -> Result<Identity, Unsupported> {
    let catalog = ctx.catalog;
    let unkeyable = match &identity {
        Identity::Key(key) if !key.is_empty() => {
            catalog.describe(standalone_sql).and_then(|described| {
                key.iter().find_map(|k| {
                    described
                        .iter()
                        .find(|(name, _)| name == k)
                        .filter(|(_, type_name)| !catalog.keyable(type_name))
                        .map(|(name, type_name)| (name.clone(), type_name.clone()))
                })
            })
        }
        _ => None,
    };
    match unkeyable {
        None => Ok(identity),
        Some(_) if kind == StageKind::Linear => Ok(Identity::Multiset),
        Some((name, type_name)) => Err(Unsupported::new(format!(
            "a GROUP BY / DISTINCT key {name} of type {type_name}, which has no hash function"
        ))
        .at(&ctx.draft.location)),
    }
}

/// Gives the stages below what a stage asks of them: an index in order, lookup columns, and
/// that a stage above reads their change set.
fn link_lower_stages(
    stages: &mut [StagePlan],
    order_index: Option<(StageIndex, Vec<IndexColumn>)>,
    lookups: Vec<(StageIndex, String)>,
    reads: &[StageIndex],
) {
    if let Some((input, index_columns)) = order_index {
        stages[input].order_index = Some(index_columns);
    }
    for (input, column) in lookups {
        let lower = &mut stages[input];
        if lower.columns.contains(&column) && !lower.lookup_columns.contains(&column) {
            lower.lookup_columns.push(column);
        }
    }
    for s in reads {
        stages[*s].feeds = true;
    }
}
