-- pg_stream_dbt 0.3.0 -> 0.4.0 (ALTER EXTENSION pg_stream_dbt UPDATE): create_stream_table takes
-- partition_by (a stream table may be a partitioned table); add_partition is new. Stream tables, catalog rows, capture
-- triggers and change buffers are kept as they are. Citus tables count as sources whose changes
-- cannot be captured (the capture triggers on a coordinator never fire for writes to shards).

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

-- Citus tables cannot be captured on the coordinator: their readers are FULL, never skipped.
-- What kind of Citus table `relation` is (NULL: none, or Citus is not installed). Writes to a
-- distributed or reference table run on the workers' shards: triggers on the coordinator's
-- table never fire, so its changes cannot be captured there.
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
        WHEN pgstream._citus_kind(c.oid) IS NOT NULL THEN pgstream._citus_kind(c.oid)
        WHEN EXISTS (SELECT 1 FROM pg_subscription_rel r
                     WHERE r.srrelid = c.oid OR r.srrelid IN (SELECT pgstream._partition_members(c.oid)))
            THEN 'logical replication target'
    END
    FROM (SELECT relation AS wanted) w LEFT JOIN pg_class c ON c.oid = w.wanted
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
        '         OR NOT pgstream._covered(b.__pgs_xid, s.consumed_snapshot, b.__pgs_seq, '
        '                                  s.consumed_own_xid, s.consumed_own_seq)))',
        'rows_' || source) USING source;
END
$$;

CREATE OR REPLACE FUNCTION pgstream._unchanged_since(stream_table bigint, since pg_snapshot) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NOT EXISTS (SELECT 1 FROM pgstream_changes.statements c
                       WHERE (c.source_relid = 0
                              OR c.source_relid IN (SELECT d.source_relid FROM pgstream.pgs_dependencies d
                                                    WHERE d.pgs_id = stream_table))
                         AND NOT pgstream._covered(c.xid, since))
       -- A snapshot from the future (a restored cluster) proves nothing.
       AND pg_snapshot_xmax(since) <= pg_snapshot_xmax(pg_current_snapshot())
       AND pgstream._capture_complete(stream_table)
$$;

CREATE OR REPLACE FUNCTION pgstream._change_state(stream_table bigint, since pg_snapshot, reader oid,
    OUT ddl_pending boolean, OUT capture_complete boolean, OUT row_capture_complete boolean,
    OUT truncated boolean, OUT changed oid[])
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT since IS NULL OR EXISTS (SELECT 1 FROM pgstream_changes.statements c
                                    WHERE c.source_relid = 0 AND NOT pgstream._covered(c.xid, since)),
           pgstream._capture_complete(stream_table),
           NOT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d
                       WHERE d.pgs_id = stream_table AND d.source_kind <> 'view'
                         AND (NOT pgstream._row_capture_current(d.source_relid)
                              OR NOT has_table_privilege(reader, d.source_relid, 'SELECT'))),
           since IS NOT NULL AND EXISTS (SELECT 1 FROM pgstream_changes.statements c
                     JOIN pgstream.pgs_dependencies d ON d.source_relid = c.source_relid
                                                     AND d.pgs_id = stream_table
                     WHERE c.operation = 'TRUNCATE' AND NOT pgstream._covered(c.xid, since)),
           CASE WHEN since IS NOT NULL THEN
               ARRAY(SELECT DISTINCT c.source_relid FROM pgstream_changes.statements c
                     JOIN pgstream.pgs_dependencies d ON d.source_relid = c.source_relid
                                                     AND d.pgs_id = stream_table
                     WHERE NOT pgstream._covered(c.xid, since))
           END
$$;

CREATE OR REPLACE FUNCTION pgstream._forget_covered(stream_table bigint) RETURNS void
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
                          OR NOT pgstream._covered(c.xid, s.consumed_snapshot));
    DELETE FROM pgstream_changes.statements c
    USING pgstream.pgs_dependencies mine
    WHERE mine.pgs_id = stream_table AND c.source_relid = mine.source_relid
      AND NOT EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d
                      JOIN pgstream.pgs_stream_tables s ON s.pgs_id = d.pgs_id
                      WHERE d.source_relid = c.source_relid
                        AND (s.consumed_snapshot IS NULL
                             OR NOT pgstream._covered(c.xid, s.consumed_snapshot)));
    PERFORM pgstream._forget_consumed_rows(d.source_relid) FROM pgstream.pgs_dependencies d
    WHERE d.pgs_id = stream_table AND d.source_kind <> 'view';
END
$$;
