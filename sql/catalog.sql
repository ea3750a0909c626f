-- pg_stream_dbt catalog: one row per stream table and one per relation it reads.
-- Schemas pgstream (the engine) and pgstream_dbt (the dbt entry points) are created by the
-- extension script (src/lib.rs), so they belong to the extension and go with DROP EXTENSION.

COMMENT ON SCHEMA pgstream IS 'pg_stream_dbt: the stream-table engine';
COMMENT ON SCHEMA pgstream_dbt IS 'pg_stream_dbt: entry points for the dbt-pgstream package';

CREATE TABLE pgstream.pgs_stream_tables (
    pgs_id                   bigserial PRIMARY KEY,
    pgs_relid                oid NOT NULL UNIQUE,
    pgs_schema               text NOT NULL,
    pgs_name                 text NOT NULL,
    defining_query           text NOT NULL,
    pgs_query_hash           text,
    search_path              text NOT NULL DEFAULT '',
    -- Whether the query's result changes only when a source does (no now(), random(), ...).
    depends_only_on_sources  boolean NOT NULL DEFAULT false,
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
    last_rows_deleted        bigint,
    total_refreshes          bigint NOT NULL DEFAULT 0,
    failed_refreshes         bigint NOT NULL DEFAULT 0,
    total_refresh_time_ms    double precision NOT NULL DEFAULT 0,
    consecutive_errors       integer NOT NULL DEFAULT 0,
    last_error               text,
    last_error_at            timestamptz,
    -- How the last refresh went: FULL (recomputed) or SKIPPED (no source changed).
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
    PRIMARY KEY (pgs_id, source_relid)
);
COMMENT ON TABLE pgstream.pgs_dependencies IS
    'pg_stream_dbt: the relations each stream table reads (views and the base tables behind them)';

-- Change capture: one row per data-changing statement on a relation a stream table reads,
-- written by the pgstream_capture statement trigger. In its own schema, which ordinary
-- users can neither read nor write.
CREATE SCHEMA pgstream_changes;
REVOKE ALL ON SCHEMA pgstream_changes FROM PUBLIC;
CREATE TABLE pgstream_changes.statements (
    source_relid oid NOT NULL,
    xid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    operation    text NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX statements_source_xid_idx ON pgstream_changes.statements (source_relid, xid);
REVOKE ALL ON pgstream_changes.statements FROM PUBLIC;

-- Row changes for DIFFERENTIAL refresh: one buffer table per source read by a DIFFERENTIAL
-- stream table, pgstream_changes.rows_<oid> (__pgs_xid, __pgs_seq, __pgs_w +1/-1, the source's
-- columns), filled by statement triggers from their transition tables (pgstream._sync_capture).
-- __pgs_seq orders the changes of one transaction.
CREATE SEQUENCE pgstream_changes.row_seq;
REVOKE ALL ON SEQUENCE pgstream_changes.row_seq FROM PUBLIC;

-- Everyone may read the catalog; only the engine (running as the extension owner) writes it.
REVOKE ALL ON pgstream.pgs_stream_tables, pgstream.pgs_dependencies FROM PUBLIC;
GRANT SELECT ON pgstream.pgs_stream_tables, pgstream.pgs_dependencies TO PUBLIC;
GRANT USAGE ON SCHEMA pgstream, pgstream_dbt TO PUBLIC;

-- pg_dump keeps the catalog's rows with the extension.
SELECT pg_catalog.pg_extension_config_dump('pgstream.pgs_stream_tables', '');
SELECT pg_catalog.pg_extension_config_dump('pgstream.pgs_stream_tables_pgs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pgstream.pgs_dependencies', '');
