//! Cost-based AUTO: whether the change rows a DIFFERENTIAL refresh would apply are so many,
//! next to the rows of the sources they change, that recomputing is cheaper (pure, no SPI).

use crate::modes::RefreshMode;

/// The change fractions above which a refresh recomputes instead: `auto` for AUTO stream tables
/// (`pgstream.auto_full_fraction`), `differential` for DIFFERENTIAL ones
/// (`pgstream.differential_full_fraction`, opt-in). Zero or less: never.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub auto: f64,
    pub differential: f64,
}

/// The threshold that applies to a stream table in `mode`, with its setting's name.
pub fn threshold(mode: RefreshMode, thresholds: Thresholds) -> Option<(f64, &'static str)> {
    let (fraction, setting) = match mode {
        RefreshMode::Auto => (thresholds.auto, "pgstream.auto_full_fraction"),
        RefreshMode::Differential => (
            thresholds.differential,
            "pgstream.differential_full_fraction",
        ),
        RefreshMode::Full => return None,
    };
    (fraction > 0.0).then_some((fraction, setting))
}

/// How many change rows are worth counting for a refresh in `mode` of sources of about
/// `source_rows` rows: past the threshold the answer is known, so a count stops there instead
/// of reading every change row of a bulk load. Rounded up to a power of two, so that the count
/// statement (the limit is in its text) keeps its plan while the sources grow. None: count all
/// (no threshold, or the sources' size is unknown).
pub fn counting_limit(mode: RefreshMode, source_rows: f64, thresholds: Thresholds) -> Option<i64> {
    let (fraction, _) = threshold(mode, thresholds)?;
    if source_rows <= 0.0 {
        return None;
    }
    let decisive = (fraction * source_rows).floor().min(i64::MAX as f64 / 4.0) as i64 + 1;
    Some((decisive as u64).next_power_of_two() as i64)
}

/// Why a refresh in `mode` recomputes instead of applying `change_rows` change rows (a deleted
/// and an inserted row per update) to sources of about `source_rows` rows (the planner's
/// estimate; unknown when zero or less: then never), or None to apply them.
pub fn full_instead(
    mode: RefreshMode,
    change_rows: i64,
    source_rows: f64,
    thresholds: Thresholds,
) -> Option<String> {
    let (fraction, setting) = threshold(mode, thresholds)?;
    if source_rows <= 0.0 || (change_rows as f64) <= fraction * source_rows {
        return None;
    }
    // (A count stopped at its limit says so.)
    let at_least = if counting_limit(mode, source_rows, thresholds) == Some(change_rows) {
        "at least "
    } else {
        ""
    };
    Some(format!(
        "{at_least}{change_rows} change rows are {:.1}% of the about {:.0} rows of the changed sources, \
         over {setting} = {fraction}",
        100.0 * change_rows as f64 / source_rows,
        source_rows
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Thresholds = Thresholds {
        auto: 0.05,
        differential: 0.0,
    };

    #[test]
    fn auto_recomputes_above_its_fraction_and_says_why() {
        assert_eq!(
            full_instead(RefreshMode::Auto, 5_000, 100_000.0, DEFAULTS),
            None
        );
        let why = full_instead(RefreshMode::Auto, 5_001, 100_000.0, DEFAULTS).unwrap();
        assert!(
            why.starts_with("5001 change rows are 5.0% of the about 100000 rows"),
            "{why}"
        );
        assert!(why.ends_with("pgstream.auto_full_fraction = 0.05"), "{why}");
    }

    #[test]
    fn a_count_stops_past_the_threshold_at_a_power_of_two() {
        assert_eq!(
            counting_limit(RefreshMode::Auto, 1_000_000.0, DEFAULTS),
            Some(65_536)
        );
        assert_eq!(
            counting_limit(RefreshMode::Auto, 1_100_000.0, DEFAULTS),
            Some(65_536),
            "the limit, in the statement's text, stays while the sources grow"
        );
        assert_eq!(counting_limit(RefreshMode::Auto, 0.0, DEFAULTS), None);
        assert_eq!(
            counting_limit(RefreshMode::Differential, 1e6, DEFAULTS),
            None
        );
        assert_eq!(counting_limit(RefreshMode::Full, 1e6, DEFAULTS), None);
        let why = full_instead(RefreshMode::Auto, 65_536, 1_000_000.0, DEFAULTS).unwrap();
        assert!(
            why.starts_with("at least 65536 change rows are 6.6%"),
            "{why}"
        );
        assert!(full_instead(RefreshMode::Auto, 50_000, 1_000_000.0, DEFAULTS).is_none());
        assert!(
            !full_instead(RefreshMode::Auto, 50_001, 1_000_000.0, DEFAULTS)
                .unwrap()
                .starts_with("at least")
        );
    }

    #[test]
    fn differential_recomputes_only_when_opted_in() {
        assert_eq!(
            full_instead(RefreshMode::Differential, 90_000, 100_000.0, DEFAULTS),
            None
        );
        let opted = Thresholds {
            differential: 0.2,
            ..DEFAULTS
        };
        assert!(
            full_instead(RefreshMode::Differential, 20_001, 100_000.0, opted)
                .unwrap()
                .contains("pgstream.differential_full_fraction = 0.2")
        );
        assert_eq!(
            full_instead(RefreshMode::Differential, 19_999, 100_000.0, opted),
            None
        );
    }

    #[test]
    fn unknown_sizes_full_mode_and_disabled_thresholds_never_recompute() {
        assert_eq!(full_instead(RefreshMode::Auto, 10, 0.0, DEFAULTS), None);
        assert_eq!(full_instead(RefreshMode::Auto, 10, -1.0, DEFAULTS), None);
        assert_eq!(full_instead(RefreshMode::Full, 10, 1.0, DEFAULTS), None);
        let off = Thresholds {
            auto: 0.0,
            differential: 0.0,
        };
        assert_eq!(full_instead(RefreshMode::Auto, 1_000, 1.0, off), None);
    }
}
