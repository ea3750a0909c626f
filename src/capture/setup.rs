//! Keeping each source's capture objects in step with its readers: the statement trigger, and
//! for a source read by a DIFFERENTIAL stream table the change buffer, its reading view and the
//! row-capture triggers. Serialized per source by advisory locks taken in oid order, and every
//! step idempotent, so creates, drops, mode switches and refreshes of stream tables sharing
//! sources may run in any number of sessions at once.

use super::citus::{self, CitusKind};
use super::objects::{
    buffer_index, buffer_index_sql, buffer_table, change_view as reader_view, member_row_triggers,
    member_statement_trigger, BUFFER_HEADER, ROW_TRIGGERS, STATEMENT_TRIGGER,
};
use crate::catalog;
use pgrx::prelude::*;
use std::cell::Cell;

/// `pg_trigger.tgtype` of the statement trigger on every change (INSERT, UPDATE, DELETE,
/// TRUNCATE), and on TRUNCATE only.
const ALL_EVENTS: i32 = 4 | 8 | 16 | 32;
const TRUNCATE_ONLY: i32 = 32;

thread_local! {
    /// Set while this backend runs the engine's own DDL (capture objects, private state): it
    /// changes no query's meaning (read by the DDL event triggers through
    /// `pgstream._engine_ddl_running()`; a flag in this process that no SQL can set).
    static ENGINE_DDL: Cell<bool> = const { Cell::new(false) };
}

/// Whether this backend is running the engine's own DDL right now.
pub fn engine_ddl_running() -> bool {
    ENGINE_DDL.with(Cell::get)
}

/// Restores the flag however the body ends (an error unwinds through it).
struct EngineDdlGuard(bool);

impl Drop for EngineDdlGuard {
    fn drop(&mut self) {
        ENGINE_DDL.with(|s| s.set(self.0));
    }
}

/// Runs `body`, the engine's own DDL, with the flag the DDL event triggers read set.
pub fn as_engine_ddl<R>(body: impl FnOnce() -> R) -> R {
    let _guard = EngineDdlGuard(engine_ddl_running());
    ENGINE_DDL.with(|s| s.set(true));
    body()
}

fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("change capture set-up failed: {e}\n{sql}"));
}

/// What a source's capture looks like now, and what its readers need.
struct SourceState {
    present: bool,
    capturable: bool,
    read: bool,
    differential: bool,
    statement_trigger: Option<i32>,
    row_triggers: i64,
    has_buffer: bool,
    /// `name type` of each needed column the buffer lacks.
    missing: Vec<String>,
    /// A needed column the buffer keeps with another type.
    retyped: bool,
}

fn source_state(source: pg_sys::Oid) -> SourceState {
    Spi::connect_mut(|client| {
        let row = client
            .update(
                "SELECT present, capturable, read, differential, statement_trigger, row_triggers, \
                        has_buffer, missing, retyped \
                 FROM pgstream._capture_state($1)",
                None,
                &[source.into()],
            )?
            .first();
        Ok::<_, pgrx::spi::Error>(SourceState {
            present: row.get::<bool>(1)?.unwrap_or(false),
            capturable: row.get::<bool>(2)?.unwrap_or(false),
            read: row.get::<bool>(3)?.unwrap_or(false),
            differential: row.get::<bool>(4)?.unwrap_or(false),
            statement_trigger: row.get::<i32>(5)?,
            row_triggers: row.get::<i64>(6)?.unwrap_or(0),
            has_buffer: row.get::<bool>(7)?.unwrap_or(false),
            missing: row.get::<Vec<String>>(8)?.unwrap_or_default(),
            retyped: row.get::<bool>(9)?.unwrap_or(false),
        })
    })
    .unwrap_or_else(|e| panic!("reading the capture state of source {source:?} failed: {e}"))
}

fn sorted_sources(sources: impl IntoIterator<Item = pg_sys::Oid>) -> Vec<u32> {
    let mut sorted: Vec<u32> = sources.into_iter().map(|s| s.to_u32()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// Takes the set-up lock of every source in `sources`, in oid order, held to the end of the
/// transaction (taking one again is free). A set-up that rebuilds a buffer updates the catalog
/// rows of that source's readers while it holds the lock, so whoever changes a stream table's
/// catalog row and then syncs its capture takes these locks *before* touching the row: the
/// locks always come first, and two such transactions cannot wait for each other.
pub fn lock_for_setup(sources: impl IntoIterator<Item = pg_sys::Oid>) {
    take_setup_locks(sources, "pg_advisory_xact_lock");
}

/// Takes the set-up lock of every source in `sources` in share mode, to the end of the
/// transaction: no set-up of those sources runs meanwhile (a refresh reading their capture as
/// it is), while other refreshes of their readers go on at the same time. Taken after
/// [`lock_for_setup`] in the same transaction it is free.
pub fn share_setup_locks(sources: impl IntoIterator<Item = pg_sys::Oid>) {
    take_setup_locks(sources, "pg_advisory_xact_lock_shared");
}

/// The set-up locks of `sources` in oid order, by `function` (exclusive or shared).
fn take_setup_locks(sources: impl IntoIterator<Item = pg_sys::Oid>, function: &str) {
    for source in sorted_sources(sources) {
        Spi::run_with_args(
            &format!("SELECT pg_catalog.{function}($1, $2::pg_catalog.int4)"),
            &[
                crate::lock_keys::CAPTURE_SETUP.into(),
                (source as i32).into(),
            ],
        )
        .unwrap_or_else(|e| panic!("taking the capture set-up lock failed: {e}"));
    }
}

/// Takes the set-up lock of `source` if no other transaction holds it (see [`lock_for_setup`]).
pub fn try_lock_for_setup(source: pg_sys::Oid) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_try_advisory_xact_lock($1, $2::pg_catalog.int4)",
        &[
            crate::lock_keys::CAPTURE_SETUP.into(),
            (source.to_u32() as i32).into(),
        ],
    )
    .unwrap_or_else(|e| panic!("taking the capture set-up lock failed: {e}"))
    .unwrap_or(false)
}

/// Makes the capture objects of `sources` match their readers as the catalog says now. Takes the
/// set-up lock of every source ([`lock_for_setup`]) before changing anything.
pub fn sync(sources: &[pg_sys::Oid]) {
    let sorted = sorted_sources(sources.iter().copied());
    if sorted.is_empty() {
        return;
    }
    lock_for_setup(sources.iter().copied());
    catalog::as_catalog_owner(|| {
        as_engine_ddl(|| {
            crate::query::without_ddl_propagation(|| {
                for source in sorted {
                    sync_source(pg_sys::Oid::from(source));
                }
            })
        })
    })
}

/// The relation `source` as SQL (its oid through regclass, so renames do not matter).
fn relation(source: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>("SELECT $1::pg_catalog.regclass::text", &[source.into()])
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("source {source:?} has no name"))
}

fn sync_source(source: pg_sys::Oid) {
    let state = source_state(source);
    let relid = source.to_u32();
    if !state.present {
        drop_buffer(relid);
        return;
    }
    let table = relation(source);
    // Locking the source first (what CREATE TRIGGER takes anyway) keeps the lock order
    // source -> buffer that writers follow, and waits out transactions writing to it. It does
    // not conflict with readers of the source.
    let mut locked = false;
    let mut lock = || {
        if !locked {
            run(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"));
            locked = true;
        }
    };
    // A Citus table is captured only for DIFFERENTIAL readers, by row triggers on its shards:
    // a statement trigger on the coordinator would never fire (FULL readers of a Citus table
    // no DIFFERENTIAL reader captures are never skipped instead).
    let citus = citus::kind_of(source);
    let wanted = state.read && state.capturable && (citus.is_none() || state.differential);
    if wanted && state.differential {
        sync_row_capture(source, &state, citus, &table, &mut lock);
        return;
    }
    if wanted && state.statement_trigger != Some(ALL_EVENTS) {
        // Every change recorded by the statement trigger before row capture may go.
        lock();
        install_statement_trigger(&table, "INSERT OR UPDATE OR DELETE OR TRUNCATE");
    }
    if state.has_buffer {
        drop_buffer(relid);
    }
    sync_members(source, wanted, false);
    drop_unwanted_triggers(source, &table, &state, wanted, citus.is_some());
}

/// Gives a source read by a DIFFERENTIAL stream table its buffer (and, a Citus distributed
/// table, its shard buffer), its row triggers and its TRUNCATE trigger, as they must be now.
/// `lock` locks the source (once) before anything changes.
fn sync_row_capture(
    source: pg_sys::Oid,
    state: &SourceState,
    citus: Option<CitusKind>,
    table: &str,
    lock: &mut dyn FnMut(),
) {
    let relid = source.to_u32();
    // A shard buffer is remade with its coordinator buffer, and gains the columns it gains.
    let remake = !state.has_buffer || state.retyped;
    if remake {
        lock();
        create_buffer(source);
    } else if !state.missing.is_empty() {
        lock();
        let added: Vec<String> = state
            .missing
            .iter()
            .map(|c| format!("ADD COLUMN {c}"))
            .collect();
        run(&format!(
            "ALTER TABLE {} {}",
            buffer_table(relid),
            added.join(", ")
        ));
        if citus == Some(CitusKind::Distributed) {
            citus::add_shard_buffer_columns(relid, &state.missing);
        }
        create_reader_view(relid, source);
    }
    if citus == Some(CitusKind::Distributed) && (remake || !citus::has_shard_buffer(relid)) {
        lock();
        citus::create_shard_buffer(source);
    }
    let triggers_missing = state.row_triggers != ROW_TRIGGERS.len() as i64
        || (citus.is_some() && !citus::has_truncate_trigger(table));
    if triggers_missing {
        lock();
        match citus {
            Some(kind) => citus::install_row_triggers(table, relid, kind),
            None => {
                for (name, event, referencing) in ROW_TRIGGERS {
                    run(&format!(
                        "CREATE OR REPLACE TRIGGER {name} AFTER {event} ON {table} {referencing} \
                         FOR EACH STATEMENT EXECUTE FUNCTION pgstream._capture_rows()"
                    ));
                    run(&format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"));
                }
            }
        }
    }
    if state.statement_trigger != Some(TRUNCATE_ONLY) {
        lock();
        install_statement_trigger(table, "TRUNCATE");
    }
    if needs_window_index(source) {
        lock();
        run(&buffer_index_sql(relid));
    }
    sync_members(source, true, true);
}

/// Whether the buffer of `source` lacks the BRIN index its readers' refreshes read their change
/// windows through and should have it: when two or more DIFFERENTIAL stream tables read it, one
/// may lag behind another and leave a backlog the other would otherwise read whole. A buffer
/// with one reader holds little more than that reader's window, and is spared the index's cost
/// per captured row (about 0.4 us). (A database still on an older version of the extension's
/// SQL has no operator class for it yet: its update indexes the buffers there are.)
fn needs_window_index(source: pg_sys::Oid) -> bool {
    if catalog::differential_readers(source) < 2 {
        return false;
    }
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.to_regclass($1) IS NULL \
            AND EXISTS (SELECT 1 FROM pg_catalog.pg_opclass WHERE opcname = 'xid8_minmax_ops' \
                        AND opcnamespace = 'pgstream'::pg_catalog.regnamespace)",
        &[buffer_index(source.to_u32()).into()],
    )
    .unwrap_or_else(|e| panic!("looking up the window index of source {source:?} failed: {e}"))
    .unwrap_or(false)
}

/// Drops the capture triggers `source` has and its readers no longer need (`wanted`: it keeps
/// its statement trigger), where no transaction reads the source right now: DROP TRIGGER takes
/// the lock that conflicts with readers, and a reader may be a refresh waiting for this set-up's
/// lock. Left in place, they cost writers a little and record changes nobody reads (or only
/// statements, where the buffer is gone); the next set-up of the source tries again. A Citus
/// table's row triggers go from every shard.
fn drop_unwanted_triggers(
    source: pg_sys::Oid,
    table: &str,
    state: &SourceState,
    wanted: bool,
    citus: bool,
) {
    let row_capture = state.row_triggers > 0 || (citus && citus::has_truncate_trigger(table));
    let unwanted = if wanted {
        row_capture
    } else {
        row_capture || state.statement_trigger.is_some()
    };
    if !unwanted || !try_lock_exclusively(source) {
        return;
    }
    if citus {
        citus::drop_row_triggers(table);
    } else {
        for (name, _, _) in ROW_TRIGGERS {
            run(&format!("DROP TRIGGER IF EXISTS {name} ON {table}"));
        }
    }
    if !wanted {
        run(&format!(
            "DROP TRIGGER IF EXISTS {STATEMENT_TRIGGER} ON {table}"
        ));
    }
}

/// Gives every member of the partition tree of `source` the triggers that record its writes as
/// the source's (`wanted`: the source is read and capturable; `differential`: with row capture),
/// and takes them from relations that should not have them (detached since, or row triggers no
/// reader needs) where that can be done without waiting. (CREATE TRIGGER waits out the writers
/// of the member it is created on, as the source's lock does for the source.)
fn sync_members(source: pg_sys::Oid, wanted: bool, differential: bool) {
    // An extension still at 0.2.0 or older (the library is newer until ALTER EXTENSION UPDATE)
    // captures no partitioned table: nothing to do.
    let current_sql = Spi::get_one::<bool>(
        "SELECT pg_catalog.to_regprocedure('pgstream._members_incomplete(oid, boolean, boolean)') IS NOT NULL",
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !current_sql {
        return;
    }
    let relid = source.to_u32();
    let member_capture = |what: &str| {
        Spi::get_one_with_args::<Vec<pg_sys::Oid>>(
            &format!("SELECT pgstream.{what}($1, $2, $3)"),
            &[source.into(), wanted.into(), differential.into()],
        )
        .unwrap_or_else(|e| panic!("reading the partitions of source {source:?} failed: {e}"))
        .unwrap_or_default()
    };
    let statement = member_statement_trigger(relid);
    let rows = member_row_triggers(relid);
    for holder in member_capture("_member_triggers_extra") {
        if !try_lock_exclusively(holder) {
            continue;
        }
        let table = relation(holder);
        for (name, _, _) in &rows {
            run(&format!("DROP TRIGGER IF EXISTS {name} ON {table}"));
        }
        // A member keeps its statement trigger when only row capture is no longer needed.
        if !wanted || !is_member(source, holder) {
            run(&format!("DROP TRIGGER IF EXISTS {statement} ON {table}"));
        }
    }
    for member in member_capture("_members_incomplete") {
        let table = relation(member);
        let install = |name: &str, event: &str, referencing: &str, function: &str| {
            run(&format!(
                "CREATE OR REPLACE TRIGGER {name} AFTER {event} ON {table} {referencing} \
                 FOR EACH STATEMENT EXECUTE FUNCTION {function}('{relid}')"
            ));
            run(&format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"));
        };
        if differential {
            for (name, event, referencing) in &rows {
                install(name, event, referencing, "pgstream._capture_rows");
            }
            install(&statement, "TRUNCATE", "", "pgstream._capture_statement");
        } else {
            install(
                &statement,
                "INSERT OR UPDATE OR DELETE OR TRUNCATE",
                "",
                "pgstream._capture_statement",
            );
        }
    }
}

/// Whether `relation` is in the partition tree of `source` now.
fn is_member(source: pg_sys::Oid, relation: pg_sys::Oid) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT $2 IN (SELECT pgstream._partition_members($1))",
        &[source.into(), relation.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Takes the lock DROP TRIGGER needs on `source` if nobody holds a conflicting one now.
fn try_lock_exclusively(source: pg_sys::Oid) -> bool {
    unsafe {
        pg_sys::ConditionalLockRelationOid(source, pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE)
    }
}

fn install_statement_trigger(table: &str, events: &str) {
    run(&format!(
        "CREATE OR REPLACE TRIGGER {STATEMENT_TRIGGER} AFTER {events} ON {table} \
         FOR EACH STATEMENT EXECUTE FUNCTION pgstream._capture_statement()"
    ));
    run(&format!(
        "ALTER TABLE {table} ENABLE ALWAYS TRIGGER {STATEMENT_TRIGGER}"
    ));
}

/// (Re)creates the change buffer of `source` with the columns its readers need, empty; the
/// DIFFERENTIAL readers of the source recompute once (rows buffered so far are gone).
fn create_buffer(source: pg_sys::Oid) {
    let relid = source.to_u32();
    drop_buffer(relid);
    let columns = Spi::get_one_with_args::<Vec<String>>(
        "SELECT COALESCE(array_agg(pg_catalog.quote_ident(name) || ' ' || type_sql ORDER BY attnum), '{}') \
         FROM pgstream._needed_columns($1)",
        &[source.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    let header = format!(
        "{} pg_catalog.xid8 NOT NULL, {} pg_catalog.int8 NOT NULL, {} pg_catalog.int2 NOT NULL",
        BUFFER_HEADER[0], BUFFER_HEADER[1], BUFFER_HEADER[2]
    );
    let body = std::iter::once(header)
        .chain(columns)
        .collect::<Vec<_>>()
        .join(", ");
    let buffer = buffer_table(relid);
    run(&format!("CREATE TABLE {buffer} ({body})"));
    run(&format!("REVOKE ALL ON {buffer} FROM PUBLIC"));
    create_reader_view(relid, source);
    catalog::forget_differential_positions(source);
}

/// (Re)creates the view refreshes read the buffer of `source` through: every buffer column, rows
/// shown only to roles that may read the source.
fn create_reader_view(relid: u32, source: pg_sys::Oid) {
    let view = reader_view(relid);
    let existed = relation_exists(&view);
    run(&format!(
        "CREATE OR REPLACE VIEW {view} WITH (security_barrier) AS SELECT * FROM {} \
         WHERE pg_catalog.has_table_privilege({}::pg_catalog.oid, 'SELECT')",
        buffer_table(relid),
        source.to_u32()
    ));
    if !existed {
        run(&format!("REVOKE ALL ON {view} FROM PUBLIC"));
        run(&format!("GRANT SELECT ON {view} TO PUBLIC"));
    }
}

fn relation_exists(name: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
        &[name.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Drops every trigger on `relation` that calls a capture function (its own and those it has as
/// a member of a captured partition tree), and its buffer (DROP EXTENSION).
fn drop_capture_triggers(relation: pg_sys::Oid) {
    // On a Citus table, the row triggers are on every shard too; the statement trigger only on
    // the coordinator's table.
    let citus = citus::kind_of(relation).is_some();
    let statements = Spi::get_one_with_args::<Vec<String>>(
        "SELECT COALESCE(array_agg(format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::pg_catalog.regclass) \
                                   ORDER BY t.tgname), '{}') \
         FROM pg_catalog.pg_trigger t \
         WHERE t.tgrelid = $1 \
           AND t.tgfoid IN ('pgstream._capture_statement()'::pg_catalog.regprocedure, \
                            'pgstream._capture_rows()'::pg_catalog.regprocedure)",
        &[relation.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    for statement in statements {
        let shard_trigger = statement
            .strip_prefix("DROP TRIGGER ")
            .and_then(|rest| rest.split(' ').next())
            .is_some_and(citus::is_shard_trigger);
        if citus && shard_trigger {
            citus::drop_trigger(&statement);
        } else {
            run(&statement);
        }
    }
    drop_buffer(relation.to_u32());
}

/// Drops the buffer of source `relid` and its reading view.
fn drop_buffer(relid: u32) {
    citus::drop_shard_buffer(relid);
    drop_if_exists("VIEW", &reader_view(relid));
    drop_if_exists("TABLE", &buffer_table(relid));
}

/// `DROP <kind> <name>` when it exists (IF EXISTS would send the client a notice otherwise).
pub fn drop_if_exists(kind: &str, name: &str) {
    if relation_exists(name) {
        run(&format!("DROP {kind} {name}"));
    }
}

/// Sources whose capture objects exist now: those with a capture trigger or a buffer.
fn captured_sources() -> Vec<pg_sys::Oid> {
    Spi::get_one::<Vec<pg_sys::Oid>>(
        "SELECT COALESCE(array_agg(DISTINCT s), '{}') FROM ( \
           SELECT t.tgrelid AS s FROM pg_catalog.pg_trigger t \
           WHERE t.tgfoid IN ('pgstream._capture_statement()'::pg_catalog.regprocedure, \
                              'pgstream._capture_rows()'::pg_catalog.regprocedure) \
           UNION ALL \
           SELECT substr(c.relname, 6)::pg_catalog.oid FROM pg_catalog.pg_class c \
           WHERE c.relnamespace = 'pgstream_changes'::pg_catalog.regnamespace AND c.relkind = 'r' \
             AND c.relname ~ '^rows_[0-9]+$') found",
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Syncs every source a stream table reads and every relation that has capture objects.
pub fn sync_all() {
    let mut sources = catalog::as_catalog_owner(captured_sources);
    sources.extend(catalog::all_sources());
    sync(&sources);
}

/// Removes every capture trigger from users' tables (they name the extension's functions) and
/// every private table of the engine (buffers, state): what DROP EXTENSION must not trip over.
pub fn drop_everything() {
    catalog::as_catalog_owner(|| {
        as_engine_ddl(|| crate::query::without_ddl_propagation(drop_all_capture))
    })
}

/// The body of [`drop_everything`].
fn drop_all_capture() {
    for source in captured_sources() {
        let exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = $1)",
            &[source.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        if exists {
            drop_capture_triggers(source);
        }
    }
    drop_private_tables();
}

/// Drops every private table and reading view of the engine (buffers and state of all stream
/// tables, including any a restored dump brought along).
fn drop_private_tables() {
    let statements = Spi::get_one::<Vec<String>>(
        "SELECT COALESCE(array_agg(format('DROP %s %I.%I', \
                    CASE c.relkind WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END, n.nspname, c.relname) \
                ORDER BY c.relkind DESC), '{}') \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE (n.nspname = 'pgstream_changes' AND c.relkind = 'r' AND c.relname ~ '^(rows|agg|aux|shard_rows)_[0-9]') \
            OR (n.nspname = 'pgstream' AND c.relkind = 'v' AND c.relname ~ '^_rows_[0-9]+$')",
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    for statement in statements {
        run(&statement);
    }
}

/// Starts this database's capture afresh after a restored catalog was adopted: every private
/// object the dump brought along goes (named after another database's oids), then the sources
/// of every stream table get what their readers need.
pub fn rebuild_after_restore() {
    catalog::as_catalog_owner(|| {
        as_engine_ddl(|| {
            drop_private_tables();
            drop_foreign_member_triggers();
        })
    });
    sync_all();
}

/// Drops member triggers naming a partitioned source that is not above their table (a restored
/// dump brings them along named after another database's oids).
fn drop_foreign_member_triggers() {
    let statements = Spi::get_one::<Vec<String>>(
        "SELECT COALESCE(array_agg(format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::pg_catalog.regclass)), '{}') \
         FROM pg_catalog.pg_trigger t \
         WHERE t.tgname ~ '^pgstream_part_[0-9]{1,10}(_ins|_upd|_del)?$' \
           AND t.tgfoid IN ('pgstream._capture_statement()'::pg_catalog.regprocedure, \
                            'pgstream._capture_rows()'::pg_catalog.regprocedure) \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(t.tgrelid) a \
                           WHERE a.relid::pg_catalog.oid::pg_catalog.text \
                                 = substring(t.tgname FROM '^pgstream_part_([0-9]+)'))",
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    for statement in statements {
        run(&statement);
    }
}
