//! The `config` jsonb of pgstream_dbt.materialize(): its keys, types, defaults and validation
//! (pure, no SPI).

use crate::modes::{RefreshMode, Status};
use crate::partitioning::{PartitionSpec, ACCEPTED_PARTITION_BY};
use crate::schedule::Schedule;
use serde_json::Value;

/// What dbt's `on_configuration_change` asks for when schedule, mode or status differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConfigurationChange {
    /// Alter the stream table in place.
    Apply,
    /// Keep the stream table as it is and warn, listing the pending changes.
    Continue,
    /// Refuse with an error listing the pending changes.
    Fail,
}

/// A validated materialize() configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterializeConfig {
    pub schedule: String,
    pub refresh_mode: RefreshMode,
    pub initialize: bool,
    pub full_refresh: bool,
    pub on_configuration_change: OnConfigurationChange,
    /// `None` leaves the status as it is (a suspended table stays suspended).
    pub status: Option<Status>,
    /// The query was compiled by `dbt run --empty` (every ref and source emptied): an existing
    /// relation is left as it is, a missing one is created without rows from the query with
    /// dbt's emptying undone.
    pub empty: bool,
    /// An unchanged (or altered) stream table is refreshed within the call, so what follows in
    /// the same `dbt build` (tests) reads current rows.
    pub refresh_on_run: bool,
    /// The stream table is a partitioned table (`None`: a plain table).
    pub partition_by: Option<PartitionSpec>,
    /// The stream table is made a Citus table (`distribution_column`, `reference_table`).
    pub citus: Option<crate::citus_table::CitusTable>,
}

/// Keys materialize() accepts, in the order the error message lists them.
pub const ACCEPTED_KEYS: &[&str] = &[
    "schedule",
    "refresh_mode",
    "initialize",
    "full_refresh",
    "on_configuration_change",
    "status",
    "empty",
    "refresh_on_run",
    "partition_by",
    "distribution_column",
    "reference_table",
];

/// A config value materialize() refuses; `key` is the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid materialize() config key \"{key}\": {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
    pub accepted: String,
}

impl Default for MaterializeConfig {
    fn default() -> Self {
        MaterializeConfig {
            schedule: "1m".into(),
            refresh_mode: RefreshMode::Differential,
            initialize: true,
            full_refresh: false,
            on_configuration_change: OnConfigurationChange::Apply,
            status: None,
            empty: false,
            refresh_on_run: false,
            partition_by: None,
            citus: None,
        }
    }
}

fn error(key: &str, problem: impl Into<String>, accepted: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        problem: problem.into(),
        accepted: accepted.into(),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        Value::String(s) => format!("\"{s}\""),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn text<'a>(key: &str, value: &'a Value, accepted: &str) -> Result<&'a str, ConfigError> {
    value.as_str().ok_or_else(|| {
        error(
            key,
            format!("expected a string, got {}", describe(value)),
            accepted,
        )
    })
}

fn boolean(key: &str, value: &Value) -> Result<bool, ConfigError> {
    value.as_bool().ok_or_else(|| {
        error(
            key,
            format!("expected a boolean, got {}", describe(value)),
            "true or false",
        )
    })
}

impl MaterializeConfig {
    /// Validates `config`: a JSON object of the accepted keys; a null value means "default".
    pub fn parse(config: &Value) -> Result<MaterializeConfig, ConfigError> {
        let object = match config {
            Value::Null => return Ok(Self::default()),
            Value::Object(object) => object,
            other => {
                return Err(error(
                    "config",
                    format!("expected a JSON object, got {}", describe(other)),
                    format!("an object with keys {}", ACCEPTED_KEYS.join(", ")),
                ))
            }
        };
        let mut parsed = Self::default();
        let mut keys: Vec<&String> = object.keys().collect();
        keys.sort();
        for key in keys {
            let value = &object[key];
            if !ACCEPTED_KEYS.contains(&key.as_str()) {
                return Err(error(key, "unknown key", ACCEPTED_KEYS.join(", ")));
            }
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "schedule" => {
                    let accepted = crate::schedule::ACCEPTED_SCHEDULES;
                    let schedule = text(key, value, accepted)?;
                    Schedule::parse(schedule).map_err(|e| error(key, e.to_string(), accepted))?;
                    parsed.schedule = schedule.trim().to_string();
                }
                "refresh_mode" => {
                    let accepted = crate::modes::ACCEPTED_REFRESH_MODES;
                    parsed.refresh_mode = RefreshMode::parse(text(key, value, accepted)?)
                        .map_err(|e| error(key, e.to_string(), accepted))?;
                }
                "status" => {
                    let accepted = crate::modes::ACCEPTED_STATUSES;
                    parsed.status = Some(
                        Status::parse(text(key, value, accepted)?)
                            .map_err(|e| error(key, e.to_string(), accepted))?,
                    );
                }
                "on_configuration_change" => {
                    let accepted = "apply, continue, fail";
                    parsed.on_configuration_change = match text(key, value, accepted)?
                        .trim()
                        .to_ascii_lowercase()
                        .as_str()
                    {
                        "apply" => OnConfigurationChange::Apply,
                        "continue" => OnConfigurationChange::Continue,
                        "fail" => OnConfigurationChange::Fail,
                        _ => {
                            return Err(error(
                                key,
                                format!("invalid value {}", describe(value)),
                                accepted,
                            ))
                        }
                    };
                }
                "initialize" => parsed.initialize = boolean(key, value)?,
                "full_refresh" => parsed.full_refresh = boolean(key, value)?,
                "empty" => parsed.empty = boolean(key, value)?,
                "refresh_on_run" => parsed.refresh_on_run = boolean(key, value)?,
                "partition_by" => {
                    let spec = text(key, value, ACCEPTED_PARTITION_BY)?;
                    parsed.partition_by = Some(
                        PartitionSpec::parse(spec)
                            .map_err(|e| error(key, e.why, ACCEPTED_PARTITION_BY))?,
                    );
                }
                "distribution_column" => {
                    let column = text(key, value, "a column name of the model")?;
                    if column.is_empty() {
                        return Err(error(key, "empty", "a column name of the model"));
                    }
                    if object.get("reference_table").and_then(Value::as_bool) == Some(true) {
                        return Err(error(
                            key,
                            "given with reference_table: true",
                            "a distribution column or reference_table: true, not both",
                        ));
                    }
                    parsed.citus = Some(crate::citus_table::CitusTable::DistributedBy(
                        column.to_string(),
                    ));
                }
                "reference_table" => {
                    if boolean(key, value)? && parsed.citus.is_none() {
                        parsed.citus = Some(crate::citus_table::CitusTable::Reference);
                    }
                }
                _ => unreachable!("every accepted key is handled"),
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_and_null_configs_give_the_seed_defaults() {
        for config in [
            json!({}),
            Value::Null,
            json!({"schedule": null, "status": null}),
        ] {
            let parsed = MaterializeConfig::parse(&config).unwrap();
            assert_eq!(parsed, MaterializeConfig::default());
        }
        let defaults = MaterializeConfig::default();
        assert_eq!(defaults.schedule, "1m");
        assert_eq!(defaults.refresh_mode, RefreshMode::Differential);
        assert!(defaults.initialize && !defaults.full_refresh);
    }

    #[test]
    fn every_key_parses() {
        let parsed = MaterializeConfig::parse(&json!({
            "schedule": " 5m ", "refresh_mode": "full", "initialize": false,
            "full_refresh": true, "on_configuration_change": "Fail", "status": "suspended",
            "empty": true, "refresh_on_run": true, "partition_by": "range (day)"
        }))
        .unwrap();
        assert_eq!(
            parsed,
            MaterializeConfig {
                schedule: "5m".into(),
                refresh_mode: RefreshMode::Full,
                initialize: false,
                full_refresh: true,
                on_configuration_change: OnConfigurationChange::Fail,
                status: Some(Status::Suspended),
                empty: true,
                refresh_on_run: true,
                partition_by: Some(PartitionSpec::parse("RANGE (day)").unwrap()),
                citus: None,
            }
        );
    }

    #[test]
    fn a_citus_table_is_distributed_by_a_column_or_a_reference_table() {
        use crate::citus_table::CitusTable;
        let parse = |v: Value| MaterializeConfig::parse(&v).unwrap().citus;
        assert_eq!(
            parse(json!({"distribution_column": "customer_id"})),
            Some(CitusTable::DistributedBy("customer_id".into()))
        );
        assert_eq!(
            parse(json!({"reference_table": true})),
            Some(CitusTable::Reference)
        );
        assert_eq!(parse(json!({"reference_table": false})), None);
        assert_eq!(
            parse(json!({"reference_table": false, "distribution_column": "c"})),
            Some(CitusTable::DistributedBy("c".into()))
        );
    }

    #[test]
    fn bad_configs_name_the_key_and_what_is_accepted() {
        let cases = [
            (
                json!({"schedul": "1m"}),
                "schedul",
                "schedule, refresh_mode",
            ),
            (json!({"schedule": "soon"}), "schedule", "cron"),
            (json!({"schedule": 5}), "schedule", "duration"),
            (
                json!({"refresh_mode": "FAST"}),
                "refresh_mode",
                "FULL, DIFFERENTIAL, AUTO",
            ),
            (json!({"refresh_mode": true}), "refresh_mode", "FULL"),
            (json!({"initialize": "yes"}), "initialize", "true or false"),
            (json!({"full_refresh": 1}), "full_refresh", "true or false"),
            (json!({"empty": "yes"}), "empty", "true or false"),
            (
                json!({"refresh_on_run": "always"}),
                "refresh_on_run",
                "true or false",
            ),
            (
                json!({"on_configuration_change": "ignore"}),
                "on_configuration_change",
                "apply, continue, fail",
            ),
            (json!({"status": "PAUSED"}), "status", "ACTIVE, SUSPENDED"),
            (
                json!({"partition_by": "BY DAY"}),
                "partition_by",
                "RANGE (column",
            ),
            (
                json!({"partition_by": ["day"]}),
                "partition_by",
                "LIST (column)",
            ),
            (
                json!({"distribution_column": 3}),
                "distribution_column",
                "a column name",
            ),
            (
                json!({"distribution_column": ""}),
                "distribution_column",
                "a column name",
            ),
            (
                json!({"distribution_column": "c", "reference_table": true}),
                "distribution_column",
                "not both",
            ),
            (
                json!({"reference_table": "yes"}),
                "reference_table",
                "true or false",
            ),
            (json!([1, 2]), "config", "an object"),
            (json!("1m"), "config", "an object"),
        ];
        for (config, key, accepted) in cases {
            let err = MaterializeConfig::parse(&config).unwrap_err();
            assert_eq!(err.key, key, "{config}");
            assert!(
                err.accepted.contains(accepted),
                "{config}: {}",
                err.accepted
            );
        }
    }
}
