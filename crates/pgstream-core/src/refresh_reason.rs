//! Why a refresh recomputes instead of applying changes: the conditions under which the change
//! rows since the last refresh cannot be trusted to describe what changed (pure, no SPI).

/// What a refresh knows about the changes since the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeTrust {
    /// An earlier refresh covered the sources' changes up to a known position.
    pub covered_before: bool,
    /// What the query depends on changed (DDL) since.
    pub meaning_changed: bool,
    /// A source was truncated (or its triggers were switched off and on, or one of its
    /// partitions dropped) since.
    pub truncated: bool,
    /// Every source's statement capture is in place.
    pub capture_complete: bool,
    /// Every source's row capture (buffer and triggers) is in place and current.
    pub row_capture_complete: bool,
}

/// Changes every condition trusts (tests start from it).
#[cfg(test)]
pub(crate) const TRUSTED: ChangeTrust = ChangeTrust {
    covered_before: true,
    meaning_changed: false,
    truncated: false,
    capture_complete: true,
    row_capture_complete: true,
};

/// Why the changes cannot be applied (the first reason that holds, most telling first), or
/// None when they can.
pub fn untrusted(trust: ChangeTrust) -> Option<&'static str> {
    if trust.meaning_changed {
        Some("what its query depends on changed (DDL)")
    } else if trust.truncated {
        Some("a source was truncated, had its triggers disabled or dropped, or lost a partition")
    } else if !trust.covered_before {
        Some("no earlier refresh covered its sources' changes (first refresh, or its mode changed)")
    } else if !trust.capture_complete {
        Some("change capture of a source was missing or disabled")
    } else if !trust.row_capture_complete {
        Some("row capture of a source was missing or out of date")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_has_its_reason_and_the_first_one_wins() {
        assert_eq!(untrusted(TRUSTED), None);
        let cases = [
            (
                ChangeTrust {
                    covered_before: false,
                    ..TRUSTED
                },
                "no earlier refresh",
            ),
            (
                ChangeTrust {
                    meaning_changed: true,
                    ..TRUSTED
                },
                "depends on changed",
            ),
            (
                ChangeTrust {
                    truncated: true,
                    ..TRUSTED
                },
                "truncated",
            ),
            (
                ChangeTrust {
                    capture_complete: false,
                    ..TRUSTED
                },
                "change capture",
            ),
            (
                ChangeTrust {
                    row_capture_complete: false,
                    ..TRUSTED
                },
                "row capture",
            ),
            (
                ChangeTrust {
                    covered_before: false,
                    truncated: true,
                    ..TRUSTED
                },
                "truncated",
            ),
        ];
        for (trust, expected) in cases {
            let why = untrusted(trust).unwrap();
            assert!(why.contains(expected), "{trust:?}: {why}");
        }
    }
}
