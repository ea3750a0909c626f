-- bench/refresh_baseline.sql: FULL refresh vs REFRESH MATERIALIZED VIEW [CONCURRENTLY] on the
-- same data and change sets; run by bench/refresh_baseline (psql variable :rows).
\set QUIET on
SET client_min_messages = warning;
DROP TABLE IF EXISTS ev, ev_plain, dim, results, queries CASCADE;
DROP PROCEDURE IF EXISTS bench_round(numeric);
DROP FUNCTION IF EXISTS apply_change_set(regclass, int, int, int);
CREATE TABLE dim (k int PRIMARY KEY, name text);
INSERT INTO dim SELECT k, 'name ' || k FROM generate_series(0, 999) k;
CREATE TABLE ev (id int PRIMARY KEY, g int, k int, v numeric);
INSERT INTO ev SELECT i, i % 1000, (i * 7) % 1000, i % 9973 FROM generate_series(1, :rows) i;
CREATE TABLE ev_plain (LIKE ev INCLUDING ALL);
INSERT INTO ev_plain SELECT * FROM ev;
ANALYZE ev, ev_plain, dim;
CREATE TABLE results (rows int, change_pct numeric, query text, full_ms numeric, rmv_ms numeric,
                      rmvc_ms numeric, dml_ms numeric, dml_plain_ms numeric);

CREATE TABLE queries (name text, sql text, unique_key text);
INSERT INTO queries VALUES
  ('filter', 'SELECT id, g, v FROM ev WHERE g % 10 = 0', 'id'),
  ('aggregate', 'SELECT g, sum(v) AS s, count(*) AS n FROM ev GROUP BY g', 'g'),
  ('join', 'SELECT e.id, e.v, d.name FROM ev e JOIN dim d ON d.k = e.k', 'id'),
  ('join_aggregate', 'SELECT d.name, sum(e.v) AS s, count(*) AS n FROM ev e JOIN dim d ON d.k = e.k GROUP BY d.name', 'name');

DO $$
DECLARE q record;
BEGIN
  FOR q IN SELECT * FROM queries LOOP
    PERFORM pgstream.create_stream_table('st_' || q.name, q.sql, '1h', 'FULL');
    EXECUTE format('CREATE MATERIALIZED VIEW %I AS %s', 'mv_' || q.name, q.sql);
    EXECUTE format('CREATE UNIQUE INDEX ON %I (%I)', 'mv_' || q.name, q.unique_key);
  END LOOP;
END $$;

-- Applies a change set of n rows to `tbl` (70 % updates, 15 % deletes, 15 % inserts from
-- id next_id on); returns its wall time in ms.
CREATE FUNCTION apply_change_set(tbl regclass, total int, n int, next_id int) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  EXECUTE format('UPDATE %s SET v = v + 1 WHERE id %% $1 = 0', tbl)
    USING greatest(1, total / (n * 7 / 10 + 1));
  EXECUTE format('DELETE FROM %1$s WHERE id IN (SELECT id FROM %1$s ORDER BY id DESC LIMIT $1)', tbl)
    USING greatest(1, n * 15 / 100);
  EXECUTE format('INSERT INTO %s SELECT i, i %% 1000, (i * 7) %% 1000, i %% 9973 '
                 'FROM generate_series($1, $1 + $2 - 1) i', tbl)
    USING next_id, greatest(1, n * 15 / 100);
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;

CREATE PROCEDURE bench_round(pct numeric) LANGUAGE plpgsql AS $$
DECLARE
  q record; t0 timestamptz; n int; total int; next_id int;
  full_ms numeric; rmv_ms numeric; rmvc_ms numeric; dml_ms numeric; plain_ms numeric;
BEGIN
  SELECT count(*) INTO total FROM ev;
  n := greatest(1, (total * pct / 100)::int);
  SELECT max(id) + 1 INTO next_id FROM ev;
  -- the same change set on both tables: with the capture trigger, and without
  dml_ms := apply_change_set('ev', total, n, next_id);
  plain_ms := apply_change_set('ev_plain', total, n, next_id);
  COMMIT;
  FOR q IN SELECT * FROM queries LOOP
    t0 := clock_timestamp();
    PERFORM pgstream.refresh_stream_table('st_' || q.name);
    full_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
    t0 := clock_timestamp();
    EXECUTE format('REFRESH MATERIALIZED VIEW %I', 'mv_' || q.name);
    rmv_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
    t0 := clock_timestamp();
    EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I', 'mv_' || q.name);
    rmvc_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
    INSERT INTO results VALUES (total, pct, q.name, full_ms, rmv_ms, rmvc_ms, dml_ms, plain_ms);
    COMMIT;
  END LOOP;
END $$;
