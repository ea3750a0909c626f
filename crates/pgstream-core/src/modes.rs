//! Refresh modes, effective modes, refresh kinds and stream-table statuses: the values the
//! catalog holds and their parsing (pure, no SPI).

use std::fmt;

/// How a stream table is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMode {
    Full,
    Differential,
    Auto,
}

/// Whether the scheduler refreshes a stream table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Suspended,
}

/// How a stream table is actually refreshed (its refresh_mode decided: AUTO is one of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectiveMode {
    Full,
    Differential,
}

/// What one refresh did (the catalog's last_refresh_kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshKind {
    Full,
    Differential,
    Skipped,
}

impl EffectiveMode {
    /// The catalog's value (None for anything else: not decided yet).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "FULL" => Some(Self::Full),
            "DIFFERENTIAL" => Some(Self::Differential),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Differential => "DIFFERENTIAL",
        }
    }
}

impl RefreshKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Differential => "DIFFERENTIAL",
            Self::Skipped => "SKIPPED",
        }
    }
}

/// A value outside the accepted set, with what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} \"{value}\"")]
pub struct InvalidChoice {
    pub what: &'static str,
    pub value: String,
    pub accepted: &'static str,
}

pub const ACCEPTED_REFRESH_MODES: &str = "FULL, DIFFERENTIAL, AUTO";
pub const ACCEPTED_STATUSES: &str = "ACTIVE, SUSPENDED";

impl RefreshMode {
    pub fn parse(text: &str) -> Result<Self, InvalidChoice> {
        match text.trim().to_ascii_uppercase().as_str() {
            "FULL" => Ok(Self::Full),
            "DIFFERENTIAL" => Ok(Self::Differential),
            "AUTO" => Ok(Self::Auto),
            _ => Err(InvalidChoice {
                what: "refresh_mode",
                value: text.to_string(),
                accepted: ACCEPTED_REFRESH_MODES,
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Differential => "DIFFERENTIAL",
            Self::Auto => "AUTO",
        }
    }
}

impl Status {
    pub fn parse(text: &str) -> Result<Self, InvalidChoice> {
        match text.trim().to_ascii_uppercase().as_str() {
            "ACTIVE" => Ok(Self::Active),
            "SUSPENDED" => Ok(Self::Suspended),
            _ => Err(InvalidChoice {
                what: "status",
                value: text.to_string(),
                accepted: ACCEPTED_STATUSES,
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Suspended => "SUSPENDED",
        }
    }
}

impl fmt::Display for RefreshMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_case_insensitively() {
        assert_eq!(RefreshMode::parse("full").unwrap(), RefreshMode::Full);
        assert_eq!(
            RefreshMode::parse(" Differential ").unwrap(),
            RefreshMode::Differential
        );
        assert_eq!(RefreshMode::parse("AUTO").unwrap(), RefreshMode::Auto);
        let err = RefreshMode::parse("INCREMENTAL").unwrap_err();
        assert_eq!(err.value, "INCREMENTAL");
        assert_eq!(err.accepted, ACCEPTED_REFRESH_MODES);
    }

    #[test]
    fn effective_modes_and_kinds_round_trip() {
        for mode in [EffectiveMode::Full, EffectiveMode::Differential] {
            assert_eq!(EffectiveMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(EffectiveMode::parse("AUTO"), None);
        assert_eq!(RefreshKind::Skipped.as_str(), "SKIPPED");
    }

    #[test]
    fn statuses_parse() {
        assert_eq!(Status::parse("active").unwrap(), Status::Active);
        assert_eq!(Status::parse("SUSPENDED").unwrap(), Status::Suspended);
        assert!(Status::parse("PAUSED").is_err());
        assert!(Status::parse("").is_err());
    }
}
