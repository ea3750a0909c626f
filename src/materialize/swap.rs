//! Recreating a stream table for materialize() without readers ever seeing an empty or
//! missing table: redefine in place when the output columns are unchanged, otherwise build the
//! new table beside the old one and swap it in, carrying grants and comments over.

use crate::catalog::{self, display_name, NewStreamTable, StreamTable};
use crate::engine::{self, Definition};
use crate::error::StreamError;
use crate::normalize;
use crate::partitioned;
use crate::query::{self, AnalyzedQuery, PROBE_VIEW};
use crate::refresh::{self, FailureRecording, Origin};
use crate::relation_kind::RelationKind;
use crate::resolve;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_qualified_identifier};

/// What currently holds the name being recreated.
pub enum Previous<'a> {
    StreamTable(&'a StreamTable),
    /// A relation that is not a stream table: its oid and kind.
    Relation {
        relid: pg_sys::Oid,
        kind: RelationKind,
    },
}

/// How a recreate went.
pub struct Recreated {
    pub table: StreamTable,
    pub in_place: bool,
    /// Objects that depended on the old table and were dropped with it.
    pub dropped_dependents: Vec<String>,
    /// Stream tables that read the old table and now read the new one.
    pub readers: Vec<String>,
}

/// `name type` of every data column of `relation` (a regclass text), in column order.
fn column_signature(relation: &str) -> Vec<String> {
    Spi::get_one_with_args::<Vec<String>>(
        "SELECT COALESCE(pg_catalog.array_agg(pg_catalog.quote_ident(attname) || ' ' || \
                pg_catalog.format_type(atttypid, atttypmod) || ' ' || attcollation::text \
                ORDER BY attnum), '{}') \
         FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 \
         AND NOT attisdropped AND attname <> '__pgs_row_id'",
        &[relation.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Recreates `schema.name` from `definition`; `previous` is what holds the name now.
pub fn recreate(
    schema: &str,
    name: &str,
    previous: Previous,
    definition: &Definition,
) -> Recreated {
    let shown = display_name(schema, name);
    let analyzed = query::analyze(&shown, definition.query);
    if let Previous::StreamTable(old) = previous {
        resolve::require_owner(old);
        refuse_cycle(old, &analyzed);
        // Same columns and the same row identity: the table can stay.
        if column_signature(PROBE_VIEW) == column_signature(&old.qualified())
            && engine::identity_of(&analyzed.statement) == crate::refresh::mode::identity_of(old)
            && partitioned::spec_of(old.relid).as_ref() == definition.partition_by
            && crate::distributed::citus_table_of(old.relid).as_ref() == definition.citus
        {
            query::drop_probe();
            return redefine_in_place(old, &analyzed, definition);
        }
    }
    build_beside_and_swap(schema, name, previous, &analyzed, definition)
}

/// Same columns: keep the table (its grants, comments, indexes and dependent views) and
/// apply the difference to the new query's result.
fn redefine_in_place(
    old: &StreamTable,
    analyzed: &AnalyzedQuery,
    definition: &Definition,
) -> Recreated {
    refresh::lock_stream_table(old);
    let Some(old) = catalog::find_by_id(old.id) else {
        StreamError::NotFound {
            name: old.display_name(),
        }
        .raise()
    };
    let old = &old;
    catalog::hold_off_change_cleanup();
    let previous_sources = catalog::source_oids(old.id);
    crate::capture::setup::lock_for_setup(
        previous_sources
            .iter()
            .copied()
            .chain(analyzed.sources.iter().map(|s| s.relid)),
    );
    let hash = normalize::query_hash(&analyzed.statement);
    let search_path = engine::current_search_path();
    catalog::redefine(
        old.id,
        &NewStreamTable {
            relid: old.relid,
            schema: &old.schema,
            name: &old.name,
            defining_query: &analyzed.statement,
            query_hash: &hash,
            search_path: &search_path,
            changes_by_itself: analyzed.changes_by_itself.as_deref(),
            query_settings: &analyzed.settings,
            meaning: &analyzed.meaning,
            schedule: definition.schedule,
            refresh_mode: definition.refresh_mode,
            status: definition.status.unwrap_or(old.status),
            row_key: old.row_key.as_deref(),
        },
        &analyzed.sources,
    );
    catalog::sync_capture_of(old.id, &previous_sources);
    let table = catalog::find_by_id(old.id).expect("the redefined stream table exists");
    refresh::refresh_now(&table, FailureRecording::None, Origin::Request);
    Recreated {
        table,
        in_place: true,
        dropped_dependents: Vec::new(),
        readers: Vec::new(),
    }
}

/// Refuses a redefinition of `table` that would make it read itself through other stream tables.
fn refuse_cycle(table: &StreamTable, analyzed: &AnalyzedQuery) {
    let edges = catalog::stream_table_edges();
    let reads: Vec<i64> = analyzed
        .sources
        .iter()
        .filter_map(|s| catalog::find_by_relid(s.relid).map(|t| t.id))
        .collect();
    if let Some(cycle) = crate::scheduler::plan::cycle_through(table.id, &reads, &edges) {
        let names: Vec<String> = cycle
            .iter()
            .map(|id| {
                catalog::find_by_id(*id)
                    .map(|t| t.display_name())
                    .unwrap_or_default()
            })
            .collect();
        StreamError::Cycle {
            cycle: names.join(" -> "),
        }
        .raise();
    }
}

/// New columns: create the new stream table under a temporary name, copy grants and comments,
/// drop the old relation and rename the new one into place, all in this transaction.
fn build_beside_and_swap(
    schema: &str,
    name: &str,
    previous: Previous,
    analyzed: &AnalyzedQuery,
    definition: &Definition,
) -> Recreated {
    let old_relid = match &previous {
        Previous::StreamTable(old) => old.relid,
        Previous::Relation { relid, .. } => *relid,
    };
    let temporary = format!("__pgs_swap_{}", old_relid.to_u32());
    if resolve::relation_oid(schema, &temporary).is_some() {
        StreamError::AlreadyExists {
            name: display_name(schema, &temporary),
        }
        .raise();
    }
    if let Previous::StreamTable(old) = &previous {
        // No partition added (or refresh run) between reading its partitions and dropping it.
        refresh::lock_stream_table(old);
    }
    if let Some(spec) = definition.partition_by {
        // Named as users know it (the table built beside has a temporary name).
        partitioned::require_result_columns(
            &display_name(schema, name),
            spec,
            &crate::query::probe_columns(),
        );
    }
    let carried = partitions_to_carry(&previous, schema, name, definition);
    let new = engine::create_from_probe(schema, &temporary, analyzed, definition, false);
    let renames = partitioned::carry_partitions(schema, &temporary, &carried);
    refresh::refresh_now(&new, FailureRecording::None, Origin::Request);
    // The owner of the old table (a member of the owning role may recreate a stream table; the
    // table and its partitions must stay the role's).
    partitioned::give_owner_of(old_relid, new.relid);
    copy_grants_and_comments(old_relid, new.relid);
    let dependents = dependents_of(old_relid);
    drop_previous(previous, schema, name, !dependents.is_empty());
    if !dependents.is_empty() {
        warning!(
            "pg_stream_dbt: recreating {} dropped objects that depended on the old table: {}",
            display_name(schema, name),
            dependents.join(", ")
        );
    }
    rename_into_place(schema, &temporary, name, &new, definition, &renames);
    catalog::rename(new.id, schema, name);
    let readers = catalog::repoint_readers(old_relid, new.relid);
    if !readers.is_empty() {
        notice!(
            "pg_stream_dbt: stream tables reading {} now read the new table: {}",
            display_name(schema, name),
            readers.join(", ")
        );
    }
    Recreated {
        table: catalog::find_by_id(new.id).expect("the new stream table exists"),
        in_place: false,
        dropped_dependents: dependents,
        readers,
    }
}

/// Drops what a recreate replaces: the old stream table (`cascade`: with the objects that
/// depend on it), or the relation of another kind that had its name.
fn drop_previous(previous: Previous, schema: &str, name: &str, cascade: bool) {
    match previous {
        // (A Citus table over a connection, not executed locally: Citus cannot switch a
        // transaction that executed on the coordinator's placement locally back to the remote
        // execution the distributed statements that follow need.)
        Previous::StreamTable(old) if crate::capture::citus::is_citus_table(old.relid) => {
            crate::settings::with_settings(&[(c"citus.enable_local_execution", "off")], || {
                engine::drop(old, cascade)
            })
        }
        Previous::StreamTable(old) => engine::drop(old, cascade),
        Previous::Relation { kind, .. } => {
            let Some(keyword) = kind.drop_keyword() else {
                StreamError::InvalidParameter {
                    message: format!(
                        "relation {} cannot be replaced by a stream table (its kind: {kind})",
                        display_name(schema, name)
                    ),
                    hint: "Drop it yourself, or choose another name.".into(),
                }
                .raise()
            };
            Spi::run(&format!(
                "DROP {keyword} {} CASCADE",
                quote_qualified_identifier(schema, name)
            ))
            .unwrap_or_else(|e| panic!("dropping the old relation failed: {e}"));
        }
    }
}

/// Gives the stream table built beside (`new`, named `temporary`) the name `name`, with its
/// identity index and partitions (its own and the users' carried over, `renames`).
fn rename_into_place(
    schema: &str,
    temporary: &str,
    name: &str,
    new: &StreamTable,
    definition: &Definition,
    renames: &[(String, String, String)],
) {
    Spi::run(&format!(
        "ALTER TABLE {} RENAME TO {}",
        new.qualified(),
        quote_identifier(name)
    ))
    .unwrap_or_else(|e| panic!("renaming the new stream table failed: {e}"));
    rename_identity_index(schema, temporary, name, new.row_key.is_some());
    if let Some(spec) = definition.partition_by {
        let own: Vec<(String, String, String)> = spec
            .own_partitions(temporary)
            .into_iter()
            .zip(spec.own_partitions(name))
            .map(|(from, to)| (schema.to_string(), from.name, to.name))
            .collect();
        partitioned::rename_carried(&own);
    }
    partitioned::rename_carried(renames);
}

/// The partitions users added to the stream table being recreated, when the new one is
/// partitioned the same way (they are made again, and filled by the refresh); otherwise a
/// warning names the ones that go.
fn partitions_to_carry(
    previous: &Previous,
    schema: &str,
    name: &str,
    definition: &Definition,
) -> Vec<partitioned::UserPartition> {
    let Previous::StreamTable(old) = previous else {
        return Vec::new();
    };
    let Some(old_spec) = partitioned::spec_of(old.relid) else {
        return Vec::new();
    };
    let users = partitioned::user_partitions(old.relid);
    if definition.partition_by == Some(&old_spec) || users.is_empty() {
        return users;
    }
    let names: Vec<&str> = users.iter().map(|p| p.name.as_str()).collect();
    warning!(
        "pg_stream_dbt: {} is recreated with another partition_by; its partitions {} are dropped",
        display_name(schema, name),
        names.join(", ")
    );
    Vec::new()
}

/// Re-grants on `new` what was granted on `old` (beyond its owner), and copies the table
/// comment and the comments of columns that kept their name.
fn copy_grants_and_comments(old: pg_sys::Oid, new: pg_sys::Oid) {
    const STATEMENTS_SQL: &str = "\
        SELECT pg_catalog.format('GRANT %s ON TABLE %s TO %s%s', a.privilege_type, $2::regclass, \
                      CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, \
                      CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) \
        FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) a \
        WHERE c.oid = $1 AND a.grantee <> c.relowner \
        UNION ALL \
        SELECT pg_catalog.format('COMMENT ON TABLE %s IS %L', $2::regclass, d) \
        FROM pg_catalog.obj_description($1, 'pg_class') d WHERE d IS NOT NULL \
        UNION ALL \
        SELECT pg_catalog.format('COMMENT ON COLUMN %s.%I IS %L', $2::regclass, o.attname, \
                      pg_catalog.col_description($1, o.attnum)) \
        FROM pg_catalog.pg_attribute o JOIN pg_catalog.pg_attribute n \
             ON n.attrelid = $2 AND n.attname = o.attname AND n.attnum > 0 AND NOT n.attisdropped \
        WHERE o.attrelid = $1 AND o.attnum > 0 AND NOT o.attisdropped \
          AND pg_catalog.col_description($1, o.attnum) IS NOT NULL";
    let statements: Vec<String> = Spi::connect_mut(|client| {
        client
            .update(STATEMENTS_SQL, None, &[old.into(), new.into()])
            .map(|rows| {
                rows.filter_map(|r| r.get::<String>(1).ok().flatten())
                    .collect()
            })
    })
    .unwrap_or_else(|e| panic!("reading grants and comments failed: {e}"));
    for statement in statements {
        Spi::run(&statement).unwrap_or_else(|e| panic!("copying {statement} failed: {e}"));
    }
}

/// Objects (views, mostly) that depend on relation `relid` and would go with it.
fn dependents_of(relid: pg_sys::Oid) -> Vec<String> {
    // Of the table and of the tables that inherit from it: partitions (a view on a partition goes
    // with the table) or, for a plain table being replaced, inheritance children.
    Spi::get_one_with_args::<Vec<String>>(
        "WITH RECURSIVE tree(oid) AS (SELECT $1::pg_catalog.oid UNION ALL \
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.oid) \
         SELECT COALESCE(pg_catalog.array_agg(DISTINCT COALESCE( \
                (SELECT 'view ' || r.ev_class::regclass::text FROM pg_catalog.pg_rewrite r \
                 WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND r.oid = d.objid \
                   AND r.ev_class NOT IN (SELECT oid FROM tree)), \
                pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid))), '{}') \
         FROM pg_catalog.pg_depend d \
         WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid IN (SELECT oid FROM tree) \
           AND d.deptype = 'n' \
           AND NOT (d.classid = 'pg_catalog.pg_rewrite'::regclass \
                    AND EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r \
                                WHERE r.oid = d.objid AND r.ev_class IN (SELECT oid FROM tree)))",
        &[relid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Gives the swapped-in table's identity index (named after the temporary table) the name the
/// table's own creation would, when that name is free.
fn rename_identity_index(schema: &str, temporary: &str, name: &str, keyed: bool) {
    let current = crate::names::identity_index_name(temporary, keyed);
    let wanted = crate::names::identity_index_name(name, keyed);
    if resolve::relation_oid(schema, &current).is_none()
        || resolve::relation_oid(schema, &wanted).is_some()
    {
        return;
    }
    Spi::run(&format!(
        "ALTER INDEX {} RENAME TO {}",
        quote_qualified_identifier(schema, &current),
        quote_identifier(&wanted)
    ))
    .unwrap_or_else(|e| panic!("renaming the identity index failed: {e}"));
}
