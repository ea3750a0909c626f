//! The engine's gateway to its catalog: pgstream.pgs_stream_tables (`stream_tables`, and the
//! refresh bookkeeping in `refresh_records`), pgstream.pgs_dependencies (`dependencies`) and the
//! change records a refresh reads (`change_state`); a few readers elsewhere: see
//! docs/ARCHITECTURE.md section 3.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

use crate::modes::{EffectiveMode, RefreshMode, Status};
use crate::settings::{self, Restriction};

mod change_state;
mod dependencies;
mod refresh_records;
mod stream_tables;

pub use change_state::*;
pub use dependencies::*;
pub use refresh_records::*;
pub use stream_tables::*;

/// One row of pgstream.pgs_stream_tables, the parts the engine acts on.
#[derive(Debug, Clone)]
pub struct StreamTable {
    pub id: i64,
    pub query_hash: Option<String>,
    /// The search_path the defining query is resolved with (captured at create).
    pub search_path: String,
    /// Whether the result changes only when a source does (so an unchanged source can be skipped).
    pub depends_only_on_sources: bool,
    /// When not: what makes its result change by itself.
    pub changes_by_itself: Option<String>,
    /// The settings its refreshes run with, as `name=value`.
    pub query_settings: Vec<String>,
    /// Where the last refresh left off in the sources' changes.
    pub consumed: Option<Position>,
    /// What refresh_mode resolved to, None until decided.
    pub effective_mode: Option<EffectiveMode>,
    pub relid: pg_sys::Oid,
    pub schema: String,
    pub name: String,
    pub defining_query: String,
    pub schedule: String,
    pub refresh_mode: RefreshMode,
    pub status: Status,
    /// Whether it was ever refreshed (one created without `initialize` was not).
    pub populated: bool,
    /// The columns of its unique key; None: a multiset with `__pgs_row_id`.
    pub row_key: Option<Vec<String>>,
    /// What its query meant when last analyzed (pgstream._meaning); None: not known.
    pub meaning: Option<String>,
}

impl StreamTable {
    /// `"schema"."name"`, quoted for SQL.
    pub fn qualified(&self) -> String {
        pgrx::spi::quote_qualified_identifier(&self.schema, &self.name)
    }

    /// `schema.name` for messages, quoted only where needed.
    pub fn display_name(&self) -> String {
        display_name(&self.schema, &self.name)
    }
}

/// A point in the sources' change history: the changes a refresh covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Committed changes visible in this snapshot (text form) are covered...
    pub snapshot: String,
    /// ...and the refreshing transaction's own changes up to sequence number `own_seq`.
    pub own_xid: Option<String>,
    pub own_seq: Option<i64>,
}

impl Position {
    /// The position in the first three columns of a result's current row (snapshot text, own xid text, own
    /// sequence number), as the refresh statements return it.
    pub fn from_row(row: &pgrx::spi::SpiTupleTable) -> Result<Position, pgrx::spi::Error> {
        Ok(Position {
            snapshot: row.get::<String>(1)?.expect("a covered snapshot"),
            own_xid: row.get::<String>(2)?,
            own_seq: row.get::<i64>(3)?,
        })
    }
}

/// `schema.name` for messages: each part quoted only where PostgreSQL would need it.
pub fn display_name(schema: &str, name: &str) -> String {
    format!(
        "{}.{}",
        pgrx::spi::quote_identifier(schema),
        pgrx::spi::quote_identifier(name)
    )
}

// Every query here goes through `connect_mut`/`update` (read-write SPI): pgrx runs `select` read-only
// while the current (sub)transaction has no xid, and a read-only query would not see the rows and
// tables this transaction made earlier in the same statement.

/// Runs `body` with the privileges of the extension's owner, who owns the catalog tables.
/// Callers have already checked that the current user may act on the stream table.
pub(crate) fn as_catalog_owner<R>(body: impl FnOnce() -> R) -> R {
    let owner: pg_sys::Oid = crate::kept_plans::one(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pg_stream_dbt'",
        &[],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("extension pg_stream_dbt is not installed in this database"));
    // The owner is a superuser: nothing the caller put on search_path may be resolved.
    settings::as_user(owner, Restriction::None, || {
        settings::with_settings(&[(c"search_path", "pg_catalog, pg_temp")], body)
    })
}

pub(super) fn run(sql: &str, args: &[DatumWithOid]) {
    Spi::connect_mut(|client| client.update(sql, None, args).map(|_| ()))
        .unwrap_or_else(|e| panic!("updating the pg_stream_dbt catalog failed: {e}"));
}

/// Runs engine-internal `statements` (on pgstream_changes tables, such as aggregate state) as
/// the extension owner.
pub fn run_privileged(statements: &[String]) {
    as_catalog_owner(|| {
        crate::capture::setup::as_engine_ddl(|| {
            for statement in statements {
                run(statement, &[]);
            }
        })
    })
}

/// Whether relation `name` (qualified, quoted) exists, looked up as the extension owner.
pub fn private_relation_exists(name: &str) -> bool {
    as_catalog_owner(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
            &[name.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    })
}
