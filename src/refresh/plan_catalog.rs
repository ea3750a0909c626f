//! What the delta planner asks the database, answered by SPI: what a relation name refers to
//! under the current search_path, which functions are aggregates, a query's output columns, a
//! table's key, and which types can make a key.

use crate::delta::{Catalog, Relation, TableInput};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;

/// Answers the planner's questions from the system catalogs, in the current session settings
/// (a refresh runs it with the stream table's search_path).
#[derive(Default)]
pub struct SpiCatalog {
    aggregates: RefCell<HashMap<String, bool>>,
    keyable: RefCell<HashMap<String, bool>>,
}

fn spi_failed(what: &str, e: pgrx::spi::Error) -> ! {
    panic!("pg_stream_dbt: {what} failed: {e}")
}

/// What the planner needs of a relation named in a query (`$1`, resolved under the current
/// search_path): oid, kind, why its changes cannot be captured, a view's definition, its columns,
/// and the columns (with types) its change buffer lacks.
const RELATION_SQL: &str = "SELECT c.oid::int8, c.relkind::text, pgstream._capture_blocker(c.oid), \
            CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END, \
            ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a \
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                  ORDER BY a.attnum), \
            ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a \
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                    AND NOT pgstream._buffer_keeps(c.oid, a.attname) ORDER BY a.attnum), \
            ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                    AND NOT pgstream._buffer_keeps(c.oid, a.attname) ORDER BY a.attnum), \
            pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.oid = pg_catalog.to_regclass($1)";

/// The columns of a table's key: its primary key, else the first unique index without
/// expressions or predicate whose columns are all NOT NULL (`$1`: the table).
const TABLE_KEY_SQL: &str = "SELECT ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(i.indkey) WITH ORDINALITY k(attnum, o) \
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                  ORDER BY k.o) \
     FROM pg_catalog.pg_index i \
     WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL \
       AND i.indexprs IS NULL AND i.indnkeyatts = i.indnatts \
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(i.indkey) k(attnum) \
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                       WHERE NOT a.attnotnull) \
     ORDER BY i.indisprimary DESC, i.indnatts, i.indexrelid LIMIT 1";

impl Catalog for SpiCatalog {
    fn relation(&self, name: &[String]) -> Option<Relation> {
        let qualified = name
            .iter()
            .map(pgrx::spi::quote_identifier)
            .collect::<Vec<_>>()
            .join(".");
        crate::kept_plans::query(RELATION_SQL, &[qualified.as_str().into()], |rows| {
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
            let shown = row.get::<String>(8)?.unwrap_or_else(|| qualified.clone());
            Ok(Some(match (kind.as_str(), blocker, definition) {
                ("v", _, Some(definition)) => Relation::View {
                    name: shown,
                    definition,
                },
                (_, Some(reason), _) => Relation::NotCapturable { reason },
                _ => Relation::Table(TableInput {
                    relid,
                    name: shown,
                    columns,
                    absent,
                }),
            }))
        })
        .unwrap_or_else(|e: pgrx::spi::Error| {
            spi_failed(&format!("looking up relation {qualified}"), e)
        })
    }

    fn is_aggregate(&self, name: &str) -> bool {
        if let Some(known) = self.aggregates.borrow().get(name) {
            return *known;
        }
        let aggregate = crate::kept_plans::query(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE proname = $1 AND prokind = 'a')",
            &[name.into()],
            |rows| Ok(rows.first().get::<bool>(1)?.unwrap_or(true)),
        )
        .unwrap_or_else(|e| spi_failed("looking up an aggregate", e));
        self.aggregates
            .borrow_mut()
            .insert(name.to_string(), aggregate);
        aggregate
    }

    fn describe(&self, query: &str) -> Option<Vec<(String, String)>> {
        describe_columns(query)
    }

    fn table_key(&self, relid: u32) -> Option<Vec<String>> {
        crate::kept_plans::query(TABLE_KEY_SQL, &[pg_sys::Oid::from(relid).into()], |rows| {
            match rows.into_iter().next() {
                Some(row) => row.get::<Vec<String>>(1),
                None => Ok(None),
            }
        })
        .unwrap_or_else(|e| spi_failed("reading a table's key", e))
    }

    fn keyable(&self, type_name: &str) -> bool {
        if let Some(known) = self.keyable.borrow().get(type_name) {
            return *known;
        }
        // What hash_record_extended and a btree index need: the type cache's extended hash
        // function and btree operator family (arrays and records of such types included). A
        // collation does not change them.
        let keyable = type_oid(type_name).is_some_and(|oid| unsafe {
            let entry = pg_sys::lookup_type_cache(
                oid,
                (pg_sys::TYPECACHE_HASH_EXTENDED_PROC | pg_sys::TYPECACHE_BTREE_OPFAMILY) as i32,
            );
            !entry.is_null()
                && (*entry).hash_extended_proc != pg_sys::InvalidOid
                && (*entry).btree_opf != pg_sys::InvalidOid
        });
        self.keyable
            .borrow_mut()
            .insert(type_name.to_string(), keyable);
        keyable
    }

    fn base_type(&self, type_name: &str) -> Option<String> {
        let oid = type_oid(type_name)?;
        let collation = type_name.split_once(" COLLATE ").map(|(_, c)| c);
        let mut typmod = -1;
        let base = unsafe { pg_sys::getBaseTypeAndTypmod(oid, &mut typmod) };
        (base != oid).then(|| {
            let base = type_sql(base, typmod);
            match collation {
                Some(c) => format!("{base} COLLATE {c}"),
                None => base,
            }
        })
    }
}

/// The oid of type `type_name` as [`describe_columns`] names it, looked up without the
/// ` COLLATE …` it may carry (to_regtype raises a syntax error on it); None when unknown.
fn type_oid(type_name: &str) -> Option<pg_sys::Oid> {
    let type_only = type_name.split(" COLLATE ").next().unwrap_or(type_name);
    Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regtype($1)::pg_catalog.oid",
        &[type_only.into()],
    )
    .unwrap_or_else(|e| spi_failed("looking up a type", e))
}

/// The output columns (name, type with typmod and collation) of `query` as PostgreSQL analyzes
/// it, without planning or running it (nothing of it executes).
pub fn describe_columns(query: &str) -> Option<Vec<(String, String)>> {
    let text = std::ffi::CString::new(query).ok()?;
    // Its own SPI connection: SPI_prepare on a caller's (PL/pgSQL's) would reset that
    // caller's execution memory when it ends.
    Spi::connect(|_client| unsafe { described_in_connection(&text) })
}

/// The SQL name of type `oid` with `typmod`, schema-qualified unless it is pg_catalog's, so it
/// means the same under any search_path (enums and domains of a user's schema included).
pub fn type_sql(oid: pg_sys::Oid, typmod: i32) -> String {
    let formatted = unsafe {
        std::ffi::CStr::from_ptr(pg_sys::format_type_extended(
            oid,
            typmod,
            (pg_sys::FORMAT_TYPE_TYPEMOD_GIVEN | pg_sys::FORMAT_TYPE_FORCE_QUALIFY) as _,
        ))
        .to_string_lossy()
        .into_owned()
    };
    match formatted.strip_prefix("pg_catalog.") {
        Some(built_in) => built_in.to_string(),
        None => formatted,
    }
}

/// The schema-qualified, quoted name of collation `oid`.
fn qualified_collation(oid: pg_sys::Oid) -> Option<String> {
    Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.collname) \
         FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace \
         WHERE c.oid = $1",
        &[oid.into()],
    )
    .ok()
    .flatten()
}

/// [`describe_columns`] inside an SPI connection.
unsafe fn described_in_connection(text: &std::ffi::CStr) -> Option<Vec<(String, String)>> {
    unsafe {
        let plan = pg_sys::SPI_prepare(text.as_ptr(), 0, std::ptr::null_mut());
        if plan.is_null() {
            return None;
        }
        let sources = pg_sys::SPI_plan_get_plan_sources(plan);
        let source = pgrx::PgList::<pg_sys::CachedPlanSource>::from_pg(sources).get_ptr(0)?;
        let desc = (*source).resultDesc;
        if desc.is_null() {
            pg_sys::SPI_freeplan(plan);
            return None;
        }
        let desc = pgrx::PgTupleDesc::from_pg_unchecked(desc);
        let mut columns = Vec::new();
        for i in 0..desc.len() {
            let attribute = desc.get(i)?;
            if attribute.attisdropped {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(attribute.attname.data.as_ptr())
                .to_string_lossy()
                .into_owned();
            // Types and collations named with their schema (pg_catalog's without): the names
            // are used with other search_paths (private stage tables are made under pg_catalog
            // alone), where an enum or domain of the user's schema would not be found.
            let mut type_name = type_sql(attribute.atttypid, attribute.atttypmod);
            let default_collation = pg_sys::get_typcollation(attribute.atttypid);
            if attribute.attcollation != pg_sys::InvalidOid
                && attribute.attcollation != default_collation
            {
                if let Some(collation) = qualified_collation(attribute.attcollation) {
                    type_name = format!("{type_name} COLLATE {collation}");
                }
            }
            columns.push((name, type_name));
        }
        pg_sys::SPI_freeplan(plan);
        Some(columns)
    }
}
