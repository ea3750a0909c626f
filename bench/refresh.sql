-- bench/refresh.sql: DIFFERENTIAL vs FULL refresh vs REFRESH MATERIALIZED VIEW on the same data
-- and change sets; run by bench/refresh (psql variable :rows).
\set QUIET on
SET client_min_messages = warning;
DROP TABLE IF EXISTS ev, ev_plain, dim, results, queries CASCADE;
DROP PROCEDURE IF EXISTS bench_round(numeric, int);
DROP FUNCTION IF EXISTS apply_change_set(regclass, int, int, int);
CREATE TABLE dim (k int PRIMARY KEY, name text);
INSERT INTO dim SELECT k, 'name ' || k FROM generate_series(0, 999) k;
CREATE TABLE ev (id int PRIMARY KEY, g int, k int, v numeric);
INSERT INTO ev SELECT i, i % 1000, (i * 7) % 1000, i % 9973 FROM generate_series(1, :rows) i;
-- The same table with no stream table reading it: the DML cost without capture.
CREATE TABLE ev_plain (LIKE ev INCLUDING ALL);
INSERT INTO ev_plain SELECT * FROM ev;
ANALYZE ev, ev_plain, dim;
CREATE TABLE results (rows int, change text, query text, diff_ms numeric, full_ms numeric,
                      rmv_ms numeric, nochange_ms numeric, dml_ms numeric, dml_plain_ms numeric);

CREATE TABLE queries (name text, sql text);
INSERT INTO queries VALUES
  ('filter', 'SELECT id, g, v FROM ev WHERE g % 10 = 0'),
  ('aggregate', 'SELECT g, sum(v) AS s, count(*) AS n FROM ev GROUP BY g'),
  ('join', 'SELECT e.id, e.v, d.name FROM ev e JOIN dim d ON d.k = e.k'),
  ('join_aggregate', 'SELECT d.name, sum(e.v) AS s, count(*) AS n FROM ev e JOIN dim d ON d.k = e.k GROUP BY d.name');

DO $$
DECLARE q record;
BEGIN
  FOR q IN SELECT * FROM queries LOOP
    PERFORM pgstream.create_stream_table('diff_' || q.name, q.sql, '1h', 'DIFFERENTIAL');
    PERFORM pgstream.create_stream_table('full_' || q.name, q.sql, '1h', 'FULL');
    EXECUTE format('CREATE MATERIALIZED VIEW %I AS %s', 'mv_' || q.name, q.sql);
  END LOOP;
END $$;

-- Applies a change set of n rows to `tbl` (70 % updates, 15 % deletes, 15 % inserts from id
-- next_id on), in one transaction of three statements; returns its wall time in ms.
CREATE FUNCTION apply_change_set(tbl regclass, total int, n int, next_id int) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  EXECUTE format('UPDATE %s SET v = v + 1 WHERE id %% $1 = 0', tbl)
    USING greatest(1, total / greatest(1, n * 7 / 10));
  EXECUTE format('DELETE FROM %1$s WHERE id IN (SELECT id FROM %1$s ORDER BY id DESC LIMIT $1)', tbl)
    USING greatest(1, n * 15 / 100);
  EXECUTE format('INSERT INTO %s SELECT i, i %% 1000, (i * 7) %% 1000, i %% 9973 '
                 'FROM generate_series($1, $1 + $2 - 1) i', tbl)
    USING next_id, greatest(1, n * 15 / 100);
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;

-- One change set (pct % of the rows, or `fixed` rows when given), then every refresh of every
-- query, each in its own transaction; then a no-change DIFFERENTIAL refresh.
CREATE PROCEDURE bench_round(pct numeric, fixed int) LANGUAGE plpgsql AS $$
DECLARE
  q record; t0 timestamptz; n int; total int; next_id int;
  diff_ms numeric; full_ms numeric; rmv_ms numeric; none_ms numeric; dml_ms numeric; plain_ms numeric;
BEGIN
  SELECT count(*) INTO total FROM ev;
  n := COALESCE(fixed, greatest(1, (total * pct / 100)::int));
  SELECT max(id) + 1 INTO next_id FROM ev;
  dml_ms := apply_change_set('ev', total, n, next_id);
  COMMIT;
  plain_ms := apply_change_set('ev_plain', total, n, next_id);
  COMMIT;
  FOR q IN SELECT * FROM queries LOOP
    t0 := clock_timestamp();
    PERFORM pgstream.refresh_stream_table('diff_' || q.name);
    diff_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
    t0 := clock_timestamp();
    PERFORM pgstream.refresh_stream_table('full_' || q.name);
    full_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
    t0 := clock_timestamp();
    EXECUTE format('REFRESH MATERIALIZED VIEW %I', 'mv_' || q.name);
    rmv_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
    t0 := clock_timestamp();
    PERFORM pgstream.refresh_stream_table('diff_' || q.name);
    none_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
    INSERT INTO results VALUES (total, COALESCE(fixed || ' rows', pct || '%'), q.name,
                                diff_ms, full_ms, rmv_ms, none_ms, dml_ms, plain_ms);
    COMMIT;
  END LOOP;
END $$;
