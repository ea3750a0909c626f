//! What the delta planner asks the database, answered by SPI: what a relation name refers to
//! under the current search_path, and which functions are aggregates.

use crate::delta::{Catalog, KeyHashing, Relation};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;

/// Answers the planner's questions from the system catalogs, in the current session settings
/// (a refresh runs it with the stream table's search_path).
#[derive(Default)]
pub struct SpiCatalog {
    /// The stream table planned for, when it exists (its columns decide exact sums).
    pub target: Option<pg_sys::Oid>,
    aggregates: RefCell<HashMap<String, bool>>,
}

impl SpiCatalog {
    pub fn for_table(target: Option<pg_sys::Oid>) -> Self {
        SpiCatalog {
            target,
            aggregates: RefCell::default(),
        }
    }
}

impl Catalog for SpiCatalog {
    fn relation(&self, name: &[String]) -> Option<Relation> {
        let qualified = name
            .iter()
            .map(pgrx::spi::quote_identifier)
            .collect::<Vec<_>>()
            .join(".");
        Spi::connect_mut(|client| {
            let rows = client.update(
                "SELECT c.oid::int8, c.relkind::text, pgstream._capture_blocker(c.oid), \
                        CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END, \
                        ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a \
                              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                              ORDER BY a.attnum), \
                        ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a \
                              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                                AND NOT pgstream._buffer_keeps(c.oid, a.attname) ORDER BY a.attnum), \
                        ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
                              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                                AND NOT pgstream._buffer_keeps(c.oid, a.attname) ORDER BY a.attnum) \
                 FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)",
                None,
                &[qualified.as_str().into()],
            )?;
            let Some(row) = rows.into_iter().next() else {
                return Ok(None);
            };
            let relid = row.get::<i64>(1)?.unwrap_or_default() as u32;
            let kind = row.get::<String>(2)?.unwrap_or_default();
            let blocker = row.get::<String>(3)?;
            let definition = row.get::<String>(4)?;
            let columns = row.get::<Vec<String>>(5)?.unwrap_or_default();
            let absent = row
                .get::<Vec<String>>(6)?
                .unwrap_or_default()
                .into_iter()
                .zip(row.get::<Vec<String>>(7)?.unwrap_or_default())
                .collect();
            Ok(Some(match (kind.as_str(), blocker, definition) {
                ("v", _, Some(definition)) => Relation::View { definition },
                (_, Some(reason), _) => Relation::NotCapturable { reason },
                _ => Relation::Table {
                    relid,
                    columns,
                    absent,
                },
            }))
        })
        .unwrap_or_else(|e: pgrx::spi::Error| panic!("looking up relation {qualified} failed: {e}"))
    }

    fn output_columns(&self) -> Vec<(String, String)> {
        let Some(target) = self.target else {
            return Vec::new();
        };
        Spi::connect_mut(|client| {
            client
                .update(
                    "SELECT attname::text, pg_catalog.format_type(atttypid, atttypmod) \
                     FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 \
                     AND NOT attisdropped AND attname <> '__pgs_row_id' ORDER BY attnum",
                    None,
                    &[target.into()],
                )
                .map(|rows| {
                    rows.filter_map(|r| {
                        Some((r.get::<String>(1).ok()??, r.get::<String>(2).ok()??))
                    })
                    .collect()
                })
        })
        .unwrap_or_else(|e| panic!("reading the stream table's columns failed: {e}"))
    }

    fn key_hashing(&self) -> KeyHashing {
        // hash_record_extended() exists from PostgreSQL 14 on.
        if pg_sys::PG_VERSION_NUM >= 140000 {
            KeyHashing::Record
        } else {
            KeyHashing::Text
        }
    }

    fn is_aggregate(&self, name: &str) -> bool {
        if let Some(known) = self.aggregates.borrow().get(name) {
            return *known;
        }
        let aggregate = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE proname = $1 AND prokind = 'a')",
            &[name.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(true);
        self.aggregates
            .borrow_mut()
            .insert(name.to_string(), aggregate);
        aggregate
    }
}
