-- bench/refresh_rmvc.sql: REFRESH MATERIALIZED VIEW CONCURRENTLY of the queries, after the
-- same change sets as refresh.sql (psql variable :rows). bench/refresh runs it in a database
-- of its own WITHOUT the extension, after the stream tables' rounds: CONCURRENTLY runs an
-- internal CREATE TEMP TABLE that the extension's DDL trigger would record as DDL, making
-- the next refresh of every stream table analyze its query again (bench/README.md, tpch).
\set QUIET on
\ir refresh_data.sql
CREATE TABLE rmvc_results (rows int, change text, query text, rmvc_ms numeric);
DO $$
DECLARE q record;
BEGIN
  FOR q IN SELECT * FROM queries LOOP
    EXECUTE format('CREATE MATERIALIZED VIEW %I AS %s', 'mvc_' || q.name, query_sql(q.name, 'ev'));
    EXECUTE format('CREATE UNIQUE INDEX ON %I (%I)', 'mvc_' || q.name, q.key);
  END LOOP;
END $$;

-- One change set (as bench_round), then REFRESH ... CONCURRENTLY of every view, each in its
-- own transaction.
CREATE PROCEDURE rmvc_round(pct numeric, fixed int) LANGUAGE plpgsql AS $$
DECLARE q record; t0 timestamptz; total int; next_id int; ms numeric;
BEGIN
  SELECT count(*) INTO total FROM ev;
  SELECT max(id) + 1 INTO next_id FROM ev;
  PERFORM apply_change_set('ev', total, change_set_size(pct, fixed, total), next_id);
  COMMIT;
  PERFORM apply_change_set('ev_parted', total, change_set_size(pct, fixed, total), next_id);
  COMMIT;
  FOR q IN SELECT * FROM queries LOOP
    t0 := clock_timestamp();
    EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I', 'mvc_' || q.name);
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
    INSERT INTO rmvc_results VALUES (total, change_set_label(pct, fixed), q.name, ms);
    COMMIT;
  END LOOP;
END $$;
