//! The materialize() decision: create, unchanged, alter, recreate — or keep / refuse under
//! `on_configuration_change` (pure, no SPI).

use super::config::{MaterializeConfig, OnConfigurationChange};
use crate::modes::{RefreshMode, Status};
use crate::partitioning::PartitionSpec;
use crate::relation_kind::RelationKind;

/// What currently holds the name materialize() was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Missing,
    StreamTable(Existing),
    /// A relation that is not a stream table (e.g. a table an earlier dbt materialization made).
    OtherRelation {
        kind: RelationKind,
    },
}

/// The stored state of an existing stream table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub query_hash: Option<String>,
    pub schedule: String,
    pub refresh_mode: RefreshMode,
    pub status: Status,
    /// Whether it was ever refreshed (one created by `dbt run --empty` or without `initialize`
    /// was not).
    pub populated: bool,
    /// The pinned session settings (query_settings) that differ between the stream table and
    /// this session, as `name from -> to`.
    pub settings_changes: Vec<String>,
    /// How the table is partitioned (`None`: a plain table).
    pub partition_by: Option<PartitionSpec>,
    /// What kind of Citus table it is (`None`: none).
    pub citus: Option<crate::citus_table::CitusTable>,
}

/// One setting that differs between the stream table and the model's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: &'static str,
    pub from: String,
    pub to: String,
}

/// What materialize() does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Create,
    /// `dbt run --empty` of a model that has no relation yet: create it without rows.
    CreateEmpty,
    /// `dbt run --empty` of a model whose relation exists: leave it exactly as it is.
    LeaveForEmptyRun {
        kind: String,
    },
    Unchanged,
    /// Unchanged, but never populated (created by `dbt run --empty`): populate it now.
    Populate,
    Alter {
        changes: Vec<Change>,
    },
    Recreate {
        reason: String,
    },
    /// `on_configuration_change = continue`: leave it, warn about `changes`.
    Keep {
        changes: Vec<Change>,
    },
    /// `on_configuration_change = fail`: refuse, naming `changes`.
    Refuse {
        changes: Vec<Change>,
    },
    /// The name is taken by a relation that is not a stream table and no full refresh was asked.
    NameTaken {
        kind: String,
    },
}

/// Settings that differ between `existing` and `config` (status only when the config sets it).
pub fn config_changes(existing: &Existing, config: &MaterializeConfig) -> Vec<Change> {
    let mut changes = Vec::new();
    if existing.schedule.trim() != config.schedule {
        changes.push(Change {
            key: "schedule",
            from: existing.schedule.clone(),
            to: config.schedule.clone(),
        });
    }
    if existing.refresh_mode != config.refresh_mode {
        changes.push(Change {
            key: "refresh_mode",
            from: existing.refresh_mode.as_str().to_string(),
            to: config.refresh_mode.as_str().to_string(),
        });
    }
    if let Some(status) = config.status {
        if existing.status != status {
            changes.push(Change {
                key: "status",
                from: existing.status.as_str().to_string(),
                to: status.as_str().to_string(),
            });
        }
    }
    changes
}

/// Decides what materialize() does for `target`, given the model's query hash and config.
/// A query change or a full refresh always recreates (with the new config);
/// `on_configuration_change` governs changes of schedule, refresh mode, status and partitioning
/// (applied by recreating).
pub fn plan(target: &Target, query_hash: &str, config: &MaterializeConfig) -> Decision {
    if config.empty {
        return match target {
            Target::Missing => Decision::CreateEmpty,
            Target::StreamTable(_) => Decision::LeaveForEmptyRun {
                kind: "stream table".into(),
            },
            Target::OtherRelation { kind } => Decision::LeaveForEmptyRun {
                kind: kind.describe().into(),
            },
        };
    }
    let existing = match target {
        Target::Missing => return Decision::Create,
        Target::OtherRelation { kind } if config.full_refresh => {
            return Decision::Recreate {
                reason: format!("full refresh replaces the existing {kind}"),
            }
        }
        Target::OtherRelation { kind } => {
            return Decision::NameTaken {
                kind: kind.describe().into(),
            }
        }
        Target::StreamTable(existing) => existing,
    };
    if config.full_refresh {
        return Decision::Recreate {
            reason: "full refresh requested".into(),
        };
    }
    match &existing.query_hash {
        None => {
            return Decision::Recreate {
                reason: "no query hash stored for the existing stream table".into(),
            }
        }
        Some(hash) if hash != query_hash => {
            return Decision::Recreate {
                reason: "query changed".into(),
            }
        }
        Some(_) => {}
    }
    if !existing.settings_changes.is_empty() {
        return Decision::Recreate {
            reason: format!(
                "session settings the query runs with changed ({})",
                existing.settings_changes.join(", ")
            ),
        };
    }
    let mut changes = config_changes(existing, config);
    // A changed partitioning is a configuration change too (dbt's on_configuration_change
    // governs it), applied by recreating: a table cannot be re-partitioned in place.
    let repartitioned = existing.partition_by != config.partition_by;
    if repartitioned {
        let shown = |spec: &Option<PartitionSpec>| {
            spec.as_ref()
                .map_or("none".to_string(), PartitionSpec::describe)
        };
        changes.insert(
            0,
            Change {
                key: "partition_by",
                from: shown(&existing.partition_by),
                to: shown(&config.partition_by),
            },
        );
    }
    // So is a changed Citus distribution, applied by recreating as well.
    let redistributed = existing.citus != config.citus;
    if redistributed {
        use crate::citus_table::CitusTable;
        changes.insert(
            usize::from(repartitioned),
            Change {
                key: "distribution",
                from: CitusTable::describe(&existing.citus),
                to: CitusTable::describe(&config.citus),
            },
        );
    }
    if changes.is_empty() {
        if !existing.populated && config.initialize {
            return Decision::Populate;
        }
        return Decision::Unchanged;
    }
    match config.on_configuration_change {
        OnConfigurationChange::Apply if repartitioned || redistributed => Decision::Recreate {
            reason: format!(
                "{} changed ({} -> {})",
                changes[0].key, changes[0].from, changes[0].to
            ),
        },
        OnConfigurationChange::Apply => Decision::Alter { changes },
        OnConfigurationChange::Continue => Decision::Keep { changes },
        OnConfigurationChange::Fail => Decision::Refuse { changes },
    }
}

/// `schedule: 1m -> 5m, status: ACTIVE -> SUSPENDED` for messages.
pub fn describe_changes(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| format!("{}: {} -> {}", c.key, c.from, c.to))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing() -> Target {
        Target::StreamTable(Existing {
            query_hash: Some("h1".into()),
            schedule: "1m".into(),
            refresh_mode: RefreshMode::Full,
            status: Status::Active,
            populated: true,
            settings_changes: vec![],
            partition_by: None,
            citus: None,
        })
    }

    fn config() -> MaterializeConfig {
        MaterializeConfig {
            refresh_mode: RefreshMode::Full,
            ..MaterializeConfig::default()
        }
    }

    #[test]
    fn the_contract_table() {
        assert_eq!(plan(&Target::Missing, "h1", &config()), Decision::Create);
        assert_eq!(plan(&existing(), "h1", &config()), Decision::Unchanged);
        assert_eq!(
            plan(&existing(), "h2", &config()),
            Decision::Recreate {
                reason: "query changed".into()
            }
        );
        let full = MaterializeConfig {
            full_refresh: true,
            ..config()
        };
        assert_eq!(
            plan(&existing(), "h1", &full),
            Decision::Recreate {
                reason: "full refresh requested".into()
            }
        );
        let five = MaterializeConfig {
            schedule: "5m".into(),
            ..config()
        };
        assert_eq!(
            plan(&existing(), "h1", &five),
            Decision::Alter {
                changes: vec![Change {
                    key: "schedule",
                    from: "1m".into(),
                    to: "5m".into()
                }]
            }
        );
    }

    #[test]
    fn an_empty_run_creates_what_is_missing_and_leaves_everything_else() {
        let empty = MaterializeConfig {
            empty: true,
            ..config()
        };
        assert_eq!(plan(&Target::Missing, "h9", &empty), Decision::CreateEmpty);
        // Whatever the hash, schedule or full refresh says.
        for config in [
            empty.clone(),
            MaterializeConfig {
                full_refresh: true,
                schedule: "5m".into(),
                ..empty.clone()
            },
        ] {
            assert_eq!(
                plan(&existing(), "h9", &config),
                Decision::LeaveForEmptyRun {
                    kind: "stream table".into()
                }
            );
        }
        let view = Target::OtherRelation {
            kind: RelationKind::View,
        };
        assert_eq!(
            plan(&view, "h9", &empty),
            Decision::LeaveForEmptyRun {
                kind: "view".into()
            }
        );
        // The next normal run populates what the empty run created.
        let unpopulated = Target::StreamTable(Existing {
            populated: false,
            ..match existing() {
                Target::StreamTable(e) => e,
                _ => unreachable!(),
            }
        });
        assert_eq!(plan(&unpopulated, "h1", &config()), Decision::Populate);
        let no_init = MaterializeConfig {
            initialize: false,
            ..config()
        };
        assert_eq!(plan(&unpopulated, "h1", &no_init), Decision::Unchanged);
    }

    #[test]
    fn a_changed_citus_distribution_recreates_the_stream_table() {
        use crate::citus_table::CitusTable;
        let distributed = MaterializeConfig {
            citus: Some(CitusTable::DistributedBy("c".into())),
            ..config()
        };
        assert_eq!(
            plan(&existing(), "h1", &distributed),
            Decision::Recreate {
                reason: "distribution changed (none -> distributed by c)".into()
            }
        );
        let existing_distributed = Target::StreamTable(Existing {
            citus: Some(CitusTable::DistributedBy("c".into())),
            ..match existing() {
                Target::StreamTable(e) => e,
                _ => unreachable!(),
            }
        });
        assert_eq!(
            plan(&existing_distributed, "h1", &distributed),
            Decision::Unchanged
        );
        let reference = MaterializeConfig {
            citus: Some(CitusTable::Reference),
            on_configuration_change: OnConfigurationChange::Continue,
            ..config()
        };
        assert_eq!(
            plan(&existing_distributed, "h1", &reference),
            Decision::Keep {
                changes: vec![Change {
                    key: "distribution",
                    from: "distributed by c".into(),
                    to: "reference table".into(),
                }]
            }
        );
    }

    #[test]
    fn a_changed_partition_by_recreates_the_stream_table() {
        let by_day = MaterializeConfig {
            partition_by: Some(PartitionSpec::parse("RANGE (day)").unwrap()),
            ..config()
        };
        assert_eq!(
            plan(&existing(), "h1", &by_day),
            Decision::Recreate {
                reason: "partition_by changed (none -> RANGE (day))".into()
            }
        );
        let partitioned = Target::StreamTable(Existing {
            partition_by: Some(PartitionSpec::parse("range(DAY)").unwrap()),
            ..match existing() {
                Target::StreamTable(e) => e,
                _ => unreachable!(),
            }
        });
        assert_eq!(plan(&partitioned, "h1", &by_day), Decision::Unchanged);
        let hashed = MaterializeConfig {
            partition_by: Some(PartitionSpec::parse("HASH (day) PARTITIONS 8").unwrap()),
            ..config()
        };
        assert_eq!(
            plan(&partitioned, "h1", &hashed),
            Decision::Recreate {
                reason: "partition_by changed (RANGE (day) -> HASH (day) PARTITIONS 8)".into()
            }
        );
        let refusing = MaterializeConfig {
            on_configuration_change: OnConfigurationChange::Fail,
            schedule: "5m".into(),
            ..hashed.clone()
        };
        let expected = vec![
            Change {
                key: "partition_by",
                from: "RANGE (day)".into(),
                to: "HASH (day) PARTITIONS 8".into(),
            },
            Change {
                key: "schedule",
                from: "1m".into(),
                to: "5m".into(),
            },
        ];
        assert_eq!(
            plan(&partitioned, "h1", &refusing),
            Decision::Refuse {
                changes: expected.clone()
            }
        );
        let continuing = MaterializeConfig {
            on_configuration_change: OnConfigurationChange::Continue,
            ..refusing
        };
        assert_eq!(
            plan(&partitioned, "h1", &continuing),
            Decision::Keep { changes: expected }
        );
    }

    #[test]
    fn changed_session_settings_recreate_the_stream_table() {
        let moved = Target::StreamTable(Existing {
            settings_changes: vec!["TimeZone UTC -> Europe/Berlin".into()],
            ..match existing() {
                Target::StreamTable(e) => e,
                _ => unreachable!(),
            }
        });
        assert_eq!(
            plan(&moved, "h1", &config()),
            Decision::Recreate {
                reason:
                    "session settings the query runs with changed (TimeZone UTC -> Europe/Berlin)"
                        .into()
            }
        );
    }

    #[test]
    fn on_configuration_change_governs_config_changes_only() {
        let keep = MaterializeConfig {
            schedule: "5m".into(),
            status: Some(Status::Suspended),
            on_configuration_change: OnConfigurationChange::Continue,
            ..config()
        };
        match plan(&existing(), "h1", &keep) {
            Decision::Keep { changes } => {
                assert_eq!(
                    describe_changes(&changes),
                    "schedule: 1m -> 5m, status: ACTIVE -> SUSPENDED"
                )
            }
            other => panic!("{other:?}"),
        }
        let fail = MaterializeConfig {
            on_configuration_change: OnConfigurationChange::Fail,
            ..keep.clone()
        };
        assert!(matches!(
            plan(&existing(), "h1", &fail),
            Decision::Refuse { .. }
        ));
        // A query change still recreates.
        assert!(matches!(
            plan(&existing(), "h2", &fail),
            Decision::Recreate { .. }
        ));
        // No change: unchanged whatever the policy.
        let quiet = MaterializeConfig {
            on_configuration_change: OnConfigurationChange::Fail,
            ..config()
        };
        assert_eq!(plan(&existing(), "h1", &quiet), Decision::Unchanged);
    }

    #[test]
    fn status_is_managed_only_when_configured() {
        let Target::StreamTable(mut suspended) = existing() else {
            unreachable!()
        };
        suspended.status = Status::Suspended;
        let target = Target::StreamTable(suspended);
        assert_eq!(plan(&target, "h1", &config()), Decision::Unchanged);
        let activate = MaterializeConfig {
            status: Some(Status::Active),
            ..config()
        };
        assert!(matches!(
            plan(&target, "h1", &activate),
            Decision::Alter { .. }
        ));
    }

    #[test]
    fn a_relation_that_is_not_a_stream_table_needs_a_full_refresh() {
        let table = Target::OtherRelation {
            kind: RelationKind::Table,
        };
        assert_eq!(
            plan(&table, "h1", &config()),
            Decision::NameTaken {
                kind: "table".into()
            }
        );
        let full = MaterializeConfig {
            full_refresh: true,
            ..config()
        };
        assert!(matches!(
            plan(&table, "h1", &full),
            Decision::Recreate { .. }
        ));
    }

    #[test]
    fn a_missing_stored_hash_recreates() {
        let Target::StreamTable(mut legacy) = existing() else {
            unreachable!()
        };
        legacy.query_hash = None;
        assert!(matches!(
            plan(&Target::StreamTable(legacy), "h1", &config()),
            Decision::Recreate { .. }
        ));
    }
}
