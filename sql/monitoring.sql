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
       s.last_refresh_kind,
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

-- Change capture. A statement trigger on every ordinary table a stream table reads records
-- that it changed; a refresh whose sources show no change committed since the snapshot it
-- last covered is skipped. ENABLE ALWAYS: it fires under session_replication_role = replica
-- too (logical replication apply, restores), so no change goes unseen.
-- One record per source and transaction is enough (a refresh only asks whether a source
-- changed, and whether it was truncated): the unique index on (source_relid, xid) keeps it
-- to one.
CREATE FUNCTION pgstream._capture_statement() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- A TRUNCATE overrides the transaction's earlier record: its readers must recompute.
    INSERT INTO pgstream_changes.statements (source_relid, operation) VALUES (TG_RELID, TG_OP)
    ON CONFLICT (source_relid, xid) DO UPDATE SET operation = 'TRUNCATE'
        WHERE excluded.operation = 'TRUNCATE';
    RETURN NULL;
END
$$;

-- Why a relation's changes cannot be captured by a statement trigger on it (NULL: they can).
-- Writes through a partitioned or inheritance parent, logical replication apply (row
-- triggers only), crash recovery of unlogged tables, catalog updates and row-level security
-- policies all change what a query sees without firing that trigger.
CREATE FUNCTION pgstream._capture_blocker(relation oid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN c.oid IS NULL THEN 'source missing'
        WHEN c.oid < 16384 OR c.relnamespace = 'pg_catalog'::regnamespace THEN 'system catalog'
        WHEN c.relkind = 'p' THEN 'partitioned table'
        WHEN c.relkind = 'm' THEN 'materialized view'
        WHEN c.relkind = 'f' THEN 'foreign table'
        WHEN c.relkind <> 'r' THEN 'not a table'
        WHEN c.relpersistence = 't' THEN 'temporary table'
        WHEN c.relpersistence = 'u' THEN 'unlogged table'
        WHEN c.relispartition THEN 'partition'
        WHEN c.relhassubclass OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
            THEN 'inheritance'
        WHEN c.relrowsecurity THEN 'row-level security'
        WHEN EXISTS (SELECT 1 FROM pg_subscription_rel r WHERE r.srrelid = c.oid)
            THEN 'logical replication target'
    END
    FROM (SELECT relation AS wanted) w LEFT JOIN pg_class c ON c.oid = w.wanted
$$;

-- Row capture for DIFFERENTIAL refresh. A source read by a DIFFERENTIAL stream table gets a
-- change buffer pgstream_changes.rows_<oid>, a trigger function pgstream_changes.capture_<oid>
-- appending the rows of each statement's transition tables to it (-1 old, +1 new), three
-- statement triggers (pgstream_rows_ins/upd/del, ENABLE ALWAYS), and a reading view
-- pgstream._rows_<oid> that shows the buffer only to roles that may read the source (refresh
-- reads changes as the stream table's owner).

-- (Re)creates the statement trigger pgstream_capture on `source`: on every change, or only on
-- TRUNCATE when the row-capture triggers record the statements.
CREATE FUNCTION pgstream._install_statement_capture(source oid, truncate_only boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS pgstream_capture ON %s', source::regclass);
    EXECUTE format('CREATE TRIGGER pgstream_capture AFTER %s ON %s FOR EACH STATEMENT '
                   'EXECUTE FUNCTION pgstream._capture_statement()',
                   CASE WHEN truncate_only THEN 'TRUNCATE' ELSE 'INSERT OR UPDATE OR DELETE OR TRUNCATE' END,
                   source::regclass);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pgstream_capture', source::regclass);
END
$$;
REVOKE ALL ON FUNCTION pgstream._install_statement_capture(oid, boolean) FROM PUBLIC;

-- The columns of `source` its change buffer keeps, in table order: those its DIFFERENTIAL
-- readers read (all when one reads the whole row), with their types.
CREATE FUNCTION pgstream._captured_columns(source oid, OUT names text[], OUT signature text[])
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(a.attname::text ORDER BY a.attnum),
           array_agg(ROW(a.attname, a.atttypid, a.atttypmod)::text ORDER BY a.attnum)
    FROM pg_attribute a
    WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped
      AND (EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d JOIN pgstream.pgs_stream_tables s USING (pgs_id)
                   WHERE d.source_relid = source AND s.effective_mode = 'DIFFERENTIAL'
                     AND d.used_columns IS NULL)
           OR a.attname::text IN (SELECT unnest(d.used_columns) FROM pgstream.pgs_dependencies d
                                  JOIN pgstream.pgs_stream_tables s USING (pgs_id)
                                  WHERE d.source_relid = source AND s.effective_mode = 'DIFFERENTIAL'))
$$;

-- Whether the change buffer of `source` keeps column `col` (true when it has no buffer: then
-- nothing reads its change rows).
CREATE FUNCTION pgstream._buffer_keeps(source oid, col name) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT to_regclass(format('pgstream_changes.%I', 'rows_' || source)) IS NULL
        OR EXISTS (SELECT 1 FROM pg_attribute b
                   WHERE b.attrelid = to_regclass(format('pgstream_changes.%I', 'rows_' || source))
                     AND b.attname = col AND b.attnum > 3 AND NOT b.attisdropped)
$$;

-- The buffer of `source` exists, matches its columns, and all three triggers are in place.
CREATE FUNCTION pgstream._row_capture_current(source oid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT to_regclass(format('pgstream_changes.%I', 'rows_' || source)) IS NOT NULL
       AND to_regclass(format('pgstream.%I', '_rows_' || source)) IS NOT NULL
       AND (SELECT signature FROM pgstream._captured_columns(source))
           IS NOT DISTINCT FROM
           (SELECT array_agg(ROW(a.attname, a.atttypid, a.atttypmod)::text ORDER BY a.attnum)
            FROM pg_attribute a
            WHERE a.attrelid = to_regclass(format('pgstream_changes.%I', 'rows_' || source))
              AND a.attnum > 3 AND NOT a.attisdropped)
       AND (SELECT count(*) FROM pg_trigger t
            WHERE t.tgrelid = source AND t.tgenabled = 'A'
              AND t.tgname IN ('pgstream_rows_ins', 'pgstream_rows_upd', 'pgstream_rows_del')
              AND t.tgfoid = to_regproc(format('pgstream_changes.%I', 'capture_' || source))) = 3
       AND EXISTS (SELECT 1 FROM pg_trigger t
                   WHERE t.tgrelid = source AND t.tgname = 'pgstream_capture' AND t.tgtype = 32)
$$;

-- Removes the row capture of `source` (its triggers, if the source still exists).
CREATE FUNCTION pgstream._drop_row_capture(source oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
    trigger_name text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid = source) THEN
        FOREACH trigger_name IN ARRAY ARRAY['pgstream_rows_ins', 'pgstream_rows_upd', 'pgstream_rows_del'] LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trigger_name, source::regclass);
        END LOOP;
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS pgstream_changes.%I CASCADE', 'rows_' || source);
    EXECUTE format('DROP FUNCTION IF EXISTS pgstream_changes.%I()', 'capture_' || source);
    -- Without row capture the statement trigger records every change again.
    IF EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = source AND t.tgname = 'pgstream_capture') THEN
        PERFORM pgstream._install_statement_capture(source, truncate_only => false);
    END IF;
END
$$;

-- (Re)creates the row capture of `source`. Pending change rows are dropped: callers do this
-- only where every reader's next refresh is FULL anyway (a new reader, or after DDL).
CREATE FUNCTION pgstream._create_row_capture(source oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $create$
DECLARE
    buffer text := format('pgstream_changes.%I', 'rows_' || source);
    reader text := format('pgstream.%I', '_rows_' || source);
    capture text := format('pgstream_changes.%I', 'capture_' || source);
    columns text[] := (SELECT names FROM pgstream._captured_columns(source));
    listed text;
BEGIN
    IF columns IS NULL THEN  -- no DIFFERENTIAL reader names a column: keep them all
        columns := (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                    WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped);
    END IF;
    PERFORM pgstream._drop_row_capture(source);
    -- Rows buffered so far are gone: every DIFFERENTIAL reader recomputes once.
    UPDATE pgstream.pgs_stream_tables s SET consumed_snapshot = NULL
    WHERE s.effective_mode = 'DIFFERENTIAL'
      AND s.pgs_id IN (SELECT d.pgs_id FROM pgstream.pgs_dependencies d WHERE d.source_relid = source);
    SELECT string_agg('__pgs_alias__.' || quote_ident(c), ', ' ORDER BY o) INTO listed
    FROM unnest(columns) WITH ORDINALITY AS u(c, o);
    EXECUTE format('CREATE TABLE %s AS SELECT NULL::xid8 AS __pgs_xid, NULL::int8 AS __pgs_seq, '
                   'NULL::int2 AS __pgs_w, %s FROM %s s WITH NO DATA', buffer, replace(listed, '__pgs_alias__', 's'), source::regclass);
    EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', buffer);
    EXECUTE format('CREATE VIEW %s WITH (security_barrier) AS SELECT * FROM %s '
                   'WHERE pg_catalog.has_table_privilege(%s::pg_catalog.oid, ''SELECT'')',
                   reader, buffer, source);
    EXECUTE format('GRANT SELECT ON %s TO PUBLIC', reader);
    EXECUTE format($f$CREATE FUNCTION %s() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
        BEGIN
            -- The statement record too (the pgstream_capture trigger of a table with row
            -- capture fires on TRUNCATE only): one trigger per statement.
            INSERT INTO pgstream_changes.statements (source_relid, operation)
            VALUES (TG_RELID, TG_OP) ON CONFLICT (source_relid, xid) DO NOTHING;
            IF TG_OP <> 'INSERT' THEN
                INSERT INTO %s SELECT pg_current_xact_id(), nextval('pgstream_changes.row_seq'), -1, %s
                FROM __pgs_old o;
            END IF;
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO %s SELECT pg_current_xact_id(), nextval('pgstream_changes.row_seq'), 1, %s
                FROM __pgs_new n;
            END IF;
            RETURN NULL;
        END
        $body$$f$, capture, buffer, replace(listed, '__pgs_alias__', 'o'), buffer, replace(listed, '__pgs_alias__', 'n'));
    EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', capture);
    EXECUTE format('CREATE TRIGGER pgstream_rows_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS __pgs_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION %s()', source::regclass, capture);
    EXECUTE format('CREATE TRIGGER pgstream_rows_upd AFTER UPDATE ON %s '
                   'REFERENCING OLD TABLE AS __pgs_old NEW TABLE AS __pgs_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION %s()', source::regclass, capture);
    EXECUTE format('CREATE TRIGGER pgstream_rows_del AFTER DELETE ON %s REFERENCING OLD TABLE AS __pgs_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION %s()', source::regclass, capture);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pgstream_rows_ins, '
                   'ENABLE ALWAYS TRIGGER pgstream_rows_upd, ENABLE ALWAYS TRIGGER pgstream_rows_del',
                   source::regclass);
    PERFORM pgstream._install_statement_capture(source, truncate_only => true);
END
$create$;

-- Gives every capturable source of a DIFFERENTIAL stream table a current row capture, and
-- removes it from relations no DIFFERENTIAL stream table reads. DDL this runs is not a
-- change of anyone's sources (pgstream.syncing_capture tells _capture_ddl).
CREATE FUNCTION pgstream._sync_row_capture() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    source oid;
    state name;
BEGIN
    IF current_setting('pgstream.syncing_capture', true) = 'on' THEN
        RETURN;
    END IF;
    PERFORM set_config('pgstream.syncing_capture', 'on', true);
    FOR source IN
        SELECT DISTINCT d.source_relid
        FROM pgstream.pgs_dependencies d JOIN pgstream.pgs_stream_tables s USING (pgs_id)
        WHERE s.effective_mode = 'DIFFERENTIAL' AND d.source_kind <> 'view'
          AND pgstream._capture_blocker(d.source_relid) IS NULL
          AND NOT pgstream._row_capture_current(d.source_relid)
    LOOP
        PERFORM pgstream._create_row_capture(source);
    END LOOP;
    FOR source IN
        SELECT substr(c.relname, 6)::oid FROM pg_class c
        WHERE c.relnamespace = 'pgstream_changes'::regnamespace AND c.relkind = 'r'
          AND c.relname ~ '^rows_[0-9]+$'
          AND NOT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d
                          JOIN pgstream.pgs_stream_tables s USING (pgs_id)
                          WHERE d.source_relid = substr(c.relname, 6)::oid
                            AND s.effective_mode = 'DIFFERENTIAL'
                            AND pgstream._capture_blocker(d.source_relid) IS NULL)
    LOOP
        PERFORM pgstream._drop_row_capture(source);
    END LOOP;
    -- Aggregate state of stream tables gone or no longer DIFFERENTIAL.
    FOR state IN
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = 'pgstream_changes'::regnamespace AND c.relkind = 'r'
          AND c.relname ~ '^agg_[0-9]+$'
          AND NOT EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s
                          WHERE s.pgs_id = substr(c.relname, 5)::bigint
                            AND s.effective_mode IS DISTINCT FROM 'FULL')
    LOOP
        EXECUTE format('DROP TABLE pgstream_changes.%I', state);
    END LOOP;
    PERFORM set_config('pgstream.syncing_capture', '', true);
END
$$;

-- Deletes the change rows of `source` that every DIFFERENTIAL reader has consumed (none while
-- a reader has not refreshed yet).
CREATE FUNCTION pgstream._forget_consumed_rows(source oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass(format('pgstream_changes.%I', 'rows_' || source)) IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format(
        'DELETE FROM pgstream_changes.%I b WHERE NOT EXISTS ('
        '  SELECT 1 FROM pgstream.pgs_dependencies d JOIN pgstream.pgs_stream_tables s USING (pgs_id) '
        '  WHERE d.source_relid = $1 AND s.effective_mode = ''DIFFERENTIAL'' '
        '    AND (s.consumed_snapshot IS NULL '
        '         OR NOT (pg_visible_in_snapshot(b.__pgs_xid, s.consumed_snapshot) '
        '                 OR (b.__pgs_xid = s.consumed_own_xid AND b.__pgs_seq <= s.consumed_own_seq))))',
        'rows_' || source) USING source;
END
$$;

-- Whether every relation `stream_table` reads is captured: an ordinary table with the
-- statement trigger present and enabled ALWAYS (views count through their base tables).
CREATE FUNCTION pgstream._capture_complete(stream_table bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NOT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d
                       LEFT JOIN pg_trigger t ON t.tgrelid = d.source_relid AND t.tgname = 'pgstream_capture'
                                             AND t.tgfoid = 'pgstream._capture_statement()'::regprocedure
                       WHERE d.pgs_id = stream_table AND d.source_kind <> 'view'
                         AND (pgstream._capture_blocker(d.source_relid) IS NOT NULL
                              OR t.tgenabled IS DISTINCT FROM 'A'))
$$;
REVOKE ALL ON FUNCTION pgstream._capture_complete(bigint) FROM PUBLIC;

-- Whether nothing stream table `stream_table` reads changed outside snapshot `since` (no
-- change record, no DDL, every source captured): its refresh may be skipped.
CREATE FUNCTION pgstream._unchanged_since(stream_table bigint, since pg_snapshot) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NOT EXISTS (SELECT 1 FROM pgstream_changes.statements c
                       WHERE (c.source_relid = 0
                              OR c.source_relid IN (SELECT d.source_relid FROM pgstream.pgs_dependencies d
                                                    WHERE d.pgs_id = stream_table))
                         AND NOT pg_visible_in_snapshot(c.xid, since))
       -- A snapshot from the future (a restored cluster) proves nothing.
       AND pg_snapshot_xmax(since) <= pg_snapshot_xmax(pg_current_snapshot())
       AND pgstream._capture_complete(stream_table)
$$;

-- What a refresh of `stream_table` needs to know about its sources' changes since `since`
-- (NULL: never refreshed): DDL happened (its sources may be others now), every source has its
-- statement trigger, every table source has a current row capture that its owner `reader`
-- may read (change rows are shown only to roles with SELECT on the whole table), and which
-- sources changed.
CREATE FUNCTION pgstream._change_state(stream_table bigint, since pg_snapshot, reader oid,
    OUT ddl_pending boolean, OUT capture_complete boolean, OUT row_capture_complete boolean,
    OUT changed oid[])
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT since IS NULL OR EXISTS (SELECT 1 FROM pgstream_changes.statements c
                                    WHERE c.source_relid = 0 AND NOT pg_visible_in_snapshot(c.xid, since)),
           pgstream._capture_complete(stream_table),
           NOT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d
                       WHERE d.pgs_id = stream_table AND d.source_kind <> 'view'
                         AND (NOT pgstream._row_capture_current(d.source_relid)
                              OR NOT has_table_privilege(reader, d.source_relid, 'SELECT'))),
           CASE WHEN since IS NOT NULL THEN
               ARRAY(SELECT DISTINCT c.source_relid FROM pgstream_changes.statements c
                     JOIN pgstream.pgs_dependencies d ON d.source_relid = c.source_relid
                                                     AND d.pgs_id = stream_table
                     WHERE NOT pg_visible_in_snapshot(c.xid, since))
           END
$$;

-- After a refresh of `stream_table`: forgets the change records and rows of its sources that
-- every reader has covered, and the DDL records every stream table has covered. Nothing while
-- a stream table is being created or redefined elsewhere (it reads sources not visible here).
CREATE FUNCTION pgstream._forget_covered(stream_table bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(1885827939, 0) THEN  -- 0x70677363 'pgsc', held shared by creators
        RETURN;
    END IF;
    DELETE FROM pgstream_changes.statements c WHERE c.source_relid = 0
       AND NOT EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s
                       WHERE s.consumed_snapshot IS NULL
                          OR NOT pg_visible_in_snapshot(c.xid, s.consumed_snapshot));
    DELETE FROM pgstream_changes.statements c
    USING pgstream.pgs_dependencies mine
    WHERE mine.pgs_id = stream_table AND c.source_relid = mine.source_relid
      AND NOT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d
                      JOIN pgstream.pgs_stream_tables s ON s.pgs_id = d.pgs_id
                      WHERE d.source_relid = c.source_relid
                        AND (s.consumed_snapshot IS NULL
                             OR NOT pg_visible_in_snapshot(c.xid, s.consumed_snapshot)));
    PERFORM pgstream._forget_consumed_rows(d.source_relid) FROM pgstream.pgs_dependencies d
    WHERE d.pgs_id = stream_table AND d.source_kind <> 'view';
END
$$;
REVOKE ALL ON FUNCTION pgstream._forget_covered(bigint) FROM PUBLIC;

-- The position a refresh covers, read in the refreshing statement's snapshot: that snapshot
-- with this transaction counted as running (its later changes are not covered), this
-- transaction's id, and the last change sequence number handed out so far (its changes up to
-- there are covered).
CREATE FUNCTION pgstream._covered_position(OUT snapshot text, OUT own_xid xid8, OUT own_seq bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- (An xid at or past xmax is running already; raising xmax instead would make every
    -- transaction in between look committed.)
    SELECT CASE WHEN me IS NULL OR me >= pg_snapshot_xmax(snap) THEN snap::text
                ELSE format('%s:%s:%s',
                    LEAST(pg_snapshot_xmin(snap)::text::int8, me::text::int8),
                    pg_snapshot_xmax(snap),
                    (SELECT string_agg(x::text, ',' ORDER BY x) FROM
                         (SELECT x::text::int8 AS x FROM pg_snapshot_xip(snap) x
                          UNION SELECT me::text::int8) ids)) END,
           me,
           (SELECT last_value FROM pgstream_changes.row_seq)
    FROM (SELECT pg_current_snapshot() AS snap, pg_current_xact_id_if_assigned() AS me) s
$$;
REVOKE ALL ON FUNCTION pgstream._captured_columns(oid), pgstream._row_capture_current(oid),
    pgstream._drop_row_capture(oid),
    pgstream._create_row_capture(oid), pgstream._sync_row_capture(),
    pgstream._forget_consumed_rows(oid) FROM PUBLIC;

-- Drops the capture triggers: all of them, or only those on relations no stream table reads.
CREATE FUNCTION pgstream._drop_capture_triggers(only_unread boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    source regclass;
    state name;
BEGIN
    FOR source IN
        SELECT t.tgrelid::regclass FROM pg_trigger t
        WHERE t.tgname = 'pgstream_capture'
          AND t.tgfoid = 'pgstream._capture_statement()'::regprocedure
          AND NOT (only_unread AND EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d
                                           WHERE d.source_relid = t.tgrelid))
    LOOP
        EXECUTE format('DROP TRIGGER pgstream_capture ON %s', source);
    END LOOP;
    IF NOT only_unread THEN
        FOR state IN
            SELECT c.relname FROM pg_class c
            WHERE c.relnamespace = 'pgstream_changes'::regnamespace AND c.relkind = 'r'
              AND c.relname ~ '^agg_[0-9]+$'
        LOOP
            EXECUTE format('DROP TABLE pgstream_changes.%I', state);
        END LOOP;
        FOR source IN
            SELECT substr(c.relname, 6)::oid FROM pg_class c
            WHERE c.relnamespace = 'pgstream_changes'::regnamespace AND c.relkind = 'r'
              AND c.relname ~ '^rows_[0-9]+$'
        LOOP
            PERFORM pgstream._drop_row_capture(source::oid);
        END LOOP;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION pgstream._drop_capture_triggers(boolean) FROM PUBLIC;

-- Puts the capture trigger on every capturable relation a stream table reads, removes it
-- where none does, and forgets changes no stream table needs any more.
CREATE FUNCTION pgstream._sync_capture() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    source regclass;
BEGIN
    FOR source IN
        SELECT DISTINCT c.oid::regclass
        FROM pgstream.pgs_dependencies d JOIN pg_class c ON c.oid = d.source_relid
        WHERE d.source_kind <> 'view' AND pgstream._capture_blocker(c.oid) IS NULL
          AND NOT EXISTS (SELECT 1 FROM pg_trigger t
                          WHERE t.tgrelid = c.oid AND t.tgname = 'pgstream_capture')
    LOOP
        PERFORM pgstream._install_statement_capture(source, truncate_only => false);
    END LOOP;
    PERFORM pgstream._drop_capture_triggers(only_unread => true);
    DELETE FROM pgstream_changes.statements s
    WHERE s.source_relid <> 0
      AND NOT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d WHERE d.source_relid = s.source_relid);
    PERFORM pgstream._sync_row_capture();
END
$$;
REVOKE ALL ON FUNCTION pgstream._capture_statement(), pgstream._sync_capture() FROM PUBLIC;

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

-- DDL can change what a query returns without any row changing (ALTER TABLE, CREATE OR
-- REPLACE VIEW or FUNCTION, REVOKE, ...): any DDL outside temporary schemas is recorded as a
-- change of every source (source_relid 0), so the next refresh of every stream table recomputes.
CREATE FUNCTION pgstream._capture_ddl()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('pgstream.syncing_capture', true) = 'on' THEN
        RETURN;  -- the engine's own row-capture DDL
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
       OR (tg_tag NOT LIKE 'DROP %' AND NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands())) THEN
        INSERT INTO pgstream_changes.statements (source_relid, operation) VALUES (0, tg_tag)
        ON CONFLICT DO NOTHING;
    END IF;
    -- A table with row capture changed shape: its capture must match before the next row
    -- change (the rows captured so far are not needed: its readers recompute after DDL).
    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
               WHERE c.classid = 'pg_class'::regclass
                 AND to_regclass(format('pgstream_changes.%I', 'rows_' || c.objid)) IS NOT NULL) THEN
        PERFORM pgstream._sync_row_capture();
    END IF;
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
    PERFORM pgstream._drop_capture_triggers(only_unread => false);
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
BEGIN
    DELETE FROM pgstream.pgs_stream_tables
    WHERE pgs_relid IN (SELECT objid FROM pg_event_trigger_dropped_objects()
                        WHERE classid = 'pg_class'::regclass AND objsubid = 0);
    IF FOUND THEN
        PERFORM pgstream._sync_capture();
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
ALTER EVENT TRIGGER pgstream_catalog_on_sql_drop ENABLE ALWAYS;
CREATE EVENT TRIGGER pgstream_catalog_on_rename ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA')
    EXECUTE FUNCTION pgstream._catalog_on_rename();

-- Tell the scheduler launcher (when preloaded) that this database now has the extension.
SELECT pgstream.request_scheduler_rescan();
