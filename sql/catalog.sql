-- pg_stream_dbt catalog: one row per stream table and one per relation it reads.
-- Schemas pgstream (the engine) and pgstream_dbt (the dbt entry points) are created by the
-- extension script (src/lib.rs), so they belong to the extension and go with DROP EXTENSION.

COMMENT ON SCHEMA pgstream IS 'pg_stream_dbt: the stream-table engine';
COMMENT ON SCHEMA pgstream_dbt IS 'pg_stream_dbt: entry points for the dbt-pgstream package';

-- This installation of the extension: a random id made by CREATE EXTENSION, so a database
-- restored from a dump has another one than the rows of the dumped catalog, which remember the
-- installation that wrote them. Rows from another installation are adopted before use
-- (pgstream._adopt_restored_rows): relation oids looked up again by name, change positions
-- cleared (one FULL refresh each), capture rebuilt. Not dumped (not a configuration table).
CREATE TABLE pgstream.pgs_installation (
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton)
);
INSERT INTO pgstream.pgs_installation DEFAULT VALUES;
COMMENT ON TABLE pgstream.pgs_installation IS 'pg_stream_dbt: this installation''s id (new in a restored database)';

-- Executable by PUBLIC on purpose: the default of the catalog's installation column, and all
-- it tells is this installation's random id.
CREATE FUNCTION pgstream._installation() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT id FROM pgstream.pgs_installation $$;

CREATE TABLE pgstream.pgs_stream_tables (
    pgs_id                   bigserial PRIMARY KEY,
    -- (Deferrable: adopting a restored catalog moves oids that may be swapped between rows.)
    pgs_relid                oid NOT NULL UNIQUE DEFERRABLE INITIALLY IMMEDIATE,
    pgs_schema               text NOT NULL,
    pgs_name                 text NOT NULL,
    defining_query           text NOT NULL,
    pgs_query_hash           text,
    search_path              text NOT NULL DEFAULT '',
    -- Whether the query's result changes only when a source does (no now(), random(), ...).
    depends_only_on_sources  boolean NOT NULL DEFAULT false,
    -- When not: what makes it change by itself (a function like now(), CURRENT_DATE, a read
    -- of a system catalog).
    changes_by_itself        text,
    -- The session settings its result may depend on (TimeZone, DateStyle, lc_time, ...), as
    -- name=value, captured at create and applied in every refresh.
    query_settings           text[] NOT NULL DEFAULT '{}',
    schedule                 text NOT NULL,
    refresh_mode             text NOT NULL
        CHECK (refresh_mode IN ('FULL', 'DIFFERENTIAL', 'AUTO')),
    status                   text NOT NULL DEFAULT 'ACTIVE'
        CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    created_at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    altered_at               timestamptz,
    last_refresh_at          timestamptz,
    last_refresh_duration_ms double precision,
    last_rows_inserted       bigint,
    -- Rows the last refresh updated in place (keyed stream tables).
    last_rows_updated        bigint,
    last_rows_deleted        bigint,
    total_refreshes          bigint NOT NULL DEFAULT 0,
    failed_refreshes         bigint NOT NULL DEFAULT 0,
    total_refresh_time_ms    double precision NOT NULL DEFAULT 0,
    consecutive_errors       integer NOT NULL DEFAULT 0,
    last_error               text,
    last_error_at            timestamptz,
    -- How the last refresh went: DIFFERENTIAL (the change applied), FULL (recomputed) or
    -- SKIPPED (no source changed).
    last_refresh_kind        text,
    -- The snapshot whose committed source changes the last refresh covered; changes of the
    -- refreshing transaction itself count as covered up to change sequence number
    -- consumed_own_seq (that transaction may change sources again after the refresh).
    consumed_snapshot        pg_snapshot,
    consumed_own_xid         xid8,
    consumed_own_seq         bigint,
    -- What refresh_mode resolves to for this query (FULL or DIFFERENTIAL), and why not
    -- DIFFERENTIAL when it is FULL under AUTO.
    effective_mode           text CHECK (effective_mode IN ('FULL', 'DIFFERENTIAL')),
    mode_reason              text,
    -- How the stream table identifies its rows: the columns of its unique key (a unique index on
    -- their hash and them, NULLs equal), or NULL: a multiset with the __pgs_row_id column.
    row_key                  text[],
    -- What the query means, as a hash of what it depends on (pgstream._meaning): after DDL a
    -- refresh recomputes only when this changed.
    pgs_meaning              text,
    -- The installation that wrote this row (see pgs_installation).
    installation             uuid NOT NULL DEFAULT pgstream._installation(),
    -- Why the last refresh was FULL or SKIPPED (NULL for DIFFERENTIAL): the first refresh, DDL
    -- that changed the query's meaning, a truncated source, the change volume (cost-based AUTO), ...
    last_refresh_reason      text,
    UNIQUE (pgs_schema, pgs_name)
);
COMMENT ON TABLE pgstream.pgs_stream_tables IS 'pg_stream_dbt: one row per stream table';

CREATE TABLE pgstream.pgs_dependencies (
    pgs_id        bigint NOT NULL REFERENCES pgstream.pgs_stream_tables ON DELETE CASCADE,
    source_relid  oid NOT NULL,
    source_schema text NOT NULL,
    source_name   text NOT NULL,
    source_kind   text NOT NULL,
    -- The source's columns the query reads (NULL: all, e.g. a whole-row reference): what
    -- the source's change buffer keeps for it.
    used_columns  text[],
    PRIMARY KEY (pgs_id, source_relid) DEFERRABLE INITIALLY IMMEDIATE
);
COMMENT ON TABLE pgstream.pgs_dependencies IS
    'pg_stream_dbt: the relations each stream table reads (views and the base tables behind them)';

-- Change capture: one row per relation a stream table reads and transaction that changed it
-- (its last operation; TRUNCATE wins), written by the pgstream_capture statement trigger and
-- the row triggers, and with source 0 by the DDL event triggers (sql/ddl_events.sql). In its
-- own schema, whose tables ordinary
-- users can neither read nor write (they may name them: USAGE below).
CREATE SCHEMA pgstream_changes;
REVOKE ALL ON SCHEMA pgstream_changes FROM PUBLIC;
-- Names only: every table in it denies PUBLIC (buffers, statements, the sequence), and a stream
-- table's owner owns its inner stages' tables here, which its refreshes fill under its rights.
GRANT USAGE ON SCHEMA pgstream_changes TO PUBLIC;
CREATE TABLE pgstream_changes.statements (
    source_relid oid NOT NULL,
    xid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    operation    text NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX statements_source_xid_idx ON pgstream_changes.statements (source_relid, xid);
REVOKE ALL ON pgstream_changes.statements FROM PUBLIC;

-- Row changes for DIFFERENTIAL refresh go to one buffer table per source read by a DIFFERENTIAL
-- stream table (made by src/capture/setup.rs); __pgs_seq orders the changes of one transaction.
CREATE SEQUENCE pgstream_changes.row_seq;
REVOKE ALL ON SEQUENCE pgstream_changes.row_seq FROM PUBLIC;

-- A buffer with two or more DIFFERENTIAL readers is indexed by BRIN on __pgs_xid (appended in about transaction order; costs little per
-- captured row): a refresh reads the changes from the xmin of the snapshot it last covered on,
-- not every row a lagging reader of the same source still holds. PostgreSQL has no BRIN operator
-- class for xid8; this is the minmax one over xid8's btree operators.
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

-- Everyone may read the catalog; only the engine (running as the extension owner) writes it.
REVOKE ALL ON pgstream.pgs_stream_tables, pgstream.pgs_dependencies FROM PUBLIC;
GRANT SELECT ON pgstream.pgs_stream_tables, pgstream.pgs_dependencies TO PUBLIC;
GRANT USAGE ON SCHEMA pgstream, pgstream_dbt TO PUBLIC;

-- pg_dump keeps the catalog's rows with the extension.
SELECT pg_catalog.pg_extension_config_dump('pgstream.pgs_stream_tables', '');
SELECT pg_catalog.pg_extension_config_dump('pgstream.pgs_stream_tables_pgs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pgstream.pgs_dependencies', '');

-- Adopts catalog rows another installation wrote (a restored dump; see pgs_installation): each
-- stream table takes the oid its name has here (a row whose table is not here is removed, with a
-- WARNING), its recorded sources are kept where their names are found (its first refresh derives
-- them anew anyway), and its change position is cleared, so it is recomputed once. Returns
-- whether it adopted any (then the caller rebuilds the capture). Nothing to do (and cheap) when
-- every row is this installation's.
CREATE FUNCTION pgstream._adopt_restored_rows() RETURNS boolean
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
REVOKE ALL ON FUNCTION pgstream._adopt_restored_rows() FROM PUBLIC;

-- What a query means, as a hash of everything its result depends on besides rows: the
-- definitions of the views it reads (a view re-created the same is the same), the identity and
-- kind of every other relation it reads (a table swapped in under the same name is not the same),
-- the positions, names, types, collations and NOT NULLs of the columns it reads, the unique keys
-- of the tables it reads, and the signature, volatility and body of every function it calls,
-- directly or through an operator (not the functions those call); other objects (operators,
-- types, ...) by description. `probe` is a view of the query. Computed with only pg_catalog on the
-- search_path, so names print the same whoever asks; it reads only world-readable catalogs.
CREATE FUNCTION pgstream._meaning(probe regclass) RETURNS text
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
