//! The temporary work tables of DIFFERENTIAL refreshes: created once per session and shape,
//! emptied before each use (creating and dropping tables costs more than most refreshes do).

use crate::catalog::StreamTable;
use crate::work_table_stats::{self, RecordedSize};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

/// From this many rows on a work table is truncated after use (see [`release`]).
pub const LARGE: i64 = 5_000;

/// FNV-1a: a stable name suffix for a table shape.
fn shape_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn run(sql: &str) {
    Spi::connect_mut(|client| client.update(sql, None, &[]).map(|_| ()))
        .unwrap_or_else(|e| panic!("work table statement failed: {e}\n{sql}"))
}

/// The name of a temporary table of `kind` for `table` that lives for one transaction (the
/// FULL refresh's work tables).
pub fn transaction_table(kind: &str, table: &StreamTable) -> String {
    format!(
        "pg_temp.{}",
        quote_identifier(format!("__pgs_{kind}_{}", table.relid.to_u32()))
    )
}

/// Whether relation `qualified` exists.
pub fn exists(qualified: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
        &[qualified.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// The temporary table of `kind` for `table` defined by `definition` (what follows the name
/// in CREATE TABLE), created when this session has none of that shape yet. It is empty.
pub fn ensure(kind: &str, table: &StreamTable, definition: &str) -> String {
    let name = format!(
        "__pgs_{kind}_{}_{:016x}",
        table.relid.to_u32(),
        shape_hash(definition)
    );
    ensure_named(
        &format!("pg_temp.{}", quote_identifier(&name)),
        definition,
        table,
    )
}

/// The temporary table `qualified` (a name the plan's SQL uses) of `table`'s refreshes,
/// shaped by `definition`: created when missing, emptied when kept from an earlier refresh.
/// Its comment records the shape it was made for: the definition and what `table`'s query
/// meant then (a column type changed since makes `definition` produce other types). A table
/// of another shape, or that has gained triggers, rules or row security, or that another role
/// owns, is dropped and made anew: nothing but the engine's own statements runs against it.
pub fn ensure_named(qualified: &str, definition: &str, table: &StreamTable) -> String {
    let shape = format!(
        "{:016x}",
        shape_hash(&format!(
            "{definition}\n{}",
            table.meaning.as_deref().unwrap_or("")
        ))
    );
    match recorded_shape(qualified) {
        Some((recorded, pages)) if recorded == shape => {
            // Temporary tables are never vacuumed: the space of deleted rows is not used again,
            // so a table emptied by DELETE grows by what every refresh wrote. Past a few hundred
            // kB it is truncated (a new file, about 0.3 ms) instead of scanned again and again.
            if pages > BLOATED_PAGES {
                run(&format!("TRUNCATE {qualified}"));
            } else {
                crate::kept_plans::run_text(&format!("DELETE FROM {qualified}"))
                    .unwrap_or_else(|e| panic!("emptying work table {qualified} failed: {e}"));
            }
        }
        found => {
            if found.is_some() {
                // Perhaps another role's (the stream table changed owner since this session
                // made it): dropped with the extension owner's rights.
                crate::catalog::as_catalog_owner(|| run(&format!("DROP TABLE {qualified}")));
            }
            run(&format!("CREATE TEMPORARY TABLE {qualified} {definition}"));
            run(&format!("COMMENT ON TABLE {qualified} IS '{shape}'"));
        }
    }
    qualified.to_string()
}

/// Above this many pages a kept work table is truncated before use rather than emptied by
/// DELETE (see [`ensure_named`]).
const BLOATED_PAGES: i64 = 64;

/// The shape recorded on work table `qualified` ('' when it has gained triggers, rules or row
/// security, or another role owns it) and its size in pages; None when there is none. A plan
/// kept per backend: every DIFFERENTIAL refresh asks this of each of its work tables.
fn recorded_shape(qualified: &str) -> Option<(String, i64)> {
    crate::kept_plans::query(
        // (The comment read from pg_description itself, the owner by regrole: the SQL
        // functions obj_description and the pg_roles view cost about 0.1 ms a call.)
        "SELECT CASE WHEN c.relhastriggers OR c.relhasrules OR c.relrowsecurity \
                       OR c.relowner IS DISTINCT FROM \
                          pg_catalog.quote_ident(CURRENT_USER)::pg_catalog.regrole::pg_catalog.oid \
                     THEN '' \
                     ELSE COALESCE((SELECT d.description FROM pg_catalog.pg_description d \
                                    WHERE d.objoid = c.oid AND d.objsubid = 0 \
                                      AND d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass), '') END, \
                pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::pg_catalog.int8 \
         FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)",
        &[qualified.into()],
        |rows| {
            let Some(row) = rows.into_iter().next() else {
                return Ok(None);
            };
            Ok(Some((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<i64>(2)?.unwrap_or(0),
            )))
        },
    )
    .unwrap_or_else(|e: pgrx::spi::Error| panic!("checking work table {qualified} failed: {e}"))
}

/// Gives the planner the sizes of work tables just filled, `(table, rows it holds)`, where its
/// estimate is off by more than twice (see [`crate::work_table_stats`]): without, it may guess
/// a thousand rows and hash a whole stream table to join a handful; analyzing every time
/// planned every kept statement reading them again. Sampled lightly, with a statistics target
/// of 10 (3 000 rows): sizes and distinct counts are what the planner needs of them, and the
/// default's 30 000-row sample cost about 20 ms for a 17 000-row delta table.
pub fn analyze(tables: &[(&str, i64)]) {
    let filled: Vec<(&str, i64)> = tables
        .iter()
        .copied()
        .filter(|(_, rows)| *rows > 0)
        .collect();
    if filled.is_empty() {
        return;
    }
    let names: Vec<String> = filled.iter().map(|(name, _)| name.to_string()).collect();
    let recorded = recorded_sizes(&names);
    let stale: Vec<&str> = filled
        .iter()
        .zip(&recorded)
        .filter(|((_, rows), size)| work_table_stats::worth_analyzing(size.as_ref(), *rows))
        .map(|((name, _), _)| *name)
        .collect();
    if !stale.is_empty() {
        crate::settings::with_settings(&[(c"default_statistics_target", "10")], || {
            run(&format!("ANALYZE {}", stale.join(", ")))
        });
    }
}

/// What the catalog records of the size of each of `tables` (None for one it does not know).
/// One statement a table: a kept plan with an array of names would be planned again at every
/// call (its plan for the array's actual length is cheaper than the generic one).
fn recorded_sizes(tables: &[String]) -> Vec<Option<RecordedSize>> {
    tables
        .iter()
        .map(|table| {
            crate::kept_plans::query(
                "SELECT c.reltuples::pg_catalog.float8, c.relpages::pg_catalog.int8, \
                        pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::pg_catalog.int8 \
                 FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)",
                &[table.as_str().into()],
                |rows| {
                    let Some(row) = rows.into_iter().next() else {
                        return Ok(None);
                    };
                    Ok(
                        match (row.get::<f64>(1)?, row.get::<i64>(2)?, row.get::<i64>(3)?) {
                            (Some(reltuples), Some(relpages), Some(pages)) => Some(RecordedSize {
                                reltuples,
                                relpages,
                                pages,
                            }),
                            _ => None,
                        },
                    )
                },
            )
            // (Unread, it is analyzed.)
            .unwrap_or(None)
        })
        .collect()
}

/// Lets go of work tables after use; `rows` tells how much they hold. Large ones are truncated
/// now, freeing their space; small ones keep their rows until their next use, which empties
/// them first ([`ensure_named`]): one statement a refresh instead of two. (Their rows are the
/// change of sources their owner may read, in tables only that owner can read, and no
/// statement reads a work table before that emptying.)
pub fn release(tables: &[&str], rows: i64) {
    if rows >= LARGE {
        run(&format!("TRUNCATE {}", tables.join(", ")));
    }
}
