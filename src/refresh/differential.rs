//! DIFFERENTIAL refresh: the change rows since the last refresh turned into the change of the
//! result (one statement, one snapshot), then applied to the stream table with MERGE.

use super::full::AppliedChanges;
use super::work_tables;
use crate::catalog::{self, Position, StreamTable};
use crate::delta::algebraic::{self, AlgebraicPlan};
use crate::delta::{statements, DeltaPlan, Shape};
use crate::settings::{self, Restriction};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

/// Runs `sql` (a data-changing statement) and returns the rows it processed.
pub fn run(table: &StreamTable, sql: &str) -> i64 {
    Spi::connect_mut(|client| client.update(sql, None, &[]).map(|t| t.len() as i64)).unwrap_or_else(
        |e| {
            panic!(
                "DIFFERENTIAL refresh of {} failed: {e}\n{sql}",
                table.display_name()
            )
        },
    )
}

/// Runs a statement returning one row of two counts.
fn counts(table: &StreamTable, sql: &str) -> (i64, i64) {
    Spi::connect_mut(|client| {
        let row = client.update(sql, None, &[])?.first();
        Ok::<_, pgrx::spi::Error>((
            row.get::<i64>(1)?.unwrap_or_default(),
            row.get::<i64>(2)?.unwrap_or_default(),
        ))
    })
    .unwrap_or_else(|e| {
        panic!(
            "DIFFERENTIAL refresh of {} failed: {e}",
            table.display_name()
        )
    })
}

/// Runs a capture statement (built by [`statements::with_position`]'s users) with the consumed
/// position bound, returning the position it covered and the rows it captured.
fn capture(table: &StreamTable, sql: &str, consumed: &Position) -> (Position, i64) {
    let args: Vec<DatumWithOid> = vec![
        consumed.snapshot.as_str().into(),
        consumed.own_xid.as_deref().into(),
        consumed.own_seq.into(),
    ];
    Spi::connect_mut(|client| {
        let row = client.update(sql, None, &args)?.first();
        Ok::<_, pgrx::spi::Error>((
            Position::from_row(&row)?,
            row.get::<i64>(4)?.unwrap_or_default(),
        ))
    })
    .unwrap_or_else(|e| {
        panic!(
            "computing the changes of {} failed: {e}\n{sql}",
            table.display_name()
        )
    })
}

/// Runs `body`, statements that join one work table to the stream table on its unique
/// `__pgs_row_id`, as index lookups: the stream table's statistics lag behind its refreshes,
/// and a planner that thinks it small hashes all of it to apply a few rows.
fn by_row_id<R>(body: impl FnOnce() -> R) -> R {
    settings::with_settings(
        &[(c"enable_hashjoin", "off"), (c"enable_mergejoin", "off")],
        body,
    )
}

/// Applies the fresh rows of the `affected` keys (deleting the groups with none); returns
/// the rows inserted and deleted.
fn apply_keyed(
    table: &StreamTable,
    affected: &str,
    fresh: &str,
    rows: i64,
    columns: &[String],
) -> (i64, i64) {
    let target = table.qualified();
    run(table, &statements::mark_vanished(affected, fresh));
    work_tables::analyze(&[affected, fresh], rows);
    by_row_id(|| {
        let counted = counts(table, &statements::keyed_counts(fresh, &target, columns));
        run(table, &statements::apply_keyed(fresh, &target, columns));
        counted
    })
}

/// The current position, when nothing changed since `consumed`.
pub fn current_position() -> Position {
    Spi::connect_mut(|client| {
        let row = client
            .update(
                "SELECT snapshot, own_xid::text, own_seq FROM pgstream._covered_position()",
                None,
                &[],
            )?
            .first();
        Position::from_row(&row)
    })
    .unwrap_or_else(|e| panic!("reading the change position failed: {e}"))
}

/// Applies the changes since `consumed` to `table` by `plan` (made for the sources in
/// `planned`, which had changes). Returns `None`, having changed nothing, when the changes
/// cannot be applied differentially after all (a TRUNCATE, DDL, or a change of a source not
/// planned for committed meanwhile): the caller recomputes FULL.
pub fn refresh_differential(
    table: &StreamTable,
    owner: pg_sys::Oid,
    plan: &DeltaPlan,
    planned: &[u32],
    consumed: &Position,
) -> Option<(AppliedChanges, Position)> {
    let target = table.qualified();
    let columns = super::full::data_columns(table);
    let invalidated = |covered: &Position| {
        catalog::delta_invalidated(table.id, &consumed.snapshot, &covered.snapshot, planned)
    };
    match plan.shape {
        Shape::Linear => {
            let work = work_tables::ensure("delta", table, &statements::linear_work(&target));
            let ops = work_tables::ensure("ops", table, &statements::linear_ops(&target));
            let (covered, rows) =
                settings::as_user(owner, Restriction::RestrictedOperation, || {
                    capture(
                        table,
                        &statements::capture_linear(&work, &plan.delta_sql, &columns),
                        consumed,
                    )
                });
            if invalidated(&covered) {
                work_tables::empty(&[&work], rows);
                return None;
            }
            work_tables::analyze(&[&work], rows);
            let (inserted, deleted) = counts(table, &statements::linear_counts(&work));
            run(
                table,
                &statements::linear_operations(&work, &ops, &target, &columns),
            );
            work_tables::analyze(&[&ops], inserted + deleted);
            by_row_id(|| run(table, &statements::apply_linear(&ops, &target, &columns)));
            work_tables::empty(&[&work, &ops], rows.max(inserted + deleted));
            Some((AppliedChanges { inserted, deleted }, covered))
        }
        Shape::Keyed => {
            let affected = work_tables::ensure("affected", table, statements::KEYS_WORK);
            let fresh = work_tables::ensure("fresh", table, &statements::fresh_work(&target));
            if let Some(algebraic) = &plan.algebraic {
                return refresh_algebraic(
                    table, owner, algebraic, planned, consumed, &affected, &fresh,
                );
            }
            let fresh_sql = plan
                .fresh_sql
                .as_deref()
                .expect("keyed plans have fresh SQL");
            let (covered, rows) =
                settings::as_user(owner, Restriction::RestrictedOperation, || {
                    capture(
                        table,
                        &statements::capture_keyed(
                            &affected,
                            &fresh,
                            &plan.delta_sql,
                            fresh_sql,
                            &columns,
                        ),
                        consumed,
                    )
                });
            if invalidated(&covered) {
                work_tables::empty(&[&affected, &fresh], rows);
                return None;
            }
            let (inserted, deleted) = apply_keyed(table, &affected, &fresh, rows, &columns);
            work_tables::empty(&[&affected, &fresh], rows);
            Some((AppliedChanges { inserted, deleted }, covered))
        }
    }
}

/// The keyed apply of an algebraic plan: per-group deltas (and the state of groups whose
/// extreme went) captured in one snapshot, the state table moved by them, the touched groups'
/// rows computed from it and merged.
fn refresh_algebraic(
    table: &StreamTable,
    owner: pg_sys::Oid,
    plan: &AlgebraicPlan,
    planned: &[u32],
    consumed: &Position,
    affected: &str,
    fresh: &str,
) -> Option<(AppliedChanges, Position)> {
    let target = table.qualified();
    let columns = super::full::data_columns(table);
    let groups = work_tables::ensure("groups", table, &algebraic::groups_work(plan));
    let rescan = work_tables::ensure("rescan", table, statements::KEYS_WORK);
    let state = work_tables::ensure("state", table, &algebraic::state_work(plan));
    let (covered, rows) = settings::as_user(owner, Restriction::RestrictedOperation, || {
        capture(
            table,
            &algebraic::capture(plan, &target, &groups, &rescan, &state),
            consumed,
        )
    });
    let all = [
        affected,
        fresh,
        groups.as_str(),
        rescan.as_str(),
        state.as_str(),
    ];
    if catalog::delta_invalidated(table.id, &consumed.snapshot, &covered.snapshot, planned) {
        work_tables::empty(&all, rows);
        return None;
    }
    let state_table = algebraic::state_table(table.id);
    let mut privileged = algebraic::update_state(plan, &state_table, &groups, &rescan, &state);
    privileged.extend(algebraic::outputs(
        plan,
        &state_table,
        &groups,
        affected,
        fresh,
        &columns,
    ));
    catalog::run_privileged(&privileged);
    let (inserted, deleted) = apply_keyed(table, affected, fresh, rows, &columns);
    work_tables::empty(&all, rows);
    Some((AppliedChanges { inserted, deleted }, covered))
}
