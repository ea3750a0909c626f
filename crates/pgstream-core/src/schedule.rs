//! Refresh schedules: parsing and validation of durations and cron expressions (pure, no SPI).

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;

/// Microseconds between the Unix epoch and the PostgreSQL epoch (2000-01-01 UTC).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800 * 1_000_000;

/// A validated refresh schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Refresh when this many seconds have passed since the last refresh.
    Every { seconds: u64 },
    /// Refresh at each time the cron expression matches (evaluated in UTC).
    Cron { expression: String, cron: Box<Cron> },
    /// No schedule of its own: refresh as often as the most frequent stream table reading it
    /// (written `CALCULATED`, or a NULL schedule).
    Calculated,
}

/// Why a schedule text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule must not be empty")]
    Empty,
    #[error("invalid duration \"{text}\": {why}")]
    BadDuration { text: String, why: String },
    #[error("invalid cron expression \"{text}\": {why}")]
    BadCron { text: String, why: String },
}

/// What the error hint says is accepted.
pub const ACCEPTED_SCHEDULES: &str = "a duration such as '30s', '5m', '1h30m', '1d' or '1w' \
(units s, m, h, d, w), a 5-field cron expression such as '*/5 * * * *', \
one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, \
or CALCULATED (as often as the stream tables reading it)";

/// The text stored for a calculated schedule.
pub const CALCULATED: &str = "CALCULATED";

const CRON_ALIASES: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

impl Schedule {
    /// Parses a schedule text: a duration, a 5-field cron expression, or a cron alias.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if text.eq_ignore_ascii_case(CALCULATED) {
            return Ok(Schedule::Calculated);
        }
        if text.starts_with('@') || text.split_whitespace().count() > 1 {
            return parse_cron(text);
        }
        parse_duration(text).map(|seconds| Schedule::Every { seconds })
    }

    /// The schedule as stored and shown: durations in their largest units (`1h30m`), cron as
    /// written, `CALCULATED`.
    pub fn text(&self) -> String {
        match self {
            Schedule::Calculated => CALCULATED.to_string(),
            Schedule::Cron { expression, .. } => expression.clone(),
            Schedule::Every { seconds } => {
                let mut rest = *seconds;
                let mut text = String::new();
                for (unit, size) in [
                    ("w", 604_800),
                    ("d", 86_400),
                    ("h", 3_600),
                    ("m", 60),
                    ("s", 1),
                ] {
                    if rest >= size {
                        text.push_str(&format!("{}{unit}", rest / size));
                        rest %= size;
                    }
                }
                text
            }
        }
    }

    /// The shortest time between two refreshes this schedule can ask for, in seconds.
    pub fn min_interval_seconds(&self) -> u64 {
        match self {
            Schedule::Every { seconds } => *seconds,
            Schedule::Calculated => u64::MAX,
            Schedule::Cron { cron, .. } => {
                let start = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap();
                let times: Vec<_> = cron.iter_after(start).take(3).collect();
                times
                    .windows(2)
                    .map(|w| (w[1] - w[0]).num_seconds().max(0) as u64)
                    .min()
                    .unwrap_or(60)
            }
        }
    }

    /// When a table last refreshed at `after_pg_micros` (PostgreSQL timestamptz
    /// microseconds) is next due, in the same unit; `None` when the cron never fires again
    /// or the schedule is calculated (see `scheduler::plan::effective_schedules`).
    pub fn next_due_after(&self, after_pg_micros: i64) -> Option<i64> {
        match self {
            Schedule::Calculated => None,
            Schedule::Every { seconds } => {
                let step = i64::try_from(*seconds).ok()?.checked_mul(1_000_000)?;
                after_pg_micros.checked_add(step)
            }
            Schedule::Cron { cron, .. } => {
                let unix = after_pg_micros.checked_add(PG_EPOCH_OFFSET_MICROS)?;
                let after: DateTime<Utc> = DateTime::from_timestamp_micros(unix)?;
                let next = cron.find_next_occurrence(&after, false).ok()?;
                next.timestamp_micros().checked_sub(PG_EPOCH_OFFSET_MICROS)
            }
        }
    }
}

fn parse_cron(text: &str) -> Result<Schedule, ScheduleError> {
    let bad = |why: &str| ScheduleError::BadCron {
        text: text.to_string(),
        why: why.to_string(),
    };
    if text.starts_with('@') {
        if !CRON_ALIASES.contains(&text.to_ascii_lowercase().as_str()) {
            return Err(bad("unknown alias (@reboot and others are not schedules)"));
        }
    } else if text.split_whitespace().count() != 5 {
        return Err(bad(
            "expected 5 fields (minute hour day-of-month month day-of-week)",
        ));
    }
    let cron = Cron::new(text).parse().map_err(|e| bad(&e.to_string()))?;
    Ok(Schedule::Cron {
        expression: text.to_string(),
        cron: Box::new(cron),
    })
}

/// Parses `30s`, `5m`, `1h30m`, `1d`, `2w` into seconds.
fn parse_duration(text: &str) -> Result<u64, ScheduleError> {
    let bad = |why: &str| ScheduleError::BadDuration {
        text: text.to_string(),
        why: why.to_string(),
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut saw_unit = false;
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit: u64 = match ch.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad(&format!("unexpected character '{ch}'"))),
        };
        if digits.is_empty() {
            return Err(bad(&format!("unit '{ch}' without a number before it")));
        }
        let amount: u64 = digits.parse().map_err(|_| bad("number too large"))?;
        total = amount
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| bad("duration too large"))?;
        digits.clear();
        saw_unit = true;
    }
    if !digits.is_empty() {
        return Err(bad("number without a unit (use s, m, h, d or w)"));
    }
    if !saw_unit {
        return Err(bad("no duration given"));
    }
    if total == 0 {
        return Err(bad("duration must be greater than zero"));
    }
    if total > i64::MAX as u64 / 1_000_000 {
        return Err(bad("duration too large"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(text: &str) -> u64 {
        match Schedule::parse(text).unwrap() {
            Schedule::Every { seconds } => seconds,
            other => panic!("{text} parsed as {other:?}"),
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(seconds("30s"), 30);
        assert_eq!(seconds("5m"), 300);
        assert_eq!(seconds("1h30m"), 5_400);
        assert_eq!(seconds("1d"), 86_400);
        assert_eq!(seconds("1w"), 604_800);
        assert_eq!(seconds(" 2H "), 7_200);
        assert_eq!(seconds("1m30s"), 90);
    }

    #[test]
    fn bad_durations_are_refused() {
        for text in [
            "",
            "  ",
            "5",
            "m",
            "5x",
            "0s",
            "0m0s",
            "-5m",
            "5 m",
            "1.5h",
            "99999999999999999999s",
        ] {
            assert!(Schedule::parse(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn cron_expressions_parse() {
        for text in [
            "*/5 * * * *",
            "0 3 * * 1-5",
            "@hourly",
            "@daily",
            "@Weekly",
            "0 0 1 1 *",
        ] {
            assert!(
                matches!(Schedule::parse(text), Ok(Schedule::Cron { .. })),
                "{text} should parse as cron"
            );
        }
    }

    #[test]
    fn bad_cron_is_refused() {
        for text in [
            "@reboot",
            "@often",
            "* * * *",
            "0 0 0 * * *",
            "61 * * * *",
            "* 25 * * *",
            "a b c d e",
        ] {
            assert!(Schedule::parse(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn calculated_is_a_schedule_without_a_time_of_its_own() {
        for text in ["CALCULATED", "calculated", " Calculated "] {
            assert!(matches!(Schedule::parse(text), Ok(Schedule::Calculated)));
        }
        assert_eq!(Schedule::Calculated.next_due_after(0), None);
        assert_eq!(Schedule::Calculated.min_interval_seconds(), u64::MAX);
        assert_eq!(Schedule::parse("calculated").unwrap().text(), "CALCULATED");
        assert_eq!(Schedule::parse("90m").unwrap().text(), "1h30m");
        assert_eq!(Schedule::parse("@hourly").unwrap().text(), "@hourly");
    }

    #[test]
    fn next_due_for_durations_adds_the_interval() {
        let s = Schedule::parse("1m").unwrap();
        assert_eq!(s.next_due_after(0), Some(60_000_000));
        assert_eq!(s.min_interval_seconds(), 60);
    }

    #[test]
    fn next_due_for_cron_is_the_next_match() {
        let s = Schedule::parse("@hourly").unwrap();
        // 2000-01-01 00:10 UTC -> 01:00 UTC
        assert_eq!(s.next_due_after(600_000_000), Some(3_600_000_000));
        assert_eq!(s.min_interval_seconds(), 3_600);
        let five = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(five.min_interval_seconds(), 300);
    }
}
