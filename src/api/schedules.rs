//! SQL functions over schedules: validation and the next time a stream table is due.

use crate::error::OrRaise;
use crate::schedule::Schedule;
use pgrx::prelude::*;

/// When a stream table with `schedule`, last refreshed at `after`, is next due
/// (NULL when a cron expression never fires again). Raises on an invalid schedule.
#[pg_extern(immutable, parallel_safe, strict, schema = "pgstream")]
fn next_refresh_at(schedule: &str, after: TimestampWithTimeZone) -> Option<TimestampWithTimeZone> {
    let parsed = Schedule::parse(schedule).or_raise();
    parsed
        .next_due_after(after.into())
        .and_then(|micros| TimestampWithTimeZone::try_from(micros).ok())
}

/// Whether `schedule` is a valid schedule (a duration, 5-field cron, or cron alias).
#[pg_extern(immutable, parallel_safe, strict, schema = "pgstream")]
fn is_valid_schedule(schedule: &str) -> bool {
    Schedule::parse(schedule).is_ok()
}

/// Asks the scheduler launcher to look for databases that need a worker (run by CREATE
/// EXTENSION); does nothing when the library is not preloaded. Executable by PUBLIC on purpose:
/// it only wakes the launcher, which starts workers where the extension is installed anyway.
#[pg_extern(volatile, schema = "pgstream")]
fn request_scheduler_rescan() {
    crate::scheduler::request_rescan();
}

/// Each stream table's effective schedule: its own, or for a CALCULATED one the most frequent
/// schedule among the stream tables reading it (NULL when nobody with a schedule reads it).
#[pg_extern(stable, schema = "pgstream")]
fn effective_schedules() -> TableIterator<
    'static,
    (
        name!(pgs_id, i64),
        name!(effective_schedule, Option<String>),
    ),
> {
    let tables = crate::catalog::schedule();
    let rows: Vec<(i64, Option<String>)> = crate::scheduler::plan::effective_schedules(&tables)
        .into_iter()
        .map(|(id, schedule)| (id, schedule.map(|s| s.text())))
        .collect();
    TableIterator::new(rows)
}

pgrx::extension_sql_file!(
    "../../sql/monitoring.sql",
    name = "monitoring",
    requires = ["capture", next_refresh_at, effective_schedules]
);
