-- pg_stream_dbt change capture: the trigger functions that record what changed in the relations
-- stream tables read, and the SQL the engine asks about those changes. The capture objects of
-- each source (triggers, change buffer, reading view) are made by src/capture/setup.rs.
--
-- A statement trigger pgstream_capture on every ordinary table a stream table reads records that
-- it changed (one row per source and transaction in pgstream_changes.statements); a refresh
-- whose sources show no change since the snapshot it last covered is skipped. A source read by a
-- DIFFERENTIAL stream table also gets a change buffer pgstream_changes.rows_<oid> (__pgs_xid,
-- __pgs_seq, __pgs_w +1/-1, the columns its readers read), filled by the statement triggers
-- pgstream_rows_ins/upd/del (pgstream._capture_rows(), in Rust) from their transition tables, and
-- a view pgstream._rows_<oid> showing the buffer only to roles that may read the source. Every
-- trigger is ENABLE ALWAYS: it fires under session_replication_role = replica too (logical
-- replication apply, restores), so no change goes unseen. (pg_dump takes buffers and views along;
-- a restored database drops them and builds its own: pgstream._adopt_restored_rows.)

-- The change window, in one place for the SQL here (the delta SQL the engine generates writes
-- the same predicate: delta::ir::CHANGE_WINDOW, held to this by a test): whether the change
-- made by transaction `xid` is covered by a refresh's position — committed and visible in the
-- snapshot it covered, or its own transaction's (`own_xid`) up to the change sequence number it
-- reached (`own_seq`). Statement records have no sequence number: (xid, snapshot) only.
-- Inlined by the planner (SQL, immutable, no SET clause), so every name is schema-qualified;
-- executable by anyone (it reads nothing).
CREATE FUNCTION pgstream._covered(xid xid8, snapshot pg_snapshot, seq bigint DEFAULT NULL,
    own_xid xid8 DEFAULT NULL, own_seq bigint DEFAULT NULL) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.pg_visible_in_snapshot(xid, snapshot)
           OR COALESCE(xid OPERATOR(pg_catalog.=) own_xid
                       AND seq OPERATOR(pg_catalog.<=) own_seq, false)
$$;

-- One record per source and transaction is enough (a refresh only asks whether a source
-- changed, and whether it was truncated): the unique index on (source_relid, xid) keeps it to one.
-- On a partition of a captured partitioned table the trigger's argument names that table (the
-- source): a statement fires the triggers of the table it names only, so every member of the
-- partition tree has its own, recording for the source; a table detached since records nothing.
CREATE FUNCTION pgstream._capture_statement() RETURNS trigger
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

-- The row-capture trigger (src/capture/trigger.rs): records the statement and appends its
-- transition rows to the source's buffer. Its SQL names every object with its schema.
CREATE FUNCTION pgstream._capture_rows() RETURNS trigger
LANGUAGE c SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pgstream_capture_rows';
REVOKE ALL ON FUNCTION pgstream._capture_statement(), pgstream._capture_rows() FROM PUBLIC;

-- The members of the partition tree of `source` (none for a table that is not partitioned),
-- detached-pending ones included. Read from pg_inherits, not pg_partition_tree(), which locks
-- every partition without the partitioned table first: a refresh asking would take locks in
-- the order opposite to DETACH PARTITION's and deadlock with it.
CREATE FUNCTION pgstream._partition_members(source oid) RETURNS SETOF oid
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

-- What kind of Citus table `relation` is (NULL: none, or Citus is not installed). Writes to a
-- distributed or reference table run on its shards: triggers on the coordinator's table never
-- fire, so its changes are captured by row triggers on the shards (src/capture/citus.rs), for
-- DIFFERENTIAL readers only; a single-shard or Citus local table is not captured, nor a
-- partitioned one, nor a distributed one while a worker has no Citus metadata (the shards'
-- triggers find their buffer's shard in it).
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
CREATE FUNCTION pgstream._capture_blocker(relation oid) RETURNS text
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

-- The sources whose changes writes to `relation` are: itself when captured, and the partitioned
-- sources whose trees it is a member of (named by its pgstream_part_<source> trigger, which
-- only the engine can make: it calls a function PUBLIC may not execute).
CREATE FUNCTION pgstream._capture_sources_of(relation oid) RETURNS SETOF oid
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

-- The members of partitioned `source` whose capture triggers are not what its readers need
-- (`wanted`: the source is read and capturable; `differential`: with row capture): the
-- statement trigger pgstream_part_<source> on every change or, beside row capture, on TRUNCATE,
-- and pgstream_part_<source>_ins / _upd / _del, enabled ALWAYS, with the source as argument.
-- (Looked up by the members' oids: a refresh asks this of every source.)
CREATE FUNCTION pgstream._members_incomplete(source oid, wanted boolean, differential boolean)
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

-- The relations with member triggers of `source` that should not have them: tables detached
-- since, row triggers no reader needs (not `differential`), all of them when not `wanted`.
CREATE FUNCTION pgstream._member_triggers_extra(source oid, wanted boolean, differential boolean)
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

-- Whether a partition of `source`'s tree is being detached concurrently: its rows left the
-- view of new transactions before the DDL's event trigger records them (at the end of the
-- second transaction). Its readers recompute until then.
CREATE FUNCTION pgstream._detach_pending(source oid) RETURNS boolean
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

-- The columns of `source` its change buffer must keep, in table order: those its DIFFERENTIAL
-- readers read (all when one reads the whole row), with their types.
CREATE FUNCTION pgstream._needed_columns(source oid)
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

-- What the capture of `source` looks like and what its readers need: whether it exists and can
-- be captured, whether a stream table reads it (DIFFERENTIAL), its statement trigger's type
-- (NULL: missing or not ENABLE ALWAYS), its row triggers, its buffer, the needed columns the
-- buffer lacks (`name type`), and whether the buffer keeps a needed column with another type.
CREATE FUNCTION pgstream._capture_state(source oid,
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

-- Whether the change buffer of `source` keeps column `col` (true when it has no buffer: then
-- nothing reads its change rows).
CREATE FUNCTION pgstream._buffer_keeps(source oid, col name) RETURNS boolean
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

-- The buffer of `source` and its reading view exist, the buffer keeps every needed column with
-- its type, and all the triggers are in place (and, for a Citus distributed table, its shard
-- buffer).
CREATE FUNCTION pgstream._row_capture_current(source oid) RETURNS boolean
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

-- Deletes the change rows of `source` that every DIFFERENTIAL reader has consumed (none while
-- a reader has not refreshed yet). JIT is off here and in _forget_covered: the per-row check's
-- estimate makes a large DELETE look worth compiling, which took longer than the delete.
CREATE FUNCTION pgstream._forget_consumed_rows(source oid) RETURNS void
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

-- Whether every change of `source` is recorded: a table whose statement trigger is enabled
-- ALWAYS and fires on every change (never for a Citus table: it would not fire), or on TRUNCATE
-- only beside the three row-capture triggers (which record the other statements; a Citus
-- distributed table's only while its shard buffer is there); and, partitioned, every member of
-- its tree likewise.
CREATE FUNCTION pgstream._statements_captured(source oid) RETURNS boolean
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

-- Whether every relation `stream_table` reads is captured (views count through their base tables).
CREATE FUNCTION pgstream._capture_complete(stream_table bigint) RETURNS boolean
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

-- Whether nothing stream table `stream_table` reads changed outside snapshot `since` (no
-- change record, no DDL, every source captured): its refresh may be skipped. With `verify`
-- false the capture objects are not looked at again: the engine passes it when this session
-- verified them since `since` and no invalidation of them has arrived since. (Here and in
-- _change_state, `xid >= xmin` is what the index on (source_relid, xid) finds: an older record
-- is covered. Records pile up while another reader of a source lags behind: the lookup is one
-- index range per source, and sequential scans are off because the plans kept per session are
-- generic, made without knowing how far back xmin lies. With them off, a scan with no index to use
-- costs enough to be compiled by JIT, which would take tens of milliseconds: JIT is off too.)
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

-- What a refresh of `stream_table` needs to know about its sources' changes since `since`
-- (NULL: never refreshed), read in the refresh's snapshot: DDL happened (its sources may be
-- others now), every source has its statement trigger, every table source has a current row
-- capture that its owner `reader` may read (change rows are shown only to roles with SELECT on
-- the whole table), a source was truncated, and which sources changed. With `verify` false the
-- capture objects are taken as verified (see _unchanged_since); the privilege still is not.
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
CREATE FUNCTION pgstream._forget_covered(stream_table bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgstream._forget_covered(stream_table, ARRAY(SELECT d.source_relid FROM pgstream.pgs_dependencies d
                                                         WHERE d.pgs_id = stream_table));
END
$$;

-- The position a refresh covers, read in the refreshing statement's snapshot: that snapshot
-- with this transaction counted as running (its later changes are not covered), this
-- transaction's id, and the last change sequence number handed out so far (its changes up to
-- there are covered).
CREATE FUNCTION pgstream._covered_position(OUT snapshot text, OUT own_xid xid8, OUT own_seq bigint)
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

-- Internal: executed by the engine as the extension owner; nobody else may call them. (The
-- STABLE readers above stay callable: a refresh runs as the stream table's owner, whoever that
-- is. They tell whether a stream table's sources changed since a snapshot, and whether their
-- capture is complete: what pg_stat_user_tables' counters and the catalog view show anyone.)
REVOKE ALL ON FUNCTION pgstream._needed_columns(oid), pgstream._capture_state(oid),
    pgstream._members_incomplete(oid, boolean, boolean),
    pgstream._member_triggers_extra(oid, boolean, boolean),
    pgstream._forget_consumed_rows(oid), pgstream._forget_covered(bigint),
    pgstream._forget_covered(bigint, oid[]) FROM PUBLIC;

-- Drops every private table of stream table `stream_table` (its aggregate state and
-- intermediate results, in pgstream_changes).
CREATE FUNCTION pgstream._drop_state_of(stream_table bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    relation regclass;
BEGIN
    FOR relation IN
        SELECT c.oid::regclass FROM pg_class c
        WHERE c.relnamespace = 'pgstream_changes'::regnamespace AND c.relkind = 'r'
          AND (c.relname = 'agg_' || stream_table OR c.relname LIKE 'aux\_' || stream_table || '\_%')
    LOOP
        EXECUTE format('DROP TABLE %s', relation);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION pgstream._drop_state_of(bigint) FROM PUBLIC;
