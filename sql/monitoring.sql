-- pg_stream_dbt monitoring view, CDC health report, and the event triggers that keep the
-- catalog in step with DROP TABLE and ALTER TABLE ... RENAME / SET SCHEMA.

-- Whether a scheduler worker serves this database. SECURITY DEFINER: pg_stat_activity hides
-- the backend type of other users' sessions (the worker runs as the bootstrap superuser).
CREATE FUNCTION pgstream.scheduler_running() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_stat_activity a
                   WHERE a.backend_type = 'pg_stream_dbt scheduler'
                     AND a.datname = current_database())
$$;

CREATE VIEW pgstream.pg_stat_stream_tables AS
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
       s.last_refresh_duration_ms,
       CASE WHEN s.total_refreshes > s.failed_refreshes
            THEN s.total_refresh_time_ms / (s.total_refreshes - s.failed_refreshes)
       END                                                    AS avg_refresh_duration_ms,
       s.last_rows_inserted,
       s.last_rows_deleted,
       s.consecutive_errors,
       s.last_error,
       s.last_error_at,
       pgstream.scheduler_running()                           AS scheduler_running
FROM pgstream.pgs_stream_tables s
LEFT JOIN pgstream.effective_schedules() e USING (pgs_id);
COMMENT ON VIEW pgstream.pg_stat_stream_tables IS
    'pg_stream_dbt: freshness and refresh statistics per stream table';
GRANT SELECT ON pgstream.pg_stat_stream_tables TO PUBLIC;

-- Change capture per source relation. Every refresh is FULL in this version, so no source
-- needs a capture trigger yet; the report says so per source.
CREATE FUNCTION pgstream.check_cdc_health()
RETURNS TABLE (source_relid oid, source_schema text, source_name text, source_kind text,
               readers text[], cdc_required boolean, trigger_present boolean,
               buffer_rows bigint, oldest_change_at timestamptz, status text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgstream
AS $$
    SELECT d.source_relid, d.source_schema, d.source_name, d.source_kind,
           array_agg(format('%I.%I', s.pgs_schema, s.pgs_name) ORDER BY s.pgs_schema, s.pgs_name),
           false, false, 0::bigint, NULL::timestamptz,
           CASE WHEN c.oid IS NULL THEN 'source missing: readers will fail to refresh'
                ELSE 'ok: readers refresh FULL, no change capture needed' END
    FROM pgstream.pgs_dependencies d
    JOIN pgstream.pgs_stream_tables s USING (pgs_id)
    LEFT JOIN pg_class c ON c.oid = d.source_relid
    WHERE d.source_kind <> 'view'
    GROUP BY d.source_relid, d.source_schema, d.source_name, d.source_kind, c.oid
    ORDER BY d.source_schema, d.source_name
$$;

-- Keep the catalog in step with DDL users run on stream tables directly.
CREATE FUNCTION pgstream._catalog_on_sql_drop()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgstream
AS $$
BEGIN
    DELETE FROM pgstream.pgs_stream_tables
    WHERE pgs_relid IN (SELECT objid FROM pg_event_trigger_dropped_objects()
                        WHERE classid = 'pg_class'::regclass AND objsubid = 0);
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

CREATE EVENT TRIGGER pgstream_catalog_on_sql_drop ON sql_drop
    EXECUTE FUNCTION pgstream._catalog_on_sql_drop();
CREATE EVENT TRIGGER pgstream_catalog_on_rename ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA')
    EXECUTE FUNCTION pgstream._catalog_on_rename();

-- Tell the scheduler launcher (when preloaded) that this database now has the extension.
SELECT pgstream.request_scheduler_rescan();
