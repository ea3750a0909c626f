//! pgstream_dbt.materialize(), normalize_query() and query_hash(): the dbt entry points.

use super::required;
use crate::error::{OrRaise, StreamError};
use crate::materialize::config::MaterializeConfig;
use crate::materialize::execute;
use crate::names::ObjectName;
use crate::normalize;
use pgrx::prelude::*;
use pgrx::JsonB;

/// Creates, leaves unchanged, alters or recreates stream table `name` so it is defined by
/// `query` with `config`; returns what it did and why.
#[pg_extern(volatile, schema = "pgstream_dbt")]
fn materialize(
    name: Option<&str>,
    query: Option<&str>,
    config: default!(Option<JsonB>, "'{}'"),
) -> JsonB {
    let name = required(name, "name");
    let query = required(query, "query");
    let config = config.map(|c| c.0).unwrap_or(serde_json::Value::Null);
    let config = MaterializeConfig::parse(&config).unwrap_or_else(|e| {
        StreamError::InvalidParameter {
            message: e.to_string(),
            hint: format!("Accepted: {}.", e.accepted),
        }
        .raise()
    });
    let parsed = ObjectName::parse(name).or_raise();
    JsonB(execute::materialize(&parsed, query, &config))
}

/// The canonical text materialize() hashes: comments, white space and keyword case removed.
#[pg_extern(immutable, strict, parallel_safe, schema = "pgstream_dbt")]
fn normalize_query(query: &str) -> String {
    normalize::normalize_query(query)
}

/// SHA-256 (hex) of the normalized query: what decides whether a model's query changed.
#[pg_extern(immutable, strict, parallel_safe, schema = "pgstream_dbt")]
fn query_hash(query: &str) -> String {
    normalize::query_hash(query)
}
