//! Carrying out a materialize() decision under the per-name lock, and the jsonb it returns.

use super::config::MaterializeConfig;
use super::planner::{self, describe_changes, Change, Decision, Existing, Target};
use super::swap::{self, Previous};
use crate::catalog::display_name;
use crate::engine::{self, Definition};
use crate::error::StreamError;
use crate::names::ObjectName;
use crate::normalize;
use crate::refresh::{self, FailureRecording, Skipping};
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
    let target = match (&relid, &existing) {
        (None, _) => Target::Missing,
        (Some(_), Some(st)) => Target::StreamTable(Existing {
            query_hash: st.query_hash.clone(),
            schedule: st.schedule.clone(),
            refresh_mode: st.refresh_mode.clone(),
            status: st.status.clone(),
            populated: st.populated,
            settings_changes: crate::query_settings::differences(
                &crate::query_settings::decode(&st.query_settings),
                &crate::query_settings::decode(&crate::settings::pinned_now()),
            ),
            partition_by: crate::partitioned::spec_of(st.relid),
        }),
        (Some(oid), None) => Target::OtherRelation {
            kind: relation_kind(*oid).1,
        },
    };
    // Under `dbt run --empty` every ref and source is an emptied subquery: the query to store
    // is the one a normal run compiles.
    let (query, restored) = if config.empty {
        super::dbt_empty::restore_empty_refs(query)
    } else {
        (query.to_string(), 0)
    };
    let query = query.as_str();
    let query_hash = normalize::query_hash(query);
    let previous_hash = existing.as_ref().and_then(|st| st.query_hash.clone());
    let definition = Definition {
        query,
        schedule: &config.schedule,
        refresh_mode: config.refresh_mode,
        status: config.status,
        partition_by: config.partition_by.as_ref(),
    };
    let mut result = json!({
        "stream_table": shown,
        "query_hash": query_hash,
        "previous_query_hash": previous_hash,
        "changes": [],
        "warnings": [],
    });
    let decision = planner::plan(&target, &query_hash, config);
    let (action, reason) = match decision {
        Decision::Create => {
            engine::create(&schema, name, &definition, config.initialize);
            ("created", "stream table did not exist".to_string())
        }
        Decision::CreateEmpty => {
            engine::create(&schema, name, &definition, false);
            (
                "created",
                format!(
                    "stream table did not exist; created without rows for dbt --empty \
                     ({restored} emptied ref/source relations restored in its stored query)"
                ),
            )
        }
        Decision::LeaveForEmptyRun { kind } => (
            "unchanged",
            format!("dbt --empty leaves the existing {kind} as it is"),
        ),
        Decision::Unchanged => ("unchanged", "query and configuration unchanged".to_string()),
        Decision::Populate => {
            let table = existing.as_ref().expect("populate needs a stream table");
            refresh::refresh_now(table, FailureRecording::None, Skipping::Never);
            result["refreshed"] = json!(true);
            (
                "unchanged",
                "query and configuration unchanged; populated (it had never been refreshed)"
                    .to_string(),
            )
        }
        Decision::Alter { changes } => {
            let table = existing.as_ref().expect("alter needs a stream table");
            let touched = |key: &str| changes.iter().any(|c| c.key == key);
            engine::alter(
                table,
                touched("schedule").then_some(config.schedule.as_str()),
                touched("refresh_mode").then_some(config.refresh_mode),
                config.status.filter(|_| touched("status")),
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
            name: shown.clone(),
            changes: describe_changes(&changes),
        }
        .raise(),
        Decision::NameTaken { kind } => StreamError::NotAStreamTableToReplace {
            name: shown.clone(),
            kind,
        }
        .raise(),
        Decision::Recreate { reason } => {
            let previous = match (&existing, relid) {
                (Some(st), _) => Previous::StreamTable(st),
                (None, Some(oid)) => Previous::Relation {
                    relid: oid,
                    relkind: relation_kind(oid).0,
                },
                (None, None) => unreachable!("recreate needs an existing relation"),
            };
            let recreated = swap::recreate(&schema, name, previous, &definition);
            result["in_place"] = json!(recreated.in_place);
            result["readers"] = json!(recreated.readers);
            if !recreated.dropped_dependents.is_empty() {
                result["warnings"] = json!([format!(
                    "dropped objects that depended on the old table: {}",
                    recreated.dropped_dependents.join(", ")
                )]);
            }
            ("recreated", reason)
        }
    };
    // refresh_on_run: a stream table this call left in place (unchanged, altered, kept) is
    // refreshed now, so what follows in the same `dbt build` reads current rows.
    let reason = match action {
        "unchanged" | "altered"
            if config.refresh_on_run && !config.empty && result.get("refreshed").is_none() =>
        {
            let table = resolve::relation_oid(&schema, name)
                .and_then(resolve::find_stream_table)
                .expect("the stream table materialize() kept exists");
            let applied = refresh::refresh_now(&table, FailureRecording::None, Skipping::Never);
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
        _ => reason,
    };
    result["action"] = json!(action);
    result["reason"] = json!(reason);
    result
}

/// (relkind, readable kind) of relation `relid`.
fn relation_kind(relid: pg_sys::Oid) -> (String, String) {
    let relkind = Spi::get_one_with_args::<String>(
        "SELECT relkind::text FROM pg_catalog.pg_class WHERE oid = $1",
        &[relid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    let readable = match relkind.as_str() {
        "r" => "table",
        "p" => "partitioned table",
        "v" => "view",
        "m" => "materialized view",
        "f" => "foreign table",
        "S" => "sequence",
        "i" | "I" => "index",
        "c" => "composite type",
        _ => "relation",
    };
    (relkind, readable.to_string())
}
