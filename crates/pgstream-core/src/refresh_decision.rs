//! The refresh decision: from what a refresh has found out, what it does (skip, recompute or
//! apply the changes), or which fact it must find out first (pure, no SPI; the refresh in
//! `src/refresh/owner.rs` gathers the facts this asks for and carries out the step).

use crate::modes::{EffectiveMode, RefreshMode};
use crate::refresh_reason::{untrusted, ChangeTrust};

/// What a refresh has found out. The later facts stay None until [`next`] asks for them.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub mode: RefreshMode,
    /// The effective mode the catalog recorded before this refresh (None: never decided).
    pub recorded: Option<EffectiveMode>,
    /// What the query depends on changed (DDL) since the last refresh.
    pub meaning_changed: bool,
    /// The rows may be left as they are when nothing they depend on changed (scheduled
    /// refreshes, and any refresh of a DIFFERENTIAL stream table).
    pub may_skip: bool,
    /// Since the last refresh only DDL happened: no source changed or was truncated, capture is
    /// complete, and the query depends on nothing but its sources.
    pub only_ddl: bool,
    /// What the change rows since the last refresh can be trusted for. This and `only_ddl`
    /// are read again once the effective mode is decided anew: a changed one clears the
    /// covered position.
    pub trust: ChangeTrust,
    /// [`Fact::EffectiveMode`]: the effective mode decided again, with why it is FULL.
    pub decided: Option<(EffectiveMode, Option<String>)>,
    /// [`Fact::Plan`]: what planning the changes found.
    pub planned: Option<Planned>,
    /// [`Fact::ChangeVolume`]: why recomputing is cheaper than these many change rows (None
    /// inside: it is not).
    pub volume: Option<Option<String>>,
}

/// What planning a DIFFERENTIAL refresh found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Why the changes could not be planned (None: planned).
    pub error: Option<String>,
    /// The plan's row identity differs from the table's (its sources' keys changed).
    pub identity_changed: bool,
    /// Every private table of its inner stages exists.
    pub private_tables_exist: bool,
    /// No source it reads has changes.
    pub nothing_changed: bool,
}

/// A fact the decision needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// Decide (and record) the effective mode again: planning the query tells.
    EffectiveMode,
    /// Plan the changes of the sources that changed.
    Plan,
    /// Fill the change sets and weigh their rows against the sources'.
    ChangeVolume,
}

/// What the refresh does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Leave the rows as they are (a SKIPPED refresh).
    Skip { why: String },
    /// Recompute the query as a whole (FULL); with `new_identity`, in the row identity the query
    /// has now (DDL may have changed its sources' keys).
    Full { why: String, new_identity: bool },
    /// Recompute every stage, building the state the next DIFFERENTIAL refreshes keep.
    Recompute { why: String },
    /// DIFFERENTIAL with nothing to apply.
    NothingToApply,
    /// DIFFERENTIAL: apply the change sets.
    ApplyChanges,
}

/// The next step, or the fact to find out before it can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Do(Step),
    Find(Fact),
}

/// Decides the next step from `found`.
pub fn next(found: &Found) -> Next {
    let recorded = match (found.mode, found.recorded, found.meaning_changed) {
        (RefreshMode::Full, Some(EffectiveMode::Full), _) => Some((EffectiveMode::Full, None)),
        (RefreshMode::Auto, Some(EffectiveMode::Full), false) => Some((EffectiveMode::Full, None)),
        (_, Some(EffectiveMode::Differential), false) => Some((EffectiveMode::Differential, None)),
        _ => None,
    };
    let Some((effective, full_reason)) = recorded.or_else(|| found.decided.clone()) else {
        return Next::Find(Fact::EffectiveMode);
    };
    if effective == EffectiveMode::Full {
        if found.may_skip && found.only_ddl && !found.meaning_changed {
            return Next::Do(Step::Skip {
                why: "only DDL that left its query's meaning as it was".into(),
            });
        }
        let why = full_reason.unwrap_or_else(|| match found.mode {
            RefreshMode::Full => "refresh_mode FULL".into(),
            _ => "its query is refreshed FULL".into(),
        });
        return Next::Do(Step::Full {
            why,
            new_identity: found.meaning_changed,
        });
    }
    if let Some(why) = untrusted(found.trust) {
        return Next::Do(Step::Recompute { why: why.into() });
    }
    let Some(planned) = &found.planned else {
        return Next::Find(Fact::Plan);
    };
    let recompute = |why: String| Next::Do(Step::Recompute { why });
    if let Some(error) = &planned.error {
        return recompute(format!("its changes could not be planned: {error}"));
    }
    if planned.identity_changed {
        return recompute("its row identity changed (its sources' keys changed)".into());
    }
    if !planned.private_tables_exist {
        return recompute("the private tables of its inner stages were missing or made for another plan of its query".into());
    }
    if planned.nothing_changed {
        return Next::Do(Step::NothingToApply);
    }
    match &found.volume {
        None => Next::Find(Fact::ChangeVolume),
        Some(Some(why)) => recompute(why.clone()),
        Some(None) => Next::Do(Step::ApplyChanges),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refresh_reason::TRUSTED;
    use EffectiveMode::{Differential as D, Full as F};

    fn found(mode: RefreshMode, recorded: Option<EffectiveMode>) -> Found {
        Found {
            mode,
            recorded,
            meaning_changed: false,
            may_skip: false,
            only_ddl: false,
            trust: TRUSTED,
            decided: None,
            planned: None,
            volume: None,
        }
    }

    fn planned() -> Planned {
        Planned {
            error: None,
            identity_changed: false,
            private_tables_exist: true,
            nothing_changed: false,
        }
    }

    fn full(why: &str, new_identity: bool) -> Next {
        Next::Do(Step::Full {
            why: why.into(),
            new_identity,
        })
    }

    fn recompute(why: &str) -> Next {
        Next::Do(Step::Recompute { why: why.into() })
    }

    #[test]
    fn the_effective_mode_is_decided_again_only_when_unknown_or_after_ddl() {
        use RefreshMode::*;
        let cases = [
            (Full, Some(F), false, full("refresh_mode FULL", false)),
            (Full, Some(F), true, full("refresh_mode FULL", true)),
            (
                Auto,
                Some(F),
                false,
                full("its query is refreshed FULL", false),
            ),
            (Auto, Some(F), true, Next::Find(Fact::EffectiveMode)),
            (Auto, Some(D), false, Next::Find(Fact::Plan)),
            (Differential, Some(D), false, Next::Find(Fact::Plan)),
            (Differential, Some(D), true, Next::Find(Fact::EffectiveMode)),
            (Differential, None, false, Next::Find(Fact::EffectiveMode)),
            (Differential, None, true, Next::Find(Fact::EffectiveMode)),
            (
                Differential,
                Some(F),
                false,
                Next::Find(Fact::EffectiveMode),
            ),
            (Differential, Some(F), true, Next::Find(Fact::EffectiveMode)),
            (Auto, None, false, Next::Find(Fact::EffectiveMode)),
            (Auto, None, true, Next::Find(Fact::EffectiveMode)),
            (Auto, Some(D), true, Next::Find(Fact::EffectiveMode)),
            (Full, None, false, Next::Find(Fact::EffectiveMode)),
            (Full, None, true, Next::Find(Fact::EffectiveMode)),
            // A FULL stream table whose mode record still says DIFFERENTIAL (ALTER resets it).
            (Full, Some(D), false, Next::Find(Fact::Plan)),
            (Full, Some(D), true, Next::Find(Fact::EffectiveMode)),
        ];
        for (mode, recorded, meaning_changed, expected) in cases {
            let mut f = found(mode, recorded);
            f.meaning_changed = meaning_changed;
            f.trust.meaning_changed = meaning_changed;
            assert_eq!(
                next(&f),
                expected,
                "{mode:?} {recorded:?} {meaning_changed}"
            );
        }
    }

    #[test]
    fn a_decided_mode_is_used_with_its_reason() {
        let mut f = found(RefreshMode::Auto, None);
        f.decided = Some((
            F,
            Some("window function rank() cannot be maintained".into()),
        ));
        assert_eq!(
            next(&f),
            full("window function rank() cannot be maintained", false)
        );
        f.decided = Some((F, None));
        assert_eq!(next(&f), full("its query is refreshed FULL", false));
        f.decided = Some((D, None));
        assert_eq!(next(&f), Next::Find(Fact::Plan));
        // Decided DIFFERENTIAL anew (from FULL): nothing covered yet, so every stage is built.
        f.trust.covered_before = false;
        assert!(
            matches!(next(&f), Next::Do(Step::Recompute { why }) if why.starts_with("no earlier refresh"))
        );
    }

    #[test]
    fn only_ddl_skips_a_full_refresh_that_may_skip() {
        let mut f = found(RefreshMode::Full, Some(F));
        f.only_ddl = true;
        assert_eq!(next(&f), full("refresh_mode FULL", false));
        f.may_skip = true;
        assert_eq!(
            next(&f),
            Next::Do(Step::Skip {
                why: "only DDL that left its query's meaning as it was".into()
            })
        );
        f.meaning_changed = true;
        assert_eq!(next(&f), full("refresh_mode FULL", true));
        // A FULL refresh does not care whether the change rows can be trusted.
        f.meaning_changed = false;
        f.may_skip = false;
        f.trust.truncated = true;
        assert_eq!(next(&f), full("refresh_mode FULL", false));
        // Only DDL never skips a DIFFERENTIAL refresh: it goes on to plan (and applies nothing).
        let mut d = found(RefreshMode::Differential, Some(D));
        d.may_skip = true;
        d.only_ddl = true;
        assert_eq!(next(&d), Next::Find(Fact::Plan));
    }

    #[test]
    fn untrusted_changes_recompute_before_planning() {
        let mut f = found(RefreshMode::Differential, Some(D));
        f.trust.truncated = true;
        assert_eq!(
            next(&f),
            recompute(
                "a source was truncated, had its triggers disabled or dropped, or lost a partition"
            )
        );
        f.trust.truncated = false;
        f.trust.covered_before = false;
        assert!(matches!(next(&f), Next::Do(Step::Recompute { .. })));
    }

    #[test]
    fn what_planning_found_decides_in_order() {
        let mut f = found(RefreshMode::Differential, Some(D));
        let cases = [
            (
                Planned {
                    error: Some("x".into()),
                    identity_changed: true,
                    ..planned()
                },
                recompute("its changes could not be planned: x"),
            ),
            (
                Planned {
                    identity_changed: true,
                    private_tables_exist: false,
                    ..planned()
                },
                recompute("its row identity changed (its sources' keys changed)"),
            ),
            (
                Planned {
                    private_tables_exist: false,
                    nothing_changed: true,
                    ..planned()
                },
                recompute("the private tables of its inner stages were missing or made for another plan of its query"),
            ),
            (
                Planned {
                    nothing_changed: true,
                    ..planned()
                },
                Next::Do(Step::NothingToApply),
            ),
            (planned(), Next::Find(Fact::ChangeVolume)),
        ];
        for (plan, expected) in cases {
            f.planned = Some(plan.clone());
            assert_eq!(next(&f), expected, "{plan:?}");
        }
    }

    #[test]
    fn too_many_change_rows_recompute_otherwise_they_are_applied() {
        let mut f = found(RefreshMode::Auto, Some(D));
        f.planned = Some(planned());
        f.volume = Some(Some("12 change rows".into()));
        assert_eq!(next(&f), recompute("12 change rows"));
        f.volume = Some(None);
        assert_eq!(next(&f), Next::Do(Step::ApplyChanges));
    }
}
