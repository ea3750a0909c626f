//! Change capture: the triggers that record what changed in the relations stream tables read,
//! the buffers of changed rows for DIFFERENTIAL readers, and the set-up that keeps them in step
//! with the catalog.

pub mod citus;
pub use pgstream_core::object_names as objects;
pub mod partitions;
pub mod setup;
pub mod trigger;
pub mod trigger_toggles;
pub mod verified;

use pgrx::prelude::*;

/// Makes the capture objects of `sources` match their readers (for the DDL event triggers).
#[pg_extern(volatile, schema = "pgstream", name = "_sync_capture")]
fn sync_capture_sql(sources: Vec<pg_sys::Oid>) {
    setup::sync(&sources);
}

/// Whether this session is running the engine's own DDL: it changes no query's meaning.
#[pg_extern(volatile, schema = "pgstream", name = "_engine_ddl_running")]
fn engine_ddl_running() -> bool {
    setup::engine_ddl_running()
}

/// Removes every capture trigger from users' tables and the engine's private tables (before
/// DROP EXTENSION).
#[pg_extern(volatile, schema = "pgstream", name = "_drop_capture_objects")]
fn drop_capture_objects() {
    setup::drop_everything();
}
