-- bench/refresh.sql: DIFFERENTIAL vs FULL vs AUTO refresh vs REFRESH MATERIALIZED VIEW on the
-- same data and change sets; run by bench/refresh in a fresh database with the extension
-- (psql variables :rows, and :fixed_only: only the DIFFERENTIAL stream tables, for the
-- fixed-1000-row set at 10M rows). REFRESH ... CONCURRENTLY is timed in another database
-- (refresh_rmvc.sql) and its times are copied into rmvc_results.
\set QUIET on
\ir refresh_data.sql
CREATE TABLE bench_config AS SELECT :'fixed_only'::boolean AS fixed_only;
CREATE TABLE results (rows int, change text, query text, diff_ms numeric, full_ms numeric,
                      rmv_ms numeric, nochange_ms numeric, dml_ms numeric, dml_plain_ms numeric,
                      auto_ms numeric, auto_kind text, changed_rows bigint, floor_ms numeric);
CREATE TABLE rmvc_results (rows int, change text, query text, rmvc_ms numeric);
\if :fixed_only
\else
-- The same table with no stream table reading it: the DML cost without capture.
CREATE TABLE ev_plain (LIKE ev INCLUDING ALL);
INSERT INTO ev_plain SELECT * FROM ev;
-- The same table again, read by the AUTO stream tables only (so that `ev` keeps its 8 readers
-- and the DML column its meaning); it gets the same change sets.
CREATE TABLE ev_auto (LIKE ev INCLUDING ALL);
INSERT INTO ev_auto SELECT * FROM ev;
ANALYZE ev_plain, ev_auto;
\endif

DO $$
DECLARE q record; fixed_only boolean := (SELECT fixed_only FROM bench_config);
BEGIN
  FOR q IN SELECT * FROM queries LOOP
    PERFORM pgstream.create_stream_table('diff_' || q.name, query_sql(q.name, 'ev'), '1h', 'DIFFERENTIAL');
    CONTINUE WHEN fixed_only;
    PERFORM pgstream.create_stream_table('full_' || q.name, query_sql(q.name, 'ev'), '1h', 'FULL');
    PERFORM pgstream.create_stream_table('auto_' || q.name, query_sql(q.name, 'ev_auto'), '1h', 'AUTO');
    EXECUTE format('CREATE MATERIALIZED VIEW %I AS %s', 'mv_' || q.name, query_sql(q.name, 'ev'));
  END LOOP;
END $$;

-- The floor of a keyed apply: a copy of each DIFFERENTIAL stream table with a unique index on
-- its key, in which as many rows as a refresh changed are updated by key (random keys, found
-- before the clock starts): what applying that many changed rows costs at least, whatever
-- computes them. (Not with the fixed-only 10M-row set: picking random keys out of 10M rows
-- per query and round would cost minutes of the 15 its run may take.)
DO $$
DECLARE q record;
BEGIN
  FOR q IN SELECT * FROM queries WHERE NOT (SELECT fixed_only FROM bench_config) LOOP
    EXECUTE format('CREATE TABLE %I AS SELECT * FROM %I', 'floor_' || q.name, 'diff_' || q.name);
    EXECUTE format('CREATE UNIQUE INDEX ON %I (%I)', 'floor_' || q.name, q.key);
    EXECUTE format('ANALYZE %I', 'floor_' || q.name);
  END LOOP;
END $$;
CREATE FUNCTION floor_update(q text, n bigint) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  key text := (SELECT queries.key FROM queries WHERE name = q);
  tbl regclass := ('floor_' || q)::regclass;
  col text := (SELECT attname FROM pg_attribute WHERE attrelid = tbl AND attnum > 0
               AND NOT attisdropped AND attname <> key ORDER BY attnum LIMIT 1);
BEGIN
  IF to_regclass('pg_temp.floor_keys') IS NOT NULL THEN
    DROP TABLE pg_temp.floor_keys;
  END IF;
  EXECUTE format('CREATE TEMP TABLE floor_keys AS SELECT %I AS k FROM %s ORDER BY random() LIMIT $1', key, tbl)
    USING n;
  ANALYZE pg_temp.floor_keys;
  t0 := clock_timestamp();
  EXECUTE format('UPDATE %1$s f SET %2$I = f.%2$I FROM pg_temp.floor_keys fk WHERE f.%3$I = fk.k', tbl, col, key);
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;

-- One change set (pct % of the rows, or `fixed` rows when given), then every refresh of every
-- query, each in its own transaction; then a no-change DIFFERENTIAL refresh.
CREATE PROCEDURE bench_round(pct numeric, fixed int) LANGUAGE plpgsql AS $$
DECLARE
  q record; t0 timestamptz; n int; total int; next_id int; auto_kind text;
  fixed_only boolean := (SELECT fixed_only FROM bench_config);
  diff_ms numeric; full_ms numeric; rmv_ms numeric; none_ms numeric; dml_ms numeric; plain_ms numeric;
  auto_ms numeric; parted_dml_ms numeric; changed bigint; floor_ms numeric;
BEGIN
  SELECT count(*) INTO total FROM ev;
  n := change_set_size(pct, fixed, total);
  SELECT max(id) + 1 INTO next_id FROM ev;
  dml_ms := apply_change_set('ev', total, n, next_id);
  COMMIT;
  parted_dml_ms := apply_change_set('ev_parted', total, n, next_id);
  COMMIT;
  IF NOT fixed_only THEN
    plain_ms := apply_change_set('ev_plain', total, n, next_id);
    COMMIT;
    PERFORM apply_change_set('ev_auto', total, n, next_id);
    COMMIT;
  END IF;
  FOR q IN SELECT * FROM queries LOOP
    t0 := clock_timestamp();
    PERFORM pgstream.refresh_stream_table('diff_' || q.name);
    diff_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
    SELECT COALESCE(last_rows_inserted, 0) + COALESCE(last_rows_updated, 0) + COALESCE(last_rows_deleted, 0)
      INTO changed FROM pgstream.pgs_stream_tables WHERE pgs_name = 'diff_' || q.name;
    IF NOT fixed_only THEN
      floor_ms := floor_update(q.name, changed);
      COMMIT;
    END IF;
    IF NOT fixed_only THEN
      t0 := clock_timestamp();
      PERFORM pgstream.refresh_stream_table('full_' || q.name);
      full_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
      COMMIT;
      t0 := clock_timestamp();
      PERFORM pgstream.refresh_stream_table('auto_' || q.name);
      auto_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
      COMMIT;
      SELECT last_refresh_kind INTO auto_kind FROM pgstream.pg_stat_stream_tables
      WHERE pgs_name = 'auto_' || q.name;
      t0 := clock_timestamp();
      EXECUTE format('REFRESH MATERIALIZED VIEW %I', 'mv_' || q.name);
      rmv_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
      COMMIT;
    END IF;
    t0 := clock_timestamp();
    PERFORM pgstream.refresh_stream_table('diff_' || q.name);
    none_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
    -- (The partitioned row's DML is ev_parted's; it has no reader-less twin to divide by.)
    INSERT INTO results VALUES (total, change_set_label(pct, fixed), q.name,
                                diff_ms, full_ms, rmv_ms, none_ms,
                                CASE WHEN q.name = 'agg_partitioned' THEN parted_dml_ms ELSE dml_ms END,
                                CASE WHEN q.name = 'agg_partitioned' THEN NULL ELSE plain_ms END,
                                auto_ms, auto_kind, changed, floor_ms);
    COMMIT;
  END LOOP;
END $$;
