//! Carrying out a materialize() decision under the per-name lock, and the jsonb it returns.

use super::config::MaterializeConfig;
use super::planner::{self, describe_changes, Change, Decision, Existing, Target};
use super::swap::{self, Previous};
use crate::catalog::{display_name, StreamTable};
use crate::engine::{self, Definition};
use crate::error::StreamError;
use crate::names::ObjectName;
use crate::normalize;
use crate::refresh::{self, FailureRecording, Origin};
use crate::relation_kind::RelationKind;
use crate::resolve;
use pgrx::prelude::*;
use serde_json::{json, Value};

fn changes_json(changes: &[Change]) -> Value {
    Value::Array(
        changes
            .iter()
            .map(|c| json!({"key": c.key, "from": c.from, "to": c.to}))
            .collect(),
    )
}

/// Runs materialize() for `name` (parsed) with `query` and a validated `config`.
pub fn materialize(parsed: &ObjectName, query: &str, config: &MaterializeConfig) -> Value {
    let schedule = engine::validate_schedule(&config.schedule);
    let config = &MaterializeConfig {
        schedule,
        ..config.clone()
    };
    let schema = resolve::creation_schema(parsed);
    let name = parsed.name.as_str();
    let shown = display_name(&schema, name);
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2))",
        &[crate::lock_keys::MATERIALIZE.into(), shown.as_str().into()],
    )
    .unwrap_or_else(|e| panic!("taking the materialize lock failed: {e}"));

    let relid = resolve::relation_oid(&schema, name);
    let existing = relid.and_then(resolve::find_stream_table);
    // Under `dbt run --empty` every ref and source is an emptied subquery: the query to store
    // is the one a normal run compiles.
    let (query, restored) = if config.empty {
        super::dbt_empty::restore_empty_refs(query)
    } else {
        (query.to_string(), 0)
    };
    let query_hash = normalize::query_hash(&query);
    let call = Call {
        schema: &schema,
        name,
        shown: &shown,
        relid,
        existing: existing.as_ref(),
        definition: Definition {
            query: &query,
            schedule: &config.schedule,
            refresh_mode: config.refresh_mode,
            status: config.status,
            partition_by: config.partition_by.as_ref(),
            citus: config.citus.as_ref(),
        },
        config,
        restored,
    };
    let mut result = json!({
        "stream_table": shown,
        "query_hash": query_hash,
        "previous_query_hash": existing.as_ref().and_then(|st| st.query_hash.clone()),
        "changes": [],
        "warnings": [],
    });
    let decision = planner::plan(&call.target(), &query_hash, config);
    let (action, reason) = call.carry_out(decision, &mut result);
    // refresh_on_run: a stream table this call left in place (unchanged, altered, kept) is
    // refreshed now, so what follows in the same `dbt build` reads current rows.
    let reason = match action {
        "unchanged" | "altered"
            if config.refresh_on_run && !config.empty && result.get("refreshed").is_none() =>
        {
            call.refresh_on_run(reason, &mut result)
        }
        _ => reason,
    };
    result["action"] = json!(action);
    result["reason"] = json!(reason);
    result
}

/// One materialize() call: the name, what holds it, and the definition the model asks for.
struct Call<'a> {
    schema: &'a str,
    name: &'a str,
    /// The name for messages.
    shown: &'a str,
    relid: Option<pg_sys::Oid>,
    existing: Option<&'a StreamTable>,
    definition: Definition<'a>,
    config: &'a MaterializeConfig,
    /// The emptied ref/source relations a `--empty` run's query had restored.
    restored: usize,
}

impl Call<'_> {
    /// What holds the name, as the pure planner sees it.
    fn target(&self) -> Target {
        match (self.relid, self.existing) {
            (None, _) => Target::Missing,
            (Some(_), Some(st)) => Target::StreamTable(Existing {
                query_hash: st.query_hash.clone(),
                schedule: st.schedule.clone(),
                refresh_mode: st.refresh_mode,
                status: st.status,
                populated: st.populated,
                settings_changes: crate::query_settings::differences(
                    &crate::query_settings::decode(&st.query_settings),
                    &crate::query_settings::decode(&crate::settings::pinned_now()),
                ),
                partition_by: crate::partitioned::spec_of(st.relid),
                citus: crate::distributed::citus_table_of(st.relid),
            }),
            (Some(oid), None) => Target::OtherRelation {
                kind: relation_kind(oid),
            },
        }
    }

    /// Carries out `decision`; returns the action and its reason, and fills in `result`.
    fn carry_out(&self, decision: Decision, result: &mut Value) -> (&'static str, String) {
        let shown = self.shown;
        match decision {
            Decision::Create => {
                self.create(self.config.initialize);
                ("created", "stream table did not exist".to_string())
            }
            Decision::CreateEmpty => {
                self.create(false);
                (
                    "created",
                    format!(
                        "stream table did not exist; created without rows for dbt --empty \
                         ({} emptied ref/source relations restored in its stored query)",
                        self.restored
                    ),
                )
            }
            Decision::LeaveForEmptyRun { kind } => (
                "unchanged",
                format!("dbt --empty leaves the existing {kind} as it is"),
            ),
            Decision::Unchanged => ("unchanged", "query and configuration unchanged".to_string()),
            Decision::Populate => {
                let table = self.existing.expect("populate needs a stream table");
                refresh::refresh_now(table, FailureRecording::None, Origin::Request);
                result["refreshed"] = json!(true);
                (
                    "unchanged",
                    "query and configuration unchanged; populated (it had never been refreshed)"
                        .to_string(),
                )
            }
            Decision::Alter { changes } => {
                let table = self.existing.expect("alter needs a stream table");
                let touched = |key: &str| changes.iter().any(|c| c.key == key);
                engine::alter(
                    table,
                    touched("schedule").then_some(self.config.schedule.as_str()),
                    touched("refresh_mode").then_some(self.config.refresh_mode),
                    self.config.status.filter(|_| touched("status")),
                );
                result["changes"] = changes_json(&changes);
                (
                    "altered",
                    format!("configuration changed ({})", describe_changes(&changes)),
                )
            }
            Decision::Keep { changes } => {
                let warning = format!(
                    "{shown} has configuration changes that were not applied because \
                     on_configuration_change is 'continue': {}",
                    describe_changes(&changes)
                );
                warning!("pg_stream_dbt: {warning}");
                result["changes"] = changes_json(&changes);
                result["warnings"] = json!([warning]);
                (
                    "unchanged",
                    "on_configuration_change is 'continue'; configuration changes not applied"
                        .to_string(),
                )
            }
            Decision::Refuse { changes } => StreamError::ConfigurationChangeRefused {
                name: shown.to_string(),
                changes: describe_changes(&changes),
            }
            .raise(),
            Decision::NameTaken { kind } => StreamError::NotAStreamTableToReplace {
                name: shown.to_string(),
                kind,
            }
            .raise(),
            Decision::Recreate { reason } => {
                self.recreate(result);
                ("recreated", reason)
            }
        }
    }

    /// Creates the stream table (populated when `initialize`), made the Citus table the config
    /// asks for.
    fn create(&self, initialize: bool) -> StreamTable {
        let created = engine::create(self.schema, self.name, &self.definition, initialize);
        if let Some(citus) = &self.config.citus {
            crate::distributed::distribute_as(&created, citus);
        }
        created
    }

    /// Recreates the stream table (or replaces the relation holding its name), made the Citus
    /// table the config asks for (a table built beside is distributed once swapped in: Citus
    /// names the shards after the table).
    fn recreate(&self, result: &mut Value) {
        let previous = match (self.existing, self.relid) {
            (Some(st), _) => Previous::StreamTable(st),
            (None, Some(oid)) => Previous::Relation {
                relid: oid,
                kind: relation_kind(oid),
            },
            (None, None) => unreachable!("recreate needs an existing relation"),
        };
        let recreated = swap::recreate(self.schema, self.name, previous, &self.definition);
        if let Some(citus) = &self.config.citus {
            if crate::distributed::citus_table_of(recreated.table.relid).as_ref() != Some(citus) {
                crate::distributed::distribute_as(&recreated.table, citus);
            }
        }
        result["in_place"] = json!(recreated.in_place);
        result["readers"] = json!(recreated.readers);
        if !recreated.dropped_dependents.is_empty() {
            result["warnings"] = json!([format!(
                "dropped objects that depended on the old table: {}",
                recreated.dropped_dependents.join(", ")
            )]);
        }
    }

    /// Refreshes the stream table this call left in place (`refresh_on_run`); returns `reason`
    /// with what the refresh did.
    fn refresh_on_run(&self, reason: String, result: &mut Value) -> String {
        let table = resolve::relation_oid(self.schema, self.name)
            .and_then(resolve::find_stream_table)
            .expect("the stream table materialize() kept exists");
        let applied = refresh::refresh_now(&table, FailureRecording::None, Origin::Request);
        let kind = crate::catalog::last_refresh_kind(table.id).unwrap_or_default();
        result["refreshed"] = json!(true);
        result["refresh"] = json!({
            "kind": kind,
            "inserted": applied.inserted,
            "updated": applied.updated,
            "deleted": applied.deleted,
        });
        format!("{reason}; refreshed ({kind}, refresh_on_run)")
    }
}

/// The kind of relation `relid`.
fn relation_kind(relid: pg_sys::Oid) -> RelationKind {
    let relkind = Spi::get_one_with_args::<String>(
        "SELECT relkind::text FROM pg_catalog.pg_class WHERE oid = $1",
        &[relid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    RelationKind::from_relkind(&relkind)
}
