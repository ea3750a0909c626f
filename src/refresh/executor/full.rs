//! FULL: every stage of a plan recomputed — inner stages' tables and aggregate state built
//! anew in the extension's private schema, the stream table given only the difference.

use super::{AppliedChanges, Execution};
use crate::catalog;
use crate::delta::statements as sql;
use crate::delta::{Identity, StagePlan};
use crate::refresh::work_tables;
use crate::settings::Restriction;
use pgrx::prelude::*;

impl Execution<'_> {
    /// Recomputes every stage; returns what changed in the stream table. An algebraic stage's
    /// state is rebuilt first and its rows computed from it: its input is read once, not twice.
    pub fn full(&self) -> AppliedChanges {
        let mut applied = AppliedChanges::default();
        for stage in &self.plan.stages {
            let from_state = stage.algebraic.as_ref().map(|plan| {
                self.rebuild_state(stage, plan);
                sql::algebraic_full(plan, &self.names.state_table(stage.index))
            });
            let rows_sql = from_state.as_deref().unwrap_or(&stage.full_sql);
            if self.is_root(stage) {
                applied = self.full_root(stage, rows_sql);
            } else {
                self.rebuild_aux(stage, rows_sql);
            }
        }
        applied
    }

    /// An inner stage's table, built anew: created by the extension's owner in its private
    /// schema, owned by the stream table's owner, filled in the refresh's snapshot.
    /// `rows_sql` returns its rows (the stage's query, or its rows from its state).
    fn rebuild_aux(&self, stage: &StagePlan, rows_sql: &str) {
        let aux = self.names.aux_table(stage.index);
        let owner_name = owner_name(self.owner);
        let mut columns = described(&stage.full_sql);
        if stage.identity == Identity::Multiset {
            columns.push("\"__pgs_row_id\" pg_catalog.int8 NOT NULL".into());
        }
        create_private(&aux, &columns, &owner_name);
        match &stage.identity {
            Identity::Key(_) => {
                self.restricted(&sql::capture_fresh(&aux, rows_sql, &stage.columns));
            }
            Identity::Multiset => {
                self.restricted(&sql::fill_multiset(&aux, rows_sql, &stage.columns));
            }
        }
        catalog::as_catalog_owner(|| {
            crate::capture::setup::as_engine_ddl(|| {
                match &stage.identity {
                    Identity::Key(key) if !key.is_empty() => {
                        ddl(&sql::key_index(&aux, None, key, &[]))
                    }
                    Identity::Key(_) => {}
                    Identity::Multiset => {
                        ddl(&format!("CREATE UNIQUE INDEX ON {aux} (\"__pgs_row_id\")"))
                    }
                }
                if let Some(index) = stage
                    .order_index
                    .as_deref()
                    .and_then(|o| sql::order_index(&aux, o))
                {
                    ddl(&index);
                }
                for (_, create) in self.aux_lookup_indexes(stage) {
                    ddl(&create);
                }
                ddl(&format!("ANALYZE {aux}"));
            })
        });
    }

    /// The lookup indexes of inner stage `stage`'s table: (qualified name, CREATE statement).
    fn aux_lookup_indexes(&self, stage: &StagePlan) -> Vec<(String, String)> {
        let base = self.names.aux_name(stage.index);
        let aux = self.names.aux_table(stage.index);
        stage
            .lookup_columns
            .iter()
            .map(|c| sql::lookup_index(&aux, "pgstream_changes", &base, c))
            .collect()
    }

    /// Puts missing lookup indexes on inner stages' tables (a table built by an earlier
    /// version), as the extension's owner.
    pub(super) fn ensure_aux_lookup_indexes(&self) {
        let missing: Vec<String> = self
            .plan
            .stages
            .iter()
            .filter(|s| !self.is_root(s))
            .flat_map(|s| self.aux_lookup_indexes(s))
            .filter(|(name, _)| !work_tables::exists(name))
            .map(|(_, create)| create)
            .collect();
        if !missing.is_empty() {
            catalog::as_catalog_owner(|| {
                crate::capture::setup::as_engine_ddl(|| missing.iter().for_each(|c| ddl(c)))
            });
        }
    }

    /// An algebraic stage's state, built anew from its input now. Planned with
    /// `enable_indexscan` off: the build groups every row of its input, and a plan reading a
    /// whole table in an index's order to group it as it goes fetched rows one by one (TPC-H
    /// Q17 at SF 1: the 6M lineitem rows by the `l_partkey` index, 19 s, against 3.9 s for a
    /// sequential scan and a hash aggregate that spilled). Bitmap scans stay available, and
    /// from PostgreSQL 18 on index-only scans (before, the setting turns those off too).
    fn rebuild_state(&self, stage: &StagePlan, plan: &crate::delta::algebraic::AlgebraicPlan) {
        let state = self.names.state_table(stage.index);
        let owner_name = owner_name(self.owner);
        create_private(&state, &described(&plan.state_sql), &owner_name);
        crate::settings::with_settings(&[(c"enable_indexscan", "off")], || {
            self.restricted(&format!("INSERT INTO {state} {}", plan.state_sql))
        });
        catalog::as_catalog_owner(|| {
            crate::capture::setup::as_engine_ddl(|| {
                if plan.keys > 0 {
                    ddl(&sql::state_index(&state, plan));
                }
                ddl(&format!("ANALYZE {state}"));
            })
        });
    }

    /// The stream table recomputed by `rows_sql` (see [`Self::rebuild_aux`]), only the
    /// difference applied (readers never see it empty).
    fn full_root(&self, stage: &StagePlan, rows_sql: &str) -> AppliedChanges {
        let target = self.table.qualified();
        let columns = &stage.columns;
        match &self.root_identity {
            Identity::Key(_) if self.root_on_citus.is_some() => {
                // (The query itself: Citus plans it against the distributed sources, where
                // its state is a coordinator table.)
                let [delete, insert] = sql::citus_full(&target, &stage.full_sql, columns);
                let deleted = self.plain(&delete).0 as i64;
                let inserted = self.restricted(&insert).0 as i64;
                AppliedChanges {
                    inserted,
                    updated: 0,
                    deleted,
                }
            }
            Identity::Key(_) | Identity::Multiset
                if self.root_on_citus.is_none() && self.root_is_empty(&target) =>
            {
                // (The first population, or a table emptied: its rows go straight in.)
                let fill = match &self.root_identity {
                    Identity::Key(_) => sql::capture_fresh(&target, rows_sql, columns),
                    Identity::Multiset => sql::fill_multiset(&target, rows_sql, columns),
                };
                AppliedChanges {
                    inserted: self.fill_empty_root(&fill),
                    updated: 0,
                    deleted: 0,
                }
            }
            Identity::Key(key) => {
                // Its rows now and what it holds compared in one pass; only the rows that
                // differ written, then applied by key as a DIFFERENTIAL refresh applies them.
                // (A query over Citus tables is run into a work table first: Citus would plan
                // the comparison with it, and send parts of it to the workers.)
                let gathered = self.reads_citus.then(|| {
                    let work = self.work("full", stage, &sql::shaped_like("", &target, columns));
                    let rows = self
                        .restricted(&sql::capture_fresh(&work, rows_sql, columns))
                        .0 as i64;
                    work_tables::analyze(&[(&work, rows)]);
                    (work, rows)
                });
                let gathered_sql = gathered
                    .as_ref()
                    .map(|(work, _)| sql::rows_of(work, columns));
                let rows_sql = gathered_sql.as_deref().unwrap_or(rows_sql);
                let (affected, fresh) = self.keyed_work(stage, &target);
                let builtin = builtin_types(self.table.relid, key);
                let keys = self
                    .restricted(&sql::full_keyed_diff(
                        &target,
                        rows_sql,
                        (&affected, &fresh),
                        columns,
                        key,
                        builtin,
                    ))
                    .0 as i64;
                work_tables::analyze(&[(&affected, keys)]);
                let fresh_rows = self.count(&format!("SELECT pg_catalog.count(*) FROM {fresh}"));
                let applied =
                    self.apply_keyed(stage, &target, &affected, (&fresh, fresh_rows), key, None);
                if let Some((work, rows)) = &gathered {
                    work_tables::release(&[work], *rows);
                }
                applied
            }
            Identity::Multiset => {
                let work = work_tables::transaction_table("work", self.table);
                work_tables::run(&format!(
                    "CREATE TEMPORARY TABLE {work} ON COMMIT DROP AS SELECT * FROM {target} WITH NO DATA"
                ));
                let filled = self
                    .restricted(&sql::fill_multiset(&work, rows_sql, columns))
                    .0 as i64;
                work_tables::analyze(&[(&work, filled)]);
                let [delete, insert] = sql::full_multiset(&target, &work, columns);
                let deleted = self.plain(&delete).0 as i64;
                let inserted = self.plain(&insert).0 as i64;
                work_tables::run(&format!("DROP TABLE {work}"));
                AppliedChanges {
                    inserted,
                    updated: 0,
                    deleted,
                }
            }
        }
    }
}

impl Execution<'_> {
    /// Fills the empty stream table by `fill` and returns how many rows it inserted. A table
    /// created in this transaction (its first population: no other session can see it yet) has
    /// its plain indexes dropped first and built again after, each by one sort, instead of
    /// entry by entry as rows arrive: 1M rows of a join, 2.7 s → 1.0 s. Indexes a constraint
    /// uses, the replica identity, the clustering index and any other [`plain_indexes`] leaves
    /// out stay.
    fn fill_empty_root(&self, fill: &str) -> i64 {
        let deferred = if self.root_partitioned || !created_in_this_transaction(self.table.relid) {
            Vec::new()
        } else {
            plain_indexes(self.table.relid)
        };
        let as_owner = |statement: &str| {
            crate::settings::as_user(self.owner, Restriction::None, || {
                crate::capture::setup::as_engine_ddl(|| ddl(statement))
            })
        };
        for (drop, _) in &deferred {
            as_owner(drop);
        }
        let inserted = self.restricted(fill).0 as i64;
        for (_, create) in &deferred {
            as_owner(create);
        }
        inserted
    }

    /// Whether the stream table `target` holds no row.
    fn root_is_empty(&self, target: &str) -> bool {
        self.count(&format!(
            "SELECT CASE WHEN EXISTS (SELECT FROM {target}) THEN 0 ELSE 1 END::pg_catalog.int8"
        )) == 1
    }
}

/// Whether every column of `key` in stream table `relid` has a type of `pg_catalog` (no domain,
/// no extension's type): one whose `=` PostgreSQL can hash and merge, so that a FULL JOIN can
/// match by it ([`sql::full_keyed_diff`]).
fn builtin_types(relid: pg_sys::Oid, key: &[String]) -> bool {
    crate::kept_plans::one::<bool>(
        "SELECT pg_catalog.count(*) = pg_catalog.cardinality($2::pg_catalog.text[]) \
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         WHERE a.attrelid = $1 AND a.attname::pg_catalog.text = ANY ($2::pg_catalog.text[]) \
           AND NOT a.attisdropped AND t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace",
        &[relid.into(), key.to_vec().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Whether relation `relid` was created in the current transaction.
fn created_in_this_transaction(relid: pg_sys::Oid) -> bool {
    // SAFETY: the relation is opened and closed here, in the backend's own thread; the refresh
    // holds a lock on it.
    unsafe {
        let relation = pg_sys::RelationIdGetRelation(relid);
        if relation.is_null() {
            return false;
        }
        // (0: InvalidSubTransactionId.)
        let created = (*relation).rd_createSubid != 0;
        pg_sys::RelationClose(relation);
        created
    }
}

/// The indexes of `relid` that its definition rebuilds exactly (valid, in the default tablespace,
/// no comment, security label or statistics target of its own, not a partition of another
/// index) and nothing else depends on: (DROP statement, CREATE statement).
fn plain_indexes(relid: pg_sys::Oid) -> Vec<(String, String)> {
    const INDEXES: &str = "SELECT pg_catalog.format('DROP INDEX %I.%I', n.nspname, c.relname), \
                pg_catalog.pg_get_indexdef(i.indexrelid) \
         FROM pg_catalog.pg_index i \
         JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE i.indrelid = $1 AND i.indisvalid AND c.reltablespace = 0 \
           AND NOT i.indisreplident AND NOT i.indisclustered \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid) \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid) \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_seclabel l WHERE l.objoid = i.indexrelid) \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = i.indexrelid \
                           AND a.attstattarget IS NOT NULL AND a.attstattarget >= 0) \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_description d WHERE d.objoid = i.indexrelid \
                           AND d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass) \
         ORDER BY i.indexrelid";
    Spi::connect(|client| {
        client
            .select(INDEXES, None, &[relid.into()])?
            .map(|row| {
                Ok((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?.unwrap_or_default(),
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| panic!("pg_stream_dbt: reading the indexes of {relid:?} failed: {e}"))
}

fn ddl(statement: &str) {
    Spi::run(statement).unwrap_or_else(|e| panic!("pg_stream_dbt: {statement} failed: {e}"));
}

/// `name type` of every output column of `sql` (analyzed as the current user, never run).
fn described(sql: &str) -> Vec<String> {
    crate::refresh::plan_catalog::describe_columns(sql)
        .unwrap_or_else(|| panic!("pg_stream_dbt: the columns of a stage could not be read: {sql}"))
        .into_iter()
        .map(|(name, type_name)| format!("{} {type_name}", crate::sql_text::quote_ident(&name)))
        .collect()
}

/// (Re)creates private table `name` with `columns`, owned by `owner` (created by the extension's
/// owner in its schema; no query of the user runs with its rights).
fn create_private(name: &str, columns: &[String], owner: &str) {
    catalog::as_catalog_owner(|| {
        crate::capture::setup::as_engine_ddl(|| {
            crate::capture::setup::drop_if_exists("TABLE", name);
            ddl(&format!("CREATE TABLE {name} ({})", columns.join(", ")));
            ddl(&format!("ALTER TABLE {name} OWNER TO {owner}"));
        })
    });
}

/// The quoted name of role `oid`.
fn owner_name(oid: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid($1))",
        &[oid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("pg_stream_dbt: role {oid:?} has no name"))
}
