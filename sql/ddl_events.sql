-- pg_stream_dbt event triggers: DDL recorded as a change of what queries mean, capture triggers
-- removed before DROP EXTENSION, and the catalog kept in step with DROP TABLE and ALTER TABLE
-- ... RENAME / SET SCHEMA run on stream tables directly.

-- Whether a collected DDL command enables or disables triggers, and the tables it attached to or
-- detached from a partition tree (src/capture/trigger_toggles.rs).
CREATE FUNCTION pgstream._toggles_triggers(pg_ddl_command) RETURNS boolean
LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'pgstream_toggles_triggers';
CREATE FUNCTION pgstream._partitions_moved(pg_ddl_command, kind text) RETURNS text[]
LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'pgstream_partitions_moved';
REVOKE ALL ON FUNCTION pgstream._toggles_triggers(pg_ddl_command),
    pgstream._partitions_moved(pg_ddl_command, text) FROM PUBLIC;

-- DDL can change what a query returns without any row changing (ALTER TABLE, CREATE OR
-- REPLACE VIEW or FUNCTION, REVOKE, ...): any DDL outside temporary schemas is recorded as a
-- change of every source (source_relid 0), so the next refresh of every stream table recomputes.
CREATE FUNCTION pgstream._capture_ddl()
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
REVOKE ALL ON FUNCTION pgstream._capture_ddl() FROM PUBLIC;
CREATE EVENT TRIGGER pgstream_capture_ddl ON ddl_command_end
    EXECUTE FUNCTION pgstream._capture_ddl();
-- Also under session_replication_role = replica (DDL replicated by logical replication tools).
ALTER EVENT TRIGGER pgstream_capture_ddl ENABLE ALWAYS;

-- DROP EXTENSION must not trip over the capture triggers on users' tables: remove them
-- first. (At ddl_command_start the extension's name is not known; if another extension is
-- being dropped, stream tables just recompute once and _sync_capture puts the triggers back.)
CREATE FUNCTION pgstream._before_drop_extension()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgstream._drop_capture_objects();
END
$$;
REVOKE ALL ON FUNCTION pgstream._before_drop_extension() FROM PUBLIC;
CREATE EVENT TRIGGER pgstream_before_drop_extension ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION pgstream._before_drop_extension();

-- Keep the catalog in step with DDL users run on stream tables directly.
CREATE FUNCTION pgstream._catalog_on_sql_drop()
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
    -- A capture trigger dropped from a source that is still there (DROP TRIGGER): what was
    -- written while it was gone was not captured. Recorded as a truncation, so every reader
    -- recomputes from the source, not only the refresh that puts the trigger back.
    INSERT INTO pgstream_changes.statements (source_relid, operation)
    SELECT DISTINCT r, 'TRUNCATE' FROM (
        SELECT to_regclass(format('%I.%I', o.address_names[1], o.address_names[2]))::oid AS r
        FROM pg_event_trigger_dropped_objects() o
        WHERE o.object_type = 'trigger'
          AND o.address_names[3] IN ('pgstream_capture', 'pgstream_rows_ins',
                                     'pgstream_rows_upd', 'pgstream_rows_del')) t
    WHERE r IS NOT NULL
    ON CONFLICT (source_relid, xid) DO UPDATE SET operation = 'TRUNCATE';
END
$$;

CREATE FUNCTION pgstream._catalog_on_rename()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgstream
AS $$
BEGIN
    UPDATE pgstream.pgs_stream_tables s
    SET pgs_schema = n.nspname, pgs_name = c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = s.pgs_relid
      AND (s.pgs_schema, s.pgs_name) IS DISTINCT FROM (n.nspname::text, c.relname::text);
END
$$;
REVOKE ALL ON FUNCTION pgstream._catalog_on_sql_drop(), pgstream._catalog_on_rename() FROM PUBLIC;
-- The engine's own entry points (src/capture/mod.rs), for the functions above only.
REVOKE ALL ON FUNCTION pgstream._sync_capture(oid[]), pgstream._drop_capture_objects(),
    pgstream._engine_ddl_running(), pgstream._sync_partitions(oid, text[], text[], boolean),
    pgstream._changed_in_this_transaction(oid) FROM PUBLIC;

CREATE EVENT TRIGGER pgstream_catalog_on_sql_drop ON sql_drop
    EXECUTE FUNCTION pgstream._catalog_on_sql_drop();
ALTER EVENT TRIGGER pgstream_catalog_on_sql_drop ENABLE ALWAYS;
CREATE EVENT TRIGGER pgstream_catalog_on_rename ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA')
    EXECUTE FUNCTION pgstream._catalog_on_rename();

-- Tell the scheduler launcher (when preloaded) that this database now has the extension.
SELECT pgstream.request_scheduler_rescan();
