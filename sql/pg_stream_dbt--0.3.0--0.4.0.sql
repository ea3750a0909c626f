-- pg_stream_dbt 0.3.0 -> 0.4.0 (ALTER EXTENSION pg_stream_dbt UPDATE): create_stream_table takes
-- partition_by (a stream table may be a partitioned table); add_partition and distribute_stream_table are new. Stream tables, catalog rows, capture
-- triggers and change buffers are kept as they are. Citus distributed and reference tables are
-- captured by row triggers on their shards, for DIFFERENTIAL readers. Change buffers shared by
-- DIFFERENTIAL readers get a BRIN index on __pgs_xid (a refresh reads its window, not a lagging
-- reader's backlog).

-- Whoever may execute the old create_stream_table may execute the new one (an administrator
-- may have revoked it from PUBLIC): its privileges are kept across the DROP and CREATE.
SELECT pg_catalog.set_config('pg_stream_dbt_upgrade.create_acl', COALESCE(p.proacl::text, ''), true)
FROM pg_catalog.pg_proc p
WHERE p.oid = 'pgstream.create_stream_table(text, text, text, text, bool)'::pg_catalog.regprocedure;
DROP FUNCTION pgstream.create_stream_table(text, text, text, text, bool);
CREATE FUNCTION pgstream."create_stream_table"(
	"name" TEXT,
	"query" TEXT,
	"schedule" TEXT DEFAULT '1m',
	"refresh_mode" TEXT DEFAULT 'DIFFERENTIAL',
	"initialize" bool DEFAULT true,
	"partition_by" TEXT DEFAULT NULL
) RETURNS void
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'create_stream_table_v4_wrapper';
DO $$
DECLARE
    acl text := current_setting('pg_stream_dbt_upgrade.create_acl', true);
    item record;
    fn constant text := 'pgstream.create_stream_table(text, text, text, text, bool, text)';
    initial aclitem[];
    had_initial boolean;
BEGIN
    IF acl IS NULL OR acl = '' THEN
        RETURN;  -- the default privileges, as the new function has
    END IF;
    -- GRANT and REVOKE in an extension script also become the object's initial privileges
    -- (pg_init_privs), which pg_dump leaves out: the administrator's privileges are put back as
    -- the administrator's, and the initial ones stay those of a fresh install.
    SELECT i.initprivs, true INTO initial, had_initial FROM pg_catalog.pg_init_privs i
    WHERE i.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass
      AND i.objoid = fn::pg_catalog.regprocedure AND i.objsubid = 0;
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    FOR item IN
        SELECT a.grantee, a.is_grantable FROM pg_catalog.aclexplode(acl::pg_catalog.aclitem[]) a
        WHERE a.privilege_type = 'EXECUTE'
          AND a.grantee <> (SELECT proowner FROM pg_catalog.pg_proc WHERE oid = fn::pg_catalog.regprocedure)
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', fn,
                       CASE WHEN item.grantee = 0 THEN 'PUBLIC'
                            ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(item.grantee)) END,
                       CASE WHEN item.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    IF had_initial THEN
        UPDATE pg_catalog.pg_init_privs SET initprivs = initial
        WHERE classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND objoid = fn::pg_catalog.regprocedure AND objsubid = 0;
    ELSE
        DELETE FROM pg_catalog.pg_init_privs
        WHERE classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND objoid = fn::pg_catalog.regprocedure AND objsubid = 0;
    END IF;
END
$$;

-- add_partition: a partition added to a RANGE or LIST partitioned stream table, with the rows it
-- takes moved out of the DEFAULT partition.
CREATE FUNCTION pgstream."add_partition"(
	"stream_table" TEXT,
	"partition" TEXT,
	"in_values" TEXT[] DEFAULT NULL,
	"from_values" TEXT[] DEFAULT NULL,
	"to_values" TEXT[] DEFAULT NULL
) RETURNS bigint
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'add_partition_wrapper';

-- distribute_stream_table: a keyed stream table made a Citus distributed or reference table.
CREATE FUNCTION pgstream."distribute_stream_table"(
	"name" TEXT,
	"distribution_column" TEXT DEFAULT NULL
) RETURNS void
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', 'distribute_stream_table_wrapper';

-- Citus distributed and reference tables are captured by row triggers on their shards.
-- What kind of Citus table `relation` is (NULL: none, or Citus is not installed). Writes to a
-- distributed or reference table run on its shards: triggers on the coordinator's table never
-- fire, so its changes are captured by row triggers on the shards (src/capture/citus.rs), for
-- DIFFERENTIAL readers only; a single-shard or Citus local table is not captured.
CREATE FUNCTION pgstream._citus_kind(relation oid) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind text;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT CASE WHEN partmethod = ''n'' AND repmodel = ''t'' THEN ''Citus reference table'' '
            '            WHEN partmethod = ''n'' THEN ''Citus single-shard or local table'' '
            '            WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node n '
            '                         WHERE n.isactive AND n.noderole = ''primary'' AND NOT n.hasmetadata) '
            '                THEN ''Citus distributed table, a worker without metadata'' '
            '            ELSE ''Citus distributed table'' END '
            'FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1'
        INTO kind USING relation;
    RETURN kind;
END
$$;

-- Why a relation's changes cannot be captured by statement triggers on it (NULL: they can).
-- Writes through an inheritance parent, logical replication apply (row triggers only), crash
-- recovery of unlogged tables, catalog updates and row-level security policies all change what a
-- query sees without firing them. A partitioned table is captured at every member of its tree
-- (writes through it and writes to a partition directly); a partition read by itself is not
-- (its triggers are its root's), nor a tree with a foreign or unlogged partition.
CREATE OR REPLACE FUNCTION pgstream._capture_blocker(relation oid) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
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
            WHEN c.relkind = 'p' AND pgstream._citus_kind(c.oid) IS NOT NULL THEN 'Citus partitioned table'
            WHEN pgstream._citus_kind(c.oid) NOT IN ('Citus distributed table', 'Citus reference table')
                THEN pgstream._citus_kind(c.oid)
            WHEN EXISTS (SELECT 1 FROM pg_subscription_rel r
                         WHERE r.srrelid = c.oid OR r.srrelid IN (SELECT pgstream._partition_members(c.oid)))
                THEN 'logical replication target'
        END
        FROM (SELECT relation AS wanted) w LEFT JOIN pg_class c ON c.oid = w.wanted);
END
$$;

-- The change window in one function (pgstream._covered); the functions that wrote it out
-- use it (a buffer row of a reader's own transaction is covered only when its position names
-- that transaction).
CREATE FUNCTION pgstream._covered(xid xid8, snapshot pg_snapshot, seq bigint DEFAULT NULL,
    own_xid xid8 DEFAULT NULL, own_seq bigint DEFAULT NULL) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.pg_visible_in_snapshot(xid, snapshot)
           OR COALESCE(xid OPERATOR(pg_catalog.=) own_xid
                       AND seq OPERATOR(pg_catalog.<=) own_seq, false)
$$;

CREATE OR REPLACE FUNCTION pgstream._forget_consumed_rows(source oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    horizon xid8;
BEGIN
    IF to_regclass(format('pgstream_changes.%I', 'rows_' || source)) IS NULL THEN
        RETURN;
    END IF;
    -- A row older than the xmin of every reader's covered snapshot is covered by all of them:
    -- those (nearly all, once the last reader has refreshed) go by their xid alone, and the
    -- reader-by-reader look that follows skips them as deleted.
    SELECT CASE WHEN bool_and(s.consumed_snapshot IS NOT NULL)
                THEN min(pg_snapshot_xmin(s.consumed_snapshot)) END
      INTO horizon
      FROM pgstream.pgs_dependencies d JOIN pgstream.pgs_stream_tables s USING (pgs_id)
     WHERE d.source_relid = source AND s.effective_mode = 'DIFFERENTIAL';
    IF horizon IS NOT NULL THEN
        EXECUTE format('DELETE FROM pgstream_changes.%I b WHERE b.__pgs_xid < $1', 'rows_' || source)
            USING horizon;
    END IF;
    EXECUTE format(
        'DELETE FROM pgstream_changes.%I b WHERE NOT EXISTS ('
        '  SELECT 1 FROM pgstream.pgs_dependencies d JOIN pgstream.pgs_stream_tables s USING (pgs_id) '
        '  WHERE d.source_relid = $1 AND s.effective_mode = ''DIFFERENTIAL'' '
        '    AND (s.consumed_snapshot IS NULL '
        '         OR NOT pgstream._covered(b.__pgs_xid, s.consumed_snapshot, b.__pgs_seq, '
        '                                  s.consumed_own_xid, s.consumed_own_seq)))',
        'rows_' || source) USING source;
END
$$;

DROP FUNCTION pgstream._unchanged_since(bigint, pg_snapshot);
CREATE FUNCTION pgstream._unchanged_since(stream_table bigint, since pg_snapshot,
    verify boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
BEGIN
    RETURN (
        SELECT NOT EXISTS (SELECT 1 FROM (SELECT 0::oid AS source_relid
                                          UNION ALL SELECT d.source_relid FROM pgstream.pgs_dependencies d
                                                    WHERE d.pgs_id = stream_table) s
                           JOIN pgstream_changes.statements c ON c.source_relid = s.source_relid
                                                              AND c.xid >= pg_snapshot_xmin(since)
                           WHERE NOT pgstream._covered(c.xid, since))
           -- A snapshot from the future (a restored cluster) proves nothing.
           AND pg_snapshot_xmax(since) <= pg_snapshot_xmax(pg_current_snapshot())
           AND (NOT verify OR pgstream._capture_complete(stream_table)));
END
$$;

DROP FUNCTION pgstream._change_state(bigint, pg_snapshot, oid);
CREATE FUNCTION pgstream._change_state(stream_table bigint, since pg_snapshot, reader oid,
    verify boolean DEFAULT true,
    OUT ddl_pending boolean, OUT capture_complete boolean, OUT row_capture_complete boolean,
    OUT truncated boolean, OUT changed oid[])
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
BEGIN
        SELECT since IS NULL OR EXISTS (SELECT 1 FROM pgstream_changes.statements c
                                        WHERE c.source_relid = 0 AND c.xid >= pg_snapshot_xmin(since) AND NOT pgstream._covered(c.xid, since)),
               NOT verify OR pgstream._capture_complete(stream_table),
               NOT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d
                           WHERE d.pgs_id = stream_table AND d.source_kind <> 'view'
                             AND ((verify AND NOT pgstream._row_capture_current(d.source_relid))
                                  OR NOT has_table_privilege(reader, d.source_relid, 'SELECT'))),
               since IS NOT NULL AND EXISTS (SELECT 1 FROM pgstream_changes.statements c
                         JOIN pgstream.pgs_dependencies d ON d.source_relid = c.source_relid
                                                         AND d.pgs_id = stream_table
                         WHERE c.operation = 'TRUNCATE' AND c.xid >= pg_snapshot_xmin(since) AND NOT pgstream._covered(c.xid, since)),
               CASE WHEN since IS NOT NULL THEN
                   ARRAY(SELECT DISTINCT c.source_relid FROM pgstream_changes.statements c
                         JOIN pgstream.pgs_dependencies d ON d.source_relid = c.source_relid
                                                         AND d.pgs_id = stream_table
                         WHERE c.xid >= pg_snapshot_xmin(since) AND NOT pgstream._covered(c.xid, since))
               END
    INTO ddl_pending, capture_complete, row_capture_complete, truncated, changed;
END
$$;

-- After a refresh of `stream_table`: forgets the change records and rows of its sources in
-- `sources` that every reader has covered, and the DDL records every stream table has covered.
-- Nothing while a stream table is being created or redefined elsewhere (it reads sources not
-- visible here). The engine names the sources whose cleanup can free something: not those
-- another DIFFERENTIAL reader lags behind on, whose records and rows it would read in vain.
CREATE FUNCTION pgstream._forget_covered(stream_table bigint, sources oid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(1885827939, 0) THEN  -- 0x70677363 'pgsc', held shared by creators
        RETURN;
    END IF;
    DELETE FROM pgstream_changes.statements c WHERE c.source_relid = 0
       AND NOT EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s
                       WHERE s.consumed_snapshot IS NULL
                          OR NOT pgstream._covered(c.xid, s.consumed_snapshot));
    DELETE FROM pgstream_changes.statements c
    USING pgstream.pgs_dependencies mine
    WHERE mine.pgs_id = stream_table AND mine.source_relid = ANY (sources)
      AND c.source_relid = mine.source_relid
      AND NOT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d
                      JOIN pgstream.pgs_stream_tables s ON s.pgs_id = d.pgs_id
                      WHERE d.source_relid = c.source_relid
                        AND (s.consumed_snapshot IS NULL
                             OR NOT pgstream._covered(c.xid, s.consumed_snapshot)));
    PERFORM pgstream._forget_consumed_rows(d.source_relid) FROM pgstream.pgs_dependencies d
    WHERE d.pgs_id = stream_table AND d.source_kind <> 'view' AND d.source_relid = ANY (sources);
END
$$;

-- The same for every source of `stream_table` (what the engine before 0.4.0 calls).
CREATE OR REPLACE FUNCTION pgstream._forget_covered(stream_table bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgstream._forget_covered(stream_table, ARRAY(SELECT d.source_relid FROM pgstream.pgs_dependencies d
                                                         WHERE d.pgs_id = stream_table));
END
$$;
REVOKE ALL ON FUNCTION pgstream._forget_covered(bigint, oid[]) FROM PUBLIC;

-- The functions a refresh and the capture set-up call are plpgsql: their queries' plans are
-- kept per session instead of made on every call (a skipped refresh cost about 1 ms in them).
CREATE OR REPLACE FUNCTION pgstream._partition_members(source oid) RETURNS SETOF oid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = source AND c.relkind = 'p') THEN
        RETURN;  -- not partitioned: no members (and no call of the queries below)
    END IF;
    RETURN QUERY
        WITH RECURSIVE tree(relid) AS (
            SELECT i.inhrelid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent
            WHERE i.inhparent = source AND c.relkind = 'p'
          UNION
            SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid
        )
        SELECT relid FROM tree;
END
$$;

CREATE OR REPLACE FUNCTION pgstream._capture_sources_of(relation oid) RETURNS SETOF oid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
        SELECT t.tgrelid FROM pg_trigger t WHERE t.tgrelid = relation AND t.tgname = 'pgstream_capture'
        UNION
        SELECT n::oid FROM (
            SELECT substring(t.tgname FROM '^pgstream_part_([0-9]{1,10})$')::int8 AS n FROM pg_trigger t
            WHERE t.tgrelid = relation AND t.tgname ~ '^pgstream_part_[0-9]{1,10}$'
              AND t.tgfoid = 'pgstream._capture_statement()'::regprocedure) named
        WHERE n <= 4294967295;
END
$$;

CREATE OR REPLACE FUNCTION pgstream._members_incomplete(source oid, wanted boolean, differential boolean)
RETURNS oid[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = source AND c.relkind = 'p') THEN
        RETURN '{}';  -- not partitioned: no members (and no call of the queries below)
    END IF;
    RETURN (
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
                  <> CASE WHEN differential THEN 4 ELSE 1 END));
END
$$;

CREATE OR REPLACE FUNCTION pgstream._member_triggers_extra(source oid, wanted boolean, differential boolean)
RETURNS oid[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT ARRAY(
            SELECT DISTINCT t.tgrelid FROM pg_trigger t
            WHERE t.tgname IN ('pgstream_part_' || source, 'pgstream_part_' || source || '_ins',
                               'pgstream_part_' || source || '_upd', 'pgstream_part_' || source || '_del')
              AND (NOT wanted
                   OR t.tgrelid NOT IN (SELECT pgstream._partition_members(source))
                   OR (NOT differential AND t.tgname <> 'pgstream_part_' || source))));
END
$$;

CREATE OR REPLACE FUNCTION pgstream._detach_pending(source oid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = source AND c.relkind = 'p') THEN
        RETURN false;  -- not partitioned: no members (and no call of the queries below)
    END IF;
    RETURN (
        SELECT EXISTS (SELECT 1 FROM pg_inherits i
                       WHERE i.inhdetachpending
                         AND (i.inhparent = source OR i.inhparent IN (SELECT pgstream._partition_members(source)))));
END
$$;

CREATE OR REPLACE FUNCTION pgstream._needed_columns(source oid)
RETURNS TABLE (name text, attnum int2, type_oid oid, typmod int4, type_sql text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
        SELECT a.attname::text, a.attnum, a.atttypid, a.atttypmod,
               format_type(a.atttypid, a.atttypmod)
                 || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                         THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END
        FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped
          AND (EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d JOIN pgstream.pgs_stream_tables s USING (pgs_id)
                       WHERE d.source_relid = source AND s.effective_mode = 'DIFFERENTIAL'
                         AND d.used_columns IS NULL)
               OR a.attname::text IN (SELECT unnest(d.used_columns) FROM pgstream.pgs_dependencies d
                                      JOIN pgstream.pgs_stream_tables s USING (pgs_id)
                                      WHERE d.source_relid = source AND s.effective_mode = 'DIFFERENTIAL'));
END
$$;

CREATE OR REPLACE FUNCTION pgstream._capture_state(source oid,
    OUT present boolean, OUT capturable boolean, OUT read boolean, OUT differential boolean,
    OUT statement_trigger int4, OUT row_triggers int8, OUT has_buffer boolean,
    OUT missing text[], OUT retyped boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
        WITH buffer AS (SELECT to_regclass(format('pgstream_changes.%I', 'rows_' || source)) AS oid),
             kept AS (SELECT b.attname::text AS name, b.atttypid, b.atttypmod FROM pg_attribute b, buffer
                      WHERE b.attrelid = buffer.oid AND b.attnum > 3 AND NOT b.attisdropped),
             needed AS (SELECT * FROM pgstream._needed_columns(source))
        SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = source),
               pgstream._capture_blocker(source) IS NULL,
               EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d
                       WHERE d.source_relid = source AND d.source_kind <> 'view'),
               EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d JOIN pgstream.pgs_stream_tables s USING (pgs_id)
                       WHERE d.source_relid = source AND d.source_kind <> 'view'
                         AND s.effective_mode = 'DIFFERENTIAL'),
               (SELECT t.tgtype::int4 FROM pg_trigger t
                WHERE t.tgrelid = source AND t.tgname = 'pgstream_capture' AND t.tgenabled = 'A'
                  AND t.tgfoid = 'pgstream._capture_statement()'::regprocedure),
               (SELECT count(*) FROM pg_trigger t
                WHERE t.tgrelid = source AND t.tgenabled = 'A'
                  AND t.tgname IN ('pgstream_rows_ins', 'pgstream_rows_upd', 'pgstream_rows_del')
                  AND t.tgfoid = 'pgstream._capture_rows()'::regprocedure),
               (SELECT oid IS NOT NULL FROM buffer),
               (SELECT array_agg(quote_ident(n.name) || ' ' || n.type_sql ORDER BY n.attnum) FROM needed n
                WHERE NOT EXISTS (SELECT 1 FROM kept k WHERE k.name = n.name)),
               EXISTS (SELECT 1 FROM needed n JOIN kept k ON k.name = n.name
                       WHERE (k.atttypid, k.atttypmod) IS DISTINCT FROM (n.type_oid, n.typmod))
    INTO present, capturable, read, differential, statement_trigger, row_triggers, has_buffer, missing, retyped;
END
$$;

CREATE OR REPLACE FUNCTION pgstream._buffer_keeps(source oid, col name) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT to_regclass(format('pgstream_changes.%I', 'rows_' || source)) IS NULL
            OR EXISTS (SELECT 1 FROM pg_attribute b
                       WHERE b.attrelid = to_regclass(format('pgstream_changes.%I', 'rows_' || source))
                         AND b.attname = col AND b.attnum > 3 AND NOT b.attisdropped));
END
$$;

CREATE OR REPLACE FUNCTION pgstream._row_capture_current(source oid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT s.has_buffer AND s.missing IS NULL AND NOT s.retyped AND s.row_triggers = 3
           AND s.statement_trigger IS NOT NULL
           AND to_regclass(format('pgstream.%I', '_rows_' || source)) IS NOT NULL
           AND (to_regclass('pg_catalog.pg_dist_partition') IS NULL
                OR to_regclass(format('pgstream_changes.%I', 'shard_rows_' || source)) IS NOT NULL
                OR pgstream._citus_kind(source) IS DISTINCT FROM 'Citus distributed table')
           AND cardinality(pgstream._members_incomplete(source, true, true)) = 0
           AND NOT pgstream._detach_pending(source)
        FROM pgstream._capture_state(source) s);
END
$$;

CREATE OR REPLACE FUNCTION pgstream._statements_captured(source oid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT pgstream._capture_blocker(source) IS NULL
           AND EXISTS (SELECT 1 FROM pg_trigger t
                       WHERE t.tgrelid = source AND t.tgname = 'pgstream_capture' AND t.tgenabled = 'A'
                         AND t.tgfoid = 'pgstream._capture_statement()'::regprocedure
                         AND ((t.tgtype = 60 AND (to_regclass('pg_catalog.pg_dist_partition') IS NULL
                                                  OR pgstream._citus_kind(source) IS NULL))
                              OR (t.tgtype = 32
                                  AND (SELECT count(*) FROM pg_trigger r
                                       WHERE r.tgrelid = source AND r.tgenabled = 'A'
                                         AND r.tgname IN ('pgstream_rows_ins', 'pgstream_rows_upd', 'pgstream_rows_del')
                                         AND r.tgfoid = 'pgstream._capture_rows()'::regprocedure) = 3
                                  AND (to_regclass('pg_catalog.pg_dist_partition') IS NULL
                                       OR to_regclass(format('pgstream_changes.%I', 'shard_rows_' || source)) IS NOT NULL
                                       OR pgstream._citus_kind(source) IS DISTINCT FROM 'Citus distributed table'))))
           AND cardinality(pgstream._members_incomplete(source, true, EXISTS (
                   SELECT 1 FROM pg_trigger t WHERE t.tgrelid = source AND t.tgname = 'pgstream_capture'
                     AND t.tgtype = 32))) = 0
           AND NOT pgstream._detach_pending(source));
END
$$;

CREATE OR REPLACE FUNCTION pgstream._capture_complete(stream_table bigint) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT NOT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d
                           WHERE d.pgs_id = stream_table AND d.source_kind <> 'view'
                             AND NOT pgstream._statements_captured(d.source_relid)));
END
$$;

CREATE OR REPLACE FUNCTION pgstream._covered_position(OUT snapshot text, OUT own_xid xid8, OUT own_seq bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
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
               -- (Before the first nextval, last_value is the start value, not yet handed out.)
               (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM pgstream_changes.row_seq)
        FROM (SELECT pg_current_snapshot() AS snap, pg_current_xact_id_if_assigned() AS me) s
    INTO snapshot, own_xid, own_seq;
END
$$;

-- Change buffers are indexed by BRIN on __pgs_xid: a refresh reads the changes from the xmin of
-- the snapshot it last covered on (delta::ir::CHANGE_WINDOW), not every row a lagging reader of
-- the same source still holds. PostgreSQL has no BRIN operator class for xid8.
CREATE OPERATOR CLASS pgstream.xid8_minmax_ops FOR TYPE xid8 USING brin AS
    OPERATOR 1 pg_catalog.< (xid8, xid8),
    OPERATOR 2 pg_catalog.<= (xid8, xid8),
    OPERATOR 3 pg_catalog.= (xid8, xid8),
    OPERATOR 4 pg_catalog.>= (xid8, xid8),
    OPERATOR 5 pg_catalog.> (xid8, xid8),
    FUNCTION 1 pg_catalog.brin_minmax_opcinfo(internal),
    FUNCTION 2 pg_catalog.brin_minmax_add_value(internal, internal, internal, internal),
    FUNCTION 3 pg_catalog.brin_minmax_consistent(internal, internal, internal),
    FUNCTION 4 pg_catalog.brin_minmax_union(internal, internal, internal);
DO $$
DECLARE buffer regclass;
BEGIN
    -- (Those two or more DIFFERENTIAL stream tables read, as src/capture/setup.rs does.)
    FOR buffer IN SELECT c.oid FROM pg_catalog.pg_class c
                  WHERE c.relnamespace = 'pgstream_changes'::regnamespace AND c.relkind = 'r'
                    AND c.relname ~ '^rows_[0-9]+$'
                    AND (SELECT count(*) FROM pgstream.pgs_dependencies d
                         JOIN pgstream.pgs_stream_tables s ON s.pgs_id = d.pgs_id
                         WHERE d.source_relid = substr(c.relname, 6)::oid
                           AND s.effective_mode = 'DIFFERENTIAL') >= 2
    LOOP
        EXECUTE format('CREATE INDEX %I ON %s USING brin (__pgs_xid pgstream.xid8_minmax_ops) '
                       'WITH (pages_per_range = 16, autosummarize = on)',
                       (SELECT relname FROM pg_catalog.pg_class WHERE oid = buffer) || '_xid', buffer);
    END LOOP;
END
$$;

-- A dropped capture trigger counts as a truncation of its source (every reader recomputes).
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

-- Two sessions adopting a restored catalog at once: the one that waited finds nothing left
-- to adopt (it used to rebuild capture a second time, dropping what the first had filled).
CREATE OR REPLACE FUNCTION pgstream._adopt_restored_rows() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    here uuid := pgstream._installation();
    gone text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s WHERE s.installation <> here) THEN
        RETURN false;
    END IF;
    LOCK TABLE pgstream.pgs_stream_tables, pgstream.pgs_dependencies IN SHARE ROW EXCLUSIVE MODE;
    -- Asked again under the lock: a session that waited for another's adoption finds nothing
    -- left to adopt, and must not rebuild capture again (that would drop the buffers and state
    -- the first adoption's refreshes have filled since).
    IF NOT EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s WHERE s.installation <> here) THEN
        RETURN false;
    END IF;
    SET CONSTRAINTS pgstream.pgs_stream_tables_pgs_relid_key, pgstream.pgs_dependencies_pkey DEFERRED;
    FOR gone IN
        DELETE FROM pgstream.pgs_stream_tables s
        WHERE s.installation <> here AND to_regclass(format('%I.%I', s.pgs_schema, s.pgs_name)) IS NULL
        RETURNING format('%I.%I', s.pgs_schema, s.pgs_name)
    LOOP
        RAISE WARNING 'pg_stream_dbt: stream table % of a restored catalog has no table in this database; its catalog entry is removed', gone;
    END LOOP;
    DELETE FROM pgstream.pgs_dependencies d USING pgstream.pgs_stream_tables s
    WHERE s.pgs_id = d.pgs_id AND s.installation <> here
      AND to_regclass(format('%I.%I', d.source_schema, d.source_name)) IS NULL;
    UPDATE pgstream.pgs_dependencies d
    SET source_relid = to_regclass(format('%I.%I', d.source_schema, d.source_name))
    FROM pgstream.pgs_stream_tables s
    WHERE s.pgs_id = d.pgs_id AND s.installation <> here;
    UPDATE pgstream.pgs_stream_tables s
    SET pgs_relid = to_regclass(format('%I.%I', s.pgs_schema, s.pgs_name)),
        consumed_snapshot = NULL, consumed_own_xid = NULL, consumed_own_seq = NULL,
        installation = here
    WHERE s.installation <> here;
    SET CONSTRAINTS pgstream.pgs_stream_tables_pgs_relid_key, pgstream.pgs_dependencies_pkey IMMEDIATE;
    RAISE LOG 'pg_stream_dbt: adopted the stream tables of a restored catalog; each is recomputed at its next refresh';
    RETURN true;
END
$$;
