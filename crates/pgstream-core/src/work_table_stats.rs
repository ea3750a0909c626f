//! When a refresh's work table is worth analyzing: when the planner's estimate of its rows (the
//! density its last ANALYZE recorded, times its size now) is off by more than twice.
//!
//! An ANALYZE of a small work table costs little itself, but it invalidates every kept plan that
//! reads the table, so each is planned again: for a refresh applying a hundred rows, the two
//! together were about a fifth of its time. A table refilled with about as many rows as when it
//! was last analyzed is planned for well enough without.

/// Rows of error the rule lets pass on top of the factor: plans for a few hundred rows do not
/// differ (a few hundred index lookups or a hash of them), while every ANALYZE makes the kept
/// plans reading the table planned again, which for a delta of many terms (a table LEFT JOINed
/// to two aggregates: 50) cost three times what running it did. A table emptied by DELETE and
/// refilled keeps its dead rows' pages, so its estimate drifts up by itself.
const SLACK_ROWS: f64 = 500.0;

/// What the catalog holds about a work table: `pg_class.reltuples` and `relpages` (from its last
/// ANALYZE; -1 and 0 when it has had none since it was made or truncated) and its size in
/// pages now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordedSize {
    pub reltuples: f64,
    pub relpages: i64,
    pub pages: i64,
}

/// The rows the planner estimates the table holds: its recorded density times its pages now,
/// as PostgreSQL's table size estimate computes it. None when there is no density to go by
/// (never analyzed, truncated since, or analyzed empty): the planner then guesses from the
/// row width and at least ten pages, a thousand rows or more.
pub fn planner_estimate(size: &RecordedSize) -> Option<f64> {
    (size.reltuples >= 0.0 && size.relpages > 0)
        .then(|| (size.reltuples / size.relpages as f64 * size.pages as f64).round())
}

/// Whether a work table holding `rows` rows (just filled) is worth an ANALYZE, given what the
/// catalog records of it (None: the table is unknown there). An empty one never is: what runs
/// on it costs nothing, whatever the plan.
pub fn worth_analyzing(recorded: Option<&RecordedSize>, rows: i64) -> bool {
    if rows <= 0 {
        return false;
    }
    let Some(estimate) = recorded.and_then(planner_estimate) else {
        return true;
    };
    let rows = rows as f64;
    estimate > 2.0 * rows + SLACK_ROWS || rows > 2.0 * estimate + SLACK_ROWS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(reltuples: f64, relpages: i64, pages: i64) -> RecordedSize {
        RecordedSize {
            reltuples,
            relpages,
            pages,
        }
    }

    #[test]
    fn the_estimate_is_the_recorded_density_times_the_pages_now() {
        assert_eq!(planner_estimate(&size(100.0, 2, 6)), Some(300.0));
        assert_eq!(planner_estimate(&size(0.0, 1, 3)), Some(0.0));
        assert_eq!(planner_estimate(&size(-1.0, 0, 3)), None); // truncated or new
        assert_eq!(planner_estimate(&size(0.0, 0, 0)), None); // analyzed empty
    }

    #[test]
    fn a_table_the_planner_knows_nothing_of_is_analyzed_once_it_holds_rows() {
        assert!(worth_analyzing(None, 1));
        assert!(worth_analyzing(Some(&size(-1.0, 0, 1)), 1));
        assert!(!worth_analyzing(None, 0));
        assert!(!worth_analyzing(Some(&size(-1.0, 0, 4)), 0));
    }

    #[test]
    fn a_table_refilled_with_about_as_many_rows_is_not_analyzed_again() {
        // 100 rows analyzed in 2 pages; 100 again now in 4 pages (2 of them dead rows).
        assert!(!worth_analyzing(Some(&size(100.0, 2, 4)), 100));
        assert!(!worth_analyzing(Some(&size(100.0, 2, 2)), 180));
        assert!(!worth_analyzing(Some(&size(10.0, 1, 1)), 400)); // a few hundred: the slack
                                                                 // The dead rows of earlier fills make 100 rows look like 300: close enough.
        assert!(!worth_analyzing(Some(&size(100.0, 2, 6)), 100));
    }

    #[test]
    fn an_estimate_off_by_more_than_twice_either_way_is_analyzed_again() {
        // The dead rows of earlier fills make the same density look like 3000 rows.
        assert!(worth_analyzing(Some(&size(1000.0, 20, 60)), 1000));
        // Ten times the rows.
        assert!(worth_analyzing(Some(&size(100.0, 2, 20)), 10_000));
        assert!(worth_analyzing(Some(&size(10_000.0, 100, 100)), 100));
    }
}
