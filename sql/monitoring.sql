-- pg_stream_dbt monitoring: whether the scheduler runs, the per-stream-table statistics view,
-- and the change-capture health report.

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
COMMENT ON VIEW pgstream.pg_stat_stream_tables IS
    'pg_stream_dbt: freshness and refresh statistics per stream table';
GRANT SELECT ON pgstream.pg_stat_stream_tables TO PUBLIC;

-- Change capture per source relation: readers, whether the trigger is there and enabled,
-- changes not yet covered by every reader, and for sources of DIFFERENTIAL stream tables the
-- row capture: its change rows (each consumer deletes nothing; rows go once every
-- DIFFERENTIAL reader has consumed them) and the oldest of them.
CREATE FUNCTION pgstream.check_cdc_health()
RETURNS TABLE (source_relid oid, source_schema text, source_name text, source_kind text,
               readers text[], capturable boolean, trigger_present boolean,
               buffer_rows bigint, oldest_change_at timestamptz,
               differential_readers text[], row_capture boolean, change_rows bigint,
               status text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    source record;
BEGIN
    FOR source IN
        SELECT d.source_relid AS relid, d.source_schema AS schema, d.source_name AS name,
               d.source_kind AS kind,
               array_agg(format('%I.%I', s.pgs_schema, s.pgs_name) ORDER BY s.pgs_schema, s.pgs_name) AS readers,
               array_agg(format('%I.%I', s.pgs_schema, s.pgs_name) ORDER BY s.pgs_schema, s.pgs_name)
                   FILTER (WHERE s.effective_mode = 'DIFFERENTIAL') AS differential,
               c.oid IS NOT NULL AS present,
               pgstream._capture_blocker(d.source_relid) AS blocker,
               bool_or(t.oid IS NOT NULL) AS trigger_exists,
               bool_or(t.oid IS NOT NULL AND t.tgenabled = 'A') AS trigger_ok
        FROM pgstream.pgs_dependencies d
        JOIN pgstream.pgs_stream_tables s USING (pgs_id)
        LEFT JOIN pg_class c ON c.oid = d.source_relid
        LEFT JOIN pg_trigger t ON t.tgrelid = d.source_relid AND t.tgname = 'pgstream_capture'
                              AND t.tgfoid = 'pgstream._capture_statement()'::regprocedure
        WHERE d.source_kind <> 'view'
        GROUP BY d.source_relid, d.source_schema, d.source_name, d.source_kind, c.oid
        ORDER BY d.source_schema, d.source_name
    LOOP
        source_relid := source.relid;
        source_schema := source.schema;
        source_name := source.name;
        source_kind := source.kind;
        readers := source.readers;
        capturable := source.blocker IS NULL;
        trigger_present := COALESCE(source.trigger_ok, false);
        SELECT count(*), min(b.changed_at) INTO buffer_rows, oldest_change_at
        FROM pgstream_changes.statements b WHERE b.source_relid = source.relid;
        differential_readers := source.differential;
        row_capture := pgstream._row_capture_current(source.relid);
        change_rows := NULL;
        IF to_regclass(format('pgstream_changes.%I', 'rows_' || source.relid)) IS NOT NULL THEN
            EXECUTE format('SELECT count(*) FROM pgstream_changes.%I', 'rows_' || source.relid)
            INTO change_rows;
        END IF;
        status := CASE
            WHEN NOT source.present THEN 'source missing: readers will fail to refresh'
            WHEN source.blocker IS NOT NULL
                THEN 'not capturable (' || source.blocker || '): readers always recompute'
            WHEN NOT COALESCE(source.trigger_exists, false)
                THEN 'capture trigger missing: readers recompute until it is back'
            WHEN NOT trigger_present THEN 'capture trigger not enabled ALWAYS: readers recompute'
            WHEN source.differential IS NOT NULL AND NOT row_capture
                THEN 'row capture missing or out of date: DIFFERENTIAL readers recompute once'
            ELSE 'ok' END;
        RETURN NEXT;
    END LOOP;
END
$$;
