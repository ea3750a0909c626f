-- pg_stream_dbt 0.2.0 -> 0.3.0 (ALTER EXTENSION pg_stream_dbt UPDATE): partitioned tables are
-- captured at every member of their partition tree and maintained DIFFERENTIAL; ATTACH and
-- DETACH PARTITION are recorded as the rows they move. Stream tables, catalog rows, capture
-- triggers and change buffers are kept as they are; a stream table that read a partitioned table
-- under 0.2.0 was FULL and stays so until it is redefined (alter_stream_table, a changed dbt
-- model) or recreated.

-- One record per source and transaction is enough (a refresh only asks whether a source
-- changed, and whether it was truncated): the unique index on (source_relid, xid) keeps it to one.
-- On a partition of a captured partitioned table the trigger's argument names that table (the
-- source): a statement fires the triggers of the table it names only, so every member of the
-- partition tree has its own, recording for the source; a table detached since records nothing.
CREATE OR REPLACE FUNCTION pgstream._capture_statement() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    source oid := TG_RELID;
BEGIN
    IF TG_NARGS > 0 THEN
        source := TG_ARGV[0]::oid;
        IF NOT EXISTS (SELECT 1 FROM pg_partition_ancestors(TG_RELID) a WHERE a.relid = source) THEN
            RETURN NULL;
        END IF;
    END IF;
    -- A TRUNCATE overrides the transaction's earlier record: its readers must recompute.
    INSERT INTO pgstream_changes.statements (source_relid, operation) VALUES (source, TG_OP)
    ON CONFLICT (source_relid, xid) DO UPDATE SET operation = 'TRUNCATE'
        WHERE excluded.operation = 'TRUNCATE';
    RETURN NULL;
END
$$;

-- The members of the partition tree of `source` (none for a table that is not partitioned),
-- detached-pending ones included. Read from pg_inherits, not pg_partition_tree(), which locks
-- every partition without the partitioned table first: a refresh asking would take locks in
-- the order opposite to DETACH PARTITION's and deadlock with it.
CREATE FUNCTION pgstream._partition_members(source oid) RETURNS SETOF oid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE tree(relid) AS (
        SELECT i.inhrelid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent
        WHERE i.inhparent = source AND c.relkind = 'p'
      UNION
        SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid
    )
    SELECT relid FROM tree
$$;

-- Why a relation's changes cannot be captured by statement triggers on it (NULL: they can).
-- Writes through an inheritance parent, logical replication apply (row triggers only), crash
-- recovery of unlogged tables, catalog updates and row-level security policies all change what a
-- query sees without firing them. A partitioned table is captured at every member of its tree
-- (writes through it and writes to a partition directly); a partition read by itself is not
-- (its triggers are its root's), nor a tree with a foreign or unlogged partition.
CREATE OR REPLACE FUNCTION pgstream._capture_blocker(relation oid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN c.oid IS NULL THEN 'source missing'
        WHEN c.oid < 16384 OR c.relnamespace = 'pg_catalog'::regnamespace THEN 'system catalog'
        WHEN c.relkind = 'm' THEN 'materialized view'
        WHEN c.relkind = 'f' THEN 'foreign table'
        WHEN c.relkind NOT IN ('r', 'p') THEN 'not a table'
        WHEN c.relpersistence = 't' THEN 'temporary table'
        WHEN c.relpersistence = 'u' THEN 'unlogged table'
        WHEN c.relispartition THEN 'partition'
        WHEN c.relkind = 'r' AND (c.relhassubclass
                                  OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid))
            THEN 'inheritance'
        WHEN c.relkind = 'p' AND EXISTS (SELECT 1 FROM pgstream._partition_members(c.oid) t
                                         JOIN pg_class m ON m.oid = t WHERE m.relkind = 'f')
            THEN 'foreign partition'
        WHEN c.relkind = 'p' AND EXISTS (SELECT 1 FROM pgstream._partition_members(c.oid) t
                                         JOIN pg_class m ON m.oid = t WHERE m.relpersistence <> 'p')
            THEN 'unlogged partition'
        WHEN c.relrowsecurity THEN 'row-level security'
        WHEN EXISTS (SELECT 1 FROM pg_subscription_rel r
                     WHERE r.srrelid = c.oid OR r.srrelid IN (SELECT pgstream._partition_members(c.oid)))
            THEN 'logical replication target'
    END
    FROM (SELECT relation AS wanted) w LEFT JOIN pg_class c ON c.oid = w.wanted
$$;

-- The sources whose changes writes to `relation` are: itself when captured, and the partitioned
-- sources whose trees it is a member of (named by its pgstream_part_<source> trigger, which
-- only the engine can make: it calls a function PUBLIC may not execute).
CREATE FUNCTION pgstream._capture_sources_of(relation oid) RETURNS SETOF oid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.tgrelid FROM pg_trigger t WHERE t.tgrelid = relation AND t.tgname = 'pgstream_capture'
    UNION
    SELECT n::oid FROM (
        SELECT substring(t.tgname FROM '^pgstream_part_([0-9]{1,10})$')::int8 AS n FROM pg_trigger t
        WHERE t.tgrelid = relation AND t.tgname ~ '^pgstream_part_[0-9]{1,10}$'
          AND t.tgfoid = 'pgstream._capture_statement()'::regprocedure) named
    WHERE n <= 4294967295
$$;

-- The members of partitioned `source` whose capture triggers are not what its readers need
-- (`wanted`: the source is read and capturable; `differential`: with row capture): the
-- statement trigger pgstream_part_<source> on every change or, beside row capture, on TRUNCATE,
-- and pgstream_part_<source>_ins / _upd / _del, enabled ALWAYS, with the source as argument.
-- (Looked up by the members' oids: a refresh asks this of every source.)
CREATE FUNCTION pgstream._members_incomplete(source oid, wanted boolean, differential boolean)
RETURNS oid[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY(
        SELECT m FROM pgstream._partition_members(source) m
        WHERE wanted
          AND (SELECT count(*) FROM pg_trigger t
               WHERE t.tgrelid = m AND t.tgenabled = 'A' AND t.tgnargs = 1
                 AND t.tgargs = convert_to(source::text, 'SQL_ASCII') || '\x00'::bytea
                 AND ((t.tgname = 'pgstream_part_' || source
                       AND t.tgfoid = 'pgstream._capture_statement()'::regprocedure
                       AND t.tgtype = CASE WHEN differential THEN 32 ELSE 60 END)
                      OR (differential
                          AND t.tgname IN ('pgstream_part_' || source || '_ins',
                                           'pgstream_part_' || source || '_upd',
                                           'pgstream_part_' || source || '_del')
                          AND t.tgfoid = 'pgstream._capture_rows()'::regprocedure)))
              <> CASE WHEN differential THEN 4 ELSE 1 END)
$$;

-- The relations with member triggers of `source` that should not have them: tables detached
-- since, row triggers no reader needs (not `differential`), all of them when not `wanted`.
CREATE FUNCTION pgstream._member_triggers_extra(source oid, wanted boolean, differential boolean)
RETURNS oid[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY(
        SELECT DISTINCT t.tgrelid FROM pg_trigger t
        WHERE t.tgname IN ('pgstream_part_' || source, 'pgstream_part_' || source || '_ins',
                           'pgstream_part_' || source || '_upd', 'pgstream_part_' || source || '_del')
          AND (NOT wanted
               OR t.tgrelid NOT IN (SELECT pgstream._partition_members(source))
               OR (NOT differential AND t.tgname <> 'pgstream_part_' || source)))
$$;

-- Whether a partition of `source`'s tree is being detached concurrently: its rows left the
-- view of new transactions before the DDL's event trigger records them (at the end of the
-- second transaction). Its readers recompute until then.
CREATE FUNCTION pgstream._detach_pending(source oid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_inherits i
                   WHERE i.inhdetachpending
                     AND (i.inhparent = source OR i.inhparent IN (SELECT pgstream._partition_members(source))))
$$;

-- The buffer of `source` and its reading view exist, the buffer keeps every needed column with
-- its type, and all the triggers are in place.
CREATE OR REPLACE FUNCTION pgstream._row_capture_current(source oid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.has_buffer AND s.missing IS NULL AND NOT s.retyped AND s.row_triggers = 3
       AND s.statement_trigger IS NOT NULL
       AND to_regclass(format('pgstream.%I', '_rows_' || source)) IS NOT NULL
       AND cardinality(pgstream._members_incomplete(source, true, true)) = 0
       AND NOT pgstream._detach_pending(source)
    FROM pgstream._capture_state(source) s
$$;

-- Whether every change of `source` is recorded: a table whose statement trigger is enabled
-- ALWAYS and fires on every change, or on TRUNCATE only beside the three row-capture triggers
-- (which record the other statements); and, partitioned, every member of its tree likewise.
CREATE OR REPLACE FUNCTION pgstream._statements_captured(source oid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgstream._capture_blocker(source) IS NULL
       AND EXISTS (SELECT 1 FROM pg_trigger t
                   WHERE t.tgrelid = source AND t.tgname = 'pgstream_capture' AND t.tgenabled = 'A'
                     AND t.tgfoid = 'pgstream._capture_statement()'::regprocedure
                     AND (t.tgtype = 60
                          OR (t.tgtype = 32
                              AND (SELECT count(*) FROM pg_trigger r
                                   WHERE r.tgrelid = source AND r.tgenabled = 'A'
                                     AND r.tgname IN ('pgstream_rows_ins', 'pgstream_rows_upd', 'pgstream_rows_del')
                                     AND r.tgfoid = 'pgstream._capture_rows()'::regprocedure) = 3)))
       AND cardinality(pgstream._members_incomplete(source, true, EXISTS (
               SELECT 1 FROM pg_trigger t WHERE t.tgrelid = source AND t.tgname = 'pgstream_capture'
                 AND t.tgtype = 32))) = 0
       AND NOT pgstream._detach_pending(source)
$$;

REVOKE ALL ON FUNCTION pgstream._members_incomplete(oid, boolean, boolean),
    pgstream._member_triggers_extra(oid, boolean, boolean) FROM PUBLIC;

-- Which tables an ALTER TABLE attached or detached (src/capture/trigger_toggles.rs).
CREATE FUNCTION pgstream._partitions_moved(pg_ddl_command, kind text) RETURNS text[]
LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'pgstream_partitions_moved';
REVOKE ALL ON FUNCTION pgstream._partitions_moved(pg_ddl_command, text) FROM PUBLIC;

-- The DDL event triggers' entry point for partition trees (src/capture/partitions.rs).
CREATE FUNCTION pgstream."_sync_partitions"(
	"relation" oid /* pgrx_pg_sys::submodules::oids::Oid */,
	"attached" TEXT[] /* alloc::vec::Vec<alloc::string::String> */,
	"detached" TEXT[] /* alloc::vec::Vec<alloc::string::String> */,
	"rows_known" bool /* bool */
) RETURNS void
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sync_partitions_sql_wrapper';
REVOKE ALL ON FUNCTION pgstream._sync_partitions(oid, text[], text[], boolean) FROM PUBLIC;

-- Whether a catalog row is this transaction's (src/capture/trigger_toggles.rs).
CREATE FUNCTION pgstream."_changed_in_this_transaction"(
	"relation" oid /* pgrx_pg_sys::submodules::oids::Oid */
) RETURNS bool /* bool */
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'changed_in_this_transaction_wrapper';
REVOKE ALL ON FUNCTION pgstream._changed_in_this_transaction(oid) FROM PUBLIC;

-- DDL can change what a query returns without any row changing (ALTER TABLE, CREATE OR
-- REPLACE VIEW or FUNCTION, REVOKE, ...): any DDL outside temporary schemas is recorded as a
-- change of every source (source_relid 0), so the next refresh of every stream table recomputes.
CREATE OR REPLACE FUNCTION pgstream._capture_ddl()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    command record;
    attached text[];
    detached text[];
    detached_late text[];
BEGIN
    IF pgstream._engine_ddl_running() THEN
        RETURN;  -- the engine's own capture objects: no query means anything else
    END IF;
    IF tg_tag = 'REFRESH MATERIALIZED VIEW' THEN
        RETURN;  -- new data, no new meaning (a materialized view source is always recomputed)
    END IF;
    -- DROP commands report nothing here; _catalog_on_sql_drop records them.
    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
               WHERE c.schema_name IS NULL
                  OR (c.schema_name NOT LIKE 'pg\_temp%' AND c.schema_name NOT LIKE 'pg\_toast\_temp%'
                      -- the engine's own tables (aggregate state) are no one's source
                      AND c.schema_name <> 'pgstream_changes'))
       -- A command that collected nothing: record it, unless it is one of the statements on a
       -- temporary table that REFRESH MATERIALIZED VIEW CONCURRENTLY runs internally.
       OR (tg_tag NOT LIKE 'DROP %'
           AND current_query() !~* '^\s*REFRESH\s+MATERIALIZED\s+VIEW\s+CONCURRENTLY\M'
           AND NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands())) THEN
        INSERT INTO pgstream_changes.statements (source_relid, operation) VALUES (0, tg_tag)
        ON CONFLICT DO NOTHING;
    END IF;
    -- ALTER TABLE ... DISABLE / ENABLE TRIGGER on a captured source (bulk loads do it; so does
    -- pg_restore --disable-triggers): what it wrote while its capture triggers were off was not
    -- captured. Recorded as a truncation, in the DISABLE's transaction and again in the
    -- ENABLE's: every reader recomputes from the source once triggers are back.
    -- (On a partition: the partitioned sources it is a member of.)
    INSERT INTO pgstream_changes.statements (source_relid, operation)
    SELECT DISTINCT s, 'TRUNCATE' FROM pg_event_trigger_ddl_commands() c,
                                       pgstream._capture_sources_of(c.objid) s
    WHERE c.classid = 'pg_class'::regclass AND c.command_tag = 'ALTER TABLE'
      AND pgstream._toggles_triggers(c.command)
    ON CONFLICT (source_relid, xid) DO UPDATE SET operation = 'TRUNCATE';
    -- A partition tree changed (ATTACH / DETACH PARTITION, CREATE TABLE ... PARTITION OF): the
    -- members of a captured one get their triggers, and the rows that joined or left it are
    -- recorded as the source's changes (src/capture/partitions.rs).
    -- (Other ALTERs of a tree, DISABLE TRIGGER among them, leave its triggers as they are.)
    FOR command IN
        SELECT c.objid, c.command, c.command_tag FROM pg_event_trigger_ddl_commands() c
        JOIN pg_class r ON r.oid = c.objid
        WHERE c.classid = 'pg_class'::regclass AND c.objsubid = 0 AND (r.relkind = 'p' OR r.relispartition)
          AND c.command_tag IN ('CREATE TABLE', 'ALTER TABLE')
    LOOP
        attached := pgstream._partitions_moved(command.command, 'attach');
        detached := pgstream._partitions_moved(command.command, 'detach');
        detached_late := pgstream._partitions_moved(command.command, 'detach concurrently');
        IF command.command_tag = 'CREATE TABLE'
           OR cardinality(attached) + cardinality(detached) + cardinality(detached_late) > 0 THEN
            PERFORM pgstream._sync_partitions(command.objid, attached, detached || detached_late,
                                              cardinality(detached_late) = 0);
        END IF;
    END LOOP;
END
$$;

-- Keep the catalog in step with DDL users run on stream tables directly.
CREATE OR REPLACE FUNCTION pgstream._catalog_on_sql_drop()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgstream
AS $$
DECLARE
    dropped oid[] := ARRAY(SELECT objid FROM pg_event_trigger_dropped_objects()
                           WHERE classid = 'pg_class'::regclass AND objsubid = 0);
    affected oid[];
BEGIN
    IF pgstream._engine_ddl_running() THEN
        RETURN;  -- the engine's own capture objects
    END IF;
    -- The sources of dropped stream tables, and dropped sources that had capture objects.
    affected := ARRAY(SELECT d.source_relid FROM pgstream.pgs_dependencies d
                      JOIN pgstream.pgs_stream_tables s USING (pgs_id)
                      WHERE s.pgs_relid = ANY (dropped)
                      UNION
                      SELECT x FROM unnest(dropped) x
                      WHERE to_regclass(format('pgstream_changes.%I', 'rows_' || x)) IS NOT NULL);
    PERFORM pgstream._drop_state_of(s.pgs_id) FROM pgstream.pgs_stream_tables s
    WHERE s.pgs_relid = ANY (dropped);
    DELETE FROM pgstream.pgs_stream_tables WHERE pgs_relid = ANY (dropped);
    IF cardinality(affected) > 0 THEN
        PERFORM pgstream._sync_capture(affected);
    END IF;
    -- Dropping anything that is not temporary may change what a query returns: recompute.
    -- (A temporary view's rule is not flagged temporary: its address names the temp schema.)
    IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects()
               WHERE NOT is_temporary
                 AND COALESCE(address_names[1], '') NOT IN ('pgstream_changes', 'pg_toast')
                 AND COALESCE(schema_name, '') NOT IN ('pgstream_changes', 'pg_toast')
                 AND COALESCE(address_names[1], '') NOT LIKE 'pg\_temp%'
                 AND COALESCE(address_names[1], '') NOT LIKE 'pg\_toast\_temp%') THEN
        INSERT INTO pgstream_changes.statements (source_relid, operation) VALUES (0, tg_tag)
        ON CONFLICT DO NOTHING;
    END IF;
    -- A dropped partition of a captured partitioned source took its rows along: the source
    -- counts as truncated (its member triggers, named after the source, went with it).
    INSERT INTO pgstream_changes.statements (source_relid, operation)
    SELECT DISTINCT n::oid, 'TRUNCATE' FROM (
        SELECT substring(o.object_identity FROM '^pgstream_part_([0-9]{1,10})')::int8 AS n
        FROM pg_event_trigger_dropped_objects() o
        WHERE o.object_type = 'trigger'
          AND o.object_identity ~ '^pgstream_part_[0-9]{1,10}(_ins|_upd|_del)? on ') named
    WHERE n <= 4294967295
    ON CONFLICT (source_relid, xid) DO UPDATE SET operation = 'TRUNCATE';
END
$$;
