-- pg_stream_dbt 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_stream_dbt UPDATE): what changed in the
-- extension's own objects. Stream tables, their catalog rows, capture triggers and change buffers
-- are kept as they are. Temporary work and delta tables are per session and need nothing.
-- The new meaning hash (column positions, SQL-standard bodies, operator functions) differs from
-- 0.1.0's: the first refresh after the next DDL recomputes each stream table once.

-- The row-capture trigger no longer depends on the writer's search_path.
ALTER FUNCTION pgstream._capture_rows() SET search_path = pg_catalog, pg_temp;

-- Stream table owners fill their inner stages' tables in pgstream_changes under their own
-- rights: they need the schema's names (every table in it still denies PUBLIC).
GRANT USAGE ON SCHEMA pgstream_changes TO PUBLIC;

-- The engine's own entry points are not for PUBLIC.
REVOKE ALL ON FUNCTION pgstream._sync_capture(oid[]), pgstream._drop_capture_objects(),
    pgstream._engine_ddl_running() FROM PUBLIC;

-- ALTER TABLE ... ENABLE / DISABLE TRIGGER on a captured source marks it truncated.
CREATE FUNCTION pgstream._toggles_triggers(pg_ddl_command) RETURNS boolean
LANGUAGE c STRICT
AS 'MODULE_PATHNAME', 'pgstream_toggles_triggers';
REVOKE ALL ON FUNCTION pgstream._toggles_triggers(pg_ddl_command) FROM PUBLIC;

CREATE OR REPLACE FUNCTION pgstream._capture_ddl()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
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
    INSERT INTO pgstream_changes.statements (source_relid, operation)
    SELECT DISTINCT c.objid, 'TRUNCATE' FROM pg_event_trigger_ddl_commands() c
    WHERE c.classid = 'pg_class'::regclass AND c.command_tag = 'ALTER TABLE'
      AND EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.objid AND t.tgname = 'pgstream_capture')
      AND pgstream._toggles_triggers(c.command)
    ON CONFLICT (source_relid, xid) DO UPDATE SET operation = 'TRUNCATE';
    -- (A source that changed shape needs no capture change here: the row-capture trigger
    -- writes what still matches its buffer, and the refresh after DDL recomputes and rebuilds.)
END
$$;

CREATE OR REPLACE FUNCTION pgstream._meaning(probe regclass) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE views(relid) AS (
        SELECT probe::oid
      UNION
        SELECT d.refobjid FROM views
        JOIN pg_rewrite r ON r.ev_class = views.relid
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> views.relid
        JOIN pg_class c ON c.oid = d.refobjid AND c.relkind = 'v'
    ),
    deps AS (
        SELECT DISTINCT d.refclassid, d.refobjid, d.refobjsubid FROM views
        JOIN pg_rewrite r ON r.ev_class = views.relid
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
        WHERE NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid = views.relid)
    ),
    items(item) AS (
        SELECT format('view %s: %s',
                      CASE WHEN v.relid = probe THEN '' ELSE format('%I.%I', n.nspname, c.relname) END,
                      pg_get_viewdef(v.relid))
        FROM views v JOIN pg_class c ON c.oid = v.relid JOIN pg_namespace n ON n.oid = c.relnamespace
      UNION ALL
        SELECT format('relation %s %I.%I %s %s %s %s %s', c.oid, n.nspname, c.relname, c.relkind,
                      c.relpersistence, c.relrowsecurity, c.relforcerowsecurity, c.relispartition)
        FROM deps JOIN pg_class c ON c.oid = deps.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE deps.refclassid = 'pg_class'::regclass AND deps.refobjsubid = 0 AND c.relkind <> 'v'
      UNION ALL
        SELECT format('column %s %s %I %s %s %s', a.attrelid, a.attnum, a.attname,
                      format_type(a.atttypid, a.atttypmod), a.attcollation, a.attnotnull)
        FROM deps JOIN pg_attribute a ON a.attrelid = deps.refobjid AND a.attnum = deps.refobjsubid
        JOIN pg_class c ON c.oid = a.attrelid
        WHERE deps.refclassid = 'pg_class'::regclass AND deps.refobjsubid > 0 AND c.relkind <> 'v'
      UNION ALL
        -- the keys of the tables read (a stream table's row identity follows them)
        SELECT format('key %s %s %s', i.indrelid, i.indkey::text, i.indisprimary)
        FROM deps JOIN pg_index i ON i.indrelid = deps.refobjid
        WHERE deps.refclassid = 'pg_class'::regclass AND deps.refobjsubid = 0
          AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
      UNION ALL
        -- functions called, directly or as an operator's
        SELECT format('function %s %s %s %s %s %s %s', p.oid::regprocedure, p.provolatile,
                      md5(COALESCE(p.prosrc, '')), md5(COALESCE(pg_get_function_sqlbody(p.oid), '')),
                      COALESCE(p.probin, ''), COALESCE(p.proconfig::text, ''), p.prorettype::regtype)
        FROM (SELECT deps.refobjid FROM deps WHERE deps.refclassid = 'pg_proc'::regclass
              UNION
              SELECT o.oprcode FROM deps JOIN pg_operator o ON o.oid = deps.refobjid
              WHERE deps.refclassid = 'pg_operator'::regclass) f(oid)
        JOIN pg_proc p ON p.oid = f.oid
      UNION ALL
        SELECT format('object %s', pg_describe_object(deps.refclassid, deps.refobjid, deps.refobjsubid))
        FROM deps WHERE deps.refclassid NOT IN ('pg_class'::regclass, 'pg_proc'::regclass)
    )
    SELECT md5(string_agg(item, E'\n' ORDER BY item)) FROM items
$$;

-- Why the last refresh was FULL or SKIPPED, in the catalog and the monitoring view.
ALTER TABLE pgstream.pgs_stream_tables ADD COLUMN last_refresh_reason text;
CREATE OR REPLACE VIEW pgstream.pg_stat_stream_tables AS
SELECT s.pgs_id,
       s.pgs_schema,
       s.pgs_name,
       s.pgs_relid::regclass                                  AS stream_table,
       s.refresh_mode,
       s.status,
       s.schedule,
       e.effective_schedule,
       s.created_at,
       s.last_refresh_at,
       pgstream.next_refresh_at(e.effective_schedule,
                                GREATEST(COALESCE(s.last_refresh_at, s.created_at), s.last_error_at))
                                                              AS next_refresh_at,
       clock_timestamp() - s.last_refresh_at                  AS staleness,
       COALESCE(s.last_refresh_at IS NULL
                OR pgstream.next_refresh_at(e.effective_schedule, s.last_refresh_at) < clock_timestamp(),
                false)                                        AS stale,
       s.total_refreshes,
       s.failed_refreshes,
       s.total_refreshes - s.failed_refreshes                 AS successful_refreshes,
       s.last_refresh_kind,
       s.last_refresh_duration_ms,
       CASE WHEN s.total_refreshes > s.failed_refreshes
            THEN s.total_refresh_time_ms / (s.total_refreshes - s.failed_refreshes)
       END                                                    AS avg_refresh_duration_ms,
       s.last_rows_inserted,
       s.last_rows_updated,
       s.last_rows_deleted,
       s.consecutive_errors,
       s.last_error,
       s.last_error_at,
       pgstream.scheduler_running()                           AS scheduler_running,
       s.last_refresh_reason
FROM pgstream.pgs_stream_tables s
LEFT JOIN pgstream.effective_schedules() e USING (pgs_id);

-- What each stream table's query means, recomputed with the new hash, the way a refresh after DDL
-- computes it (a probe view of the stored query, under its stored search_path and settings), so
-- that only a real change of meaning sends a stream table to FULL after the update. A query that
-- cannot be analyzed here keeps its old hash (its first refresh after DDL then recomputes).
DO $upgrade$
DECLARE
    st record;
    setting text;
    saved text[];
    meaning text;
BEGIN
    FOR st IN SELECT pgs_id, defining_query, search_path, query_settings
              FROM pgstream.pgs_stream_tables WHERE pgs_meaning IS NOT NULL LOOP
        saved := ARRAY[current_setting('search_path')];
        BEGIN
            PERFORM set_config('search_path',
                               CASE WHEN st.search_path = '' THEN 'pg_temp' ELSE st.search_path || ', pg_temp' END,
                               true);
            FOREACH setting IN ARRAY COALESCE(st.query_settings, '{}') LOOP
                IF split_part(setting, '=', 1) IN ('TimeZone', 'DateStyle', 'IntervalStyle', 'lc_time',
                        'lc_monetary', 'lc_numeric', 'default_text_search_config') THEN
                    saved := saved || ARRAY[split_part(setting, '=', 1),
                                            current_setting(split_part(setting, '=', 1))];
                    PERFORM set_config(split_part(setting, '=', 1),
                                       substr(setting, length(split_part(setting, '=', 1)) + 2), true);
                END IF;
            END LOOP;
            EXECUTE 'CREATE TEMPORARY VIEW __pgs_upgrade_probe AS ' || st.defining_query;
            meaning := pgstream._meaning('pg_temp.__pgs_upgrade_probe'::regclass);
            DROP VIEW pg_temp.__pgs_upgrade_probe;
            UPDATE pgstream.pgs_stream_tables SET pgs_meaning = meaning WHERE pgs_id = st.pgs_id;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'pg_stream_dbt update: the meaning of stream table % was not recomputed: %',
                st.pgs_id, SQLERRM;
        END;
        PERFORM set_config('search_path', saved[1], true);
        FOR i IN 2 .. coalesce(array_length(saved, 1), 1) - 1 BY 2 LOOP
            PERFORM set_config(saved[i], saved[i + 1], true);
        END LOOP;
    END LOOP;
END
$upgrade$;
