//! Validating a defining query with PostgreSQL's own parser and analyzer, and reading its
//! output columns and source relations from what PostgreSQL recorded.

use crate::catalog::Source;
use crate::error::StreamError;
use crate::relation_kind::{RelationKind, SourceKind};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use std::ffi::CString;

/// Name of the temporary view that holds the analyzed query while a stream table is created.
pub const PROBE_VIEW: &str = "pg_temp.__pgs_probe";

/// Prefix reserved for the engine's own columns.
pub const RESERVED_COLUMN_PREFIX: &str = "__pgs_";

/// A defining query PostgreSQL accepted.
pub struct AnalyzedQuery {
    /// The one SELECT statement, without a trailing semicolon.
    pub statement: String,
    /// The relations it reads: views, and the base tables behind them.
    pub sources: Vec<Source>,
    /// What makes its result change without any source changing, if anything: a function or
    /// value like now() or CURRENT_DATE, in the query or in the views it reads, or a read of a
    /// system catalog. (Built-in STABLE functions of dates, times and formats depend only on
    /// their arguments and the pinned `settings`.)
    pub changes_by_itself: Option<String>,
    /// The pinned settings now, as `name=value` (query_settings).
    pub settings: Vec<String>,
    /// What it means: a hash of what its result depends on besides rows (pgstream._meaning).
    pub meaning: String,
}

/// Parses and analyzes `query` by creating the probe view from it; the caller drops the view
/// with [`drop_probe`] once it has used it. Raises a clear error for anything that is not one
/// valid SELECT statement, or whose columns use a reserved name.
pub fn analyze(stream_table: &str, query: &str) -> AnalyzedQuery {
    // The raw parser runs first, so nothing of a multi-statement text is ever executed.
    let statement = single_statement_text(stream_table, query);
    let create_probe = format!("CREATE TEMPORARY VIEW {PROBE_VIEW} AS\n{statement}\n");
    as_invalid_query(stream_table, || {
        without_ddl_propagation(|| {
            Spi::run(&create_probe)
                .unwrap_or_else(|e| panic!("creating the probe view failed: {e}"))
        })
    });

    let reserved = Spi::get_one_with_args::<String>(
        "SELECT attname::text FROM pg_catalog.pg_attribute \
         WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped \
         AND pg_catalog.left(attname, pg_catalog.length($2)) = $2 ORDER BY attnum LIMIT 1",
        &[PROBE_VIEW.into(), RESERVED_COLUMN_PREFIX.into()],
    )
    .ok()
    .flatten();
    if let Some(column) = reserved {
        StreamError::ReservedColumn { column }.raise();
    }

    let sources = probe_sources();
    let probe: pg_sys::Oid = Spi::get_one_with_args(
        "SELECT $1::pg_catalog.regclass::pg_catalog.oid",
        &[PROBE_VIEW.into()],
    )
    .ok()
    .flatten()
    .expect("the probe view exists");
    let changes_by_itself = if plan_reads_system_relations() {
        Some("a read of a system catalog".to_string())
    } else {
        std::iter::once((probe, None))
            .chain(sources.iter().filter(|s| s.kind.is_view()).map(|s| {
                (
                    s.relid,
                    Some(crate::catalog::display_name(&s.schema, &s.name)),
                )
            }))
            .find_map(|(view, name)| {
                crate::stability::changing_part_of_view(view).map(|found| match name {
                    Some(name) => format!("{found} in view {name}"),
                    None => found,
                })
            })
    };
    let meaning = Spi::get_one_with_args::<String>(
        "SELECT pgstream._meaning($1::pg_catalog.regclass)",
        &[PROBE_VIEW.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    AnalyzedQuery {
        statement,
        sources,
        changes_by_itself,
        settings: crate::settings::pinned_now(),
        meaning,
    }
}

/// Whether the planned probe query reads a system catalog or information_schema relation:
/// PostgreSQL records no dependencies on those (they are pinned), and they change without
/// any DML a trigger could see. Read from the plan (EXPLAIN VERBOSE names every scanned
/// relation's schema), which also sees through views.
fn plan_reads_system_relations() -> bool {
    let plan = Spi::get_one::<pgrx::Json>(&format!(
        "EXPLAIN (FORMAT JSON, VERBOSE) SELECT * FROM {PROBE_VIEW}"
    ))
    .ok()
    .flatten()
    .map(|json| json.0)
    .unwrap_or(serde_json::Value::Null);
    fn walk(value: &serde_json::Value) -> bool {
        match value {
            // Citus ships intermediate results through a pg_catalog function, not a catalog.
            serde_json::Value::Object(map)
                if map
                    .get("Function Name")
                    .and_then(|f| f.as_str())
                    .is_some_and(|f| {
                        f == "read_intermediate_result" || f == "read_intermediate_results"
                    }) =>
            {
                map.iter().any(|(key, v)| key != "Schema" && walk(v))
            }
            serde_json::Value::Object(map) => map.iter().any(|(key, v)| {
                (key == "Schema"
                    && v.as_str().is_some_and(|s| {
                        s == "pg_catalog" || s == "information_schema" || s.starts_with("pg_toast")
                    }))
                    || walk(v)
            }),
            serde_json::Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    walk(&plan)
}

/// Runs `body`; a PostgreSQL error it raises is raised again as an invalid-query error for
/// `stream_table`, keeping its SQLSTATE. (The transaction is aborting, so no state is reused.)
fn as_invalid_query<R>(stream_table: &str, body: impl FnOnce() -> R + std::panic::UnwindSafe) -> R {
    PgTryBuilder::new(body)
        .catch_others(|caught| {
            let (message, code) = match &caught {
                CaughtError::PostgresError(e) | CaughtError::ErrorReport(e) => {
                    (e.message().to_string(), e.sql_error_code())
                }
                CaughtError::RustPanic { .. } => caught.rethrow(),
            };
            StreamError::InvalidQuery {
                name: stream_table.to_string(),
                message,
                code,
            }
            .raise()
        })
        .execute()
}

/// The probe view's output columns, in order.
pub fn probe_columns() -> Vec<String> {
    Spi::get_one_with_args::<Vec<String>>(
        "SELECT COALESCE(pg_catalog.array_agg(attname::text ORDER BY attnum), '{}') \
         FROM pg_catalog.pg_attribute \
         WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
        &[PROBE_VIEW.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Drops the probe view made by [`analyze`].
pub fn drop_probe() {
    without_ddl_propagation(|| {
        Spi::run(&format!("DROP VIEW {PROBE_VIEW}"))
            .unwrap_or_else(|e| panic!("dropping the probe view failed: {e}"))
    });
}

/// Runs `body` (DDL of objects that are the coordinator's own: the probe view, capture objects)
/// with Citus's DDL propagation off where Citus is loaded: Citus would try to propagate the
/// probe view to its workers and trips over its `pg_temp` schema (docs/CITUS_PROBE.md). The setting is put back afterwards; on an
/// error the transaction (or subtransaction) ends and PostgreSQL restores it.
pub fn without_ddl_propagation<R>(body: impl FnOnce() -> R) -> R {
    const SETTING: &str = "citus.enable_ddl_propagation";
    let previous = Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.current_setting($1, true)",
        &[SETTING.into()],
    )
    .ok()
    .flatten();
    let set = |value: &str| {
        Spi::run_with_args(
            "SELECT pg_catalog.set_config($1, $2, true)",
            &[SETTING.into(), value.into()],
        )
        .unwrap_or_else(|e| panic!("setting {SETTING} failed: {e}"))
    };
    match previous {
        Some(previous) => {
            set("off");
            let result = body();
            set(&previous);
            result
        }
        None => body(),
    }
}

/// The relations the probe view depends on, from the dependencies PostgreSQL recorded for its
/// rewrite rule, following views down to their base tables.
fn probe_sources() -> Vec<Source> {
    const SOURCES_SQL: &str = "\
        WITH RECURSIVE reads(relid, att) AS ( \
            SELECT d.refobjid, d.refobjsubid FROM pg_catalog.pg_rewrite r \
            JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass \
                 AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass \
            WHERE r.ev_class = $1::regclass AND d.refobjid <> r.ev_class \
          UNION \
            SELECT d.refobjid, d.refobjsubid FROM reads \
            JOIN pg_catalog.pg_class v ON v.oid = reads.relid AND v.relkind = 'v' \
            JOIN pg_catalog.pg_rewrite r ON r.ev_class = v.oid \
            JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass \
                 AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass \
            WHERE d.refobjid <> v.oid) \
        SELECT c.oid, n.nspname::text, c.relname::text, \
               st.pgs_id IS NOT NULL, c.relkind::text, \
               CASE WHEN bool_or(reads.att = 0) THEN NULL \
                    ELSE pg_catalog.array_agg(DISTINCT a.attname::text) END \
        FROM reads JOIN pg_catalog.pg_class c ON c.oid = reads.relid \
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
        LEFT JOIN pgstream.pgs_stream_tables st ON st.pgs_relid = c.oid \
        LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = reads.att \
             AND reads.att > 0 \
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
        GROUP BY c.oid, n.nspname, c.relname, st.pgs_id, c.relkind \
        ORDER BY 2, 3";
    Spi::connect_mut(|client| {
        client
            .update(SOURCES_SQL, None, &[PROBE_VIEW.into()])
            .map(|rows| {
                rows.map(|row| Source {
                    relid: row.get(1).ok().flatten().unwrap_or(pg_sys::InvalidOid),
                    schema: row.get(2).ok().flatten().unwrap_or_default(),
                    name: row.get(3).ok().flatten().unwrap_or_default(),
                    kind: if row.get::<bool>(4).ok().flatten().unwrap_or(false) {
                        SourceKind::StreamTable
                    } else {
                        SourceKind::Relation(RelationKind::from_relkind(
                            &row.get::<String>(5).ok().flatten().unwrap_or_default(),
                        ))
                    },
                    used_columns: row.get(6).ok().flatten(),
                })
                .collect()
            })
    })
    .unwrap_or_else(|e| panic!("reading the query's sources failed: {e}"))
}

/// The text of the single statement in `query` as PostgreSQL's raw parser delimits it, so a
/// trailing semicolon or comment never ends up inside the SQL the engine builds around it.
fn single_statement_text(stream_table: &str, query: &str) -> String {
    let c_query = CString::new(query).unwrap_or_else(|_| {
        StreamError::InvalidQuery {
            name: stream_table.to_string(),
            message: "query contains a zero byte".into(),
            code: PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
        }
        .raise()
    });
    let not_one_select = || -> ! {
        StreamError::InvalidQuery {
            name: stream_table.to_string(),
            message:
                "expected exactly one SELECT statement, not another kind of statement or several"
                    .into(),
            code: PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
        }
        .raise()
    };
    let list = as_invalid_query(stream_table, || unsafe {
        pg_sys::raw_parser(c_query.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT)
    });
    unsafe {
        let statements = pgrx::PgList::<pg_sys::RawStmt>::from_pg(list);
        if statements.len() != 1 {
            not_one_select();
        }
        let raw = statements.get_ptr(0).expect("one statement");
        let node = (*raw).stmt;
        if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_SelectStmt {
            not_one_select();
        }
        let start = usize::try_from((*raw).stmt_location).unwrap_or(0);
        let len = usize::try_from((*raw).stmt_len).unwrap_or(0);
        let bytes = query.as_bytes();
        let end = if len == 0 {
            bytes.len()
        } else {
            (start + len).min(bytes.len())
        };
        String::from_utf8_lossy(&bytes[start.min(end)..end])
            .trim()
            .to_string()
    }
}
