-- bench/refresh_data.sql: what every database of bench/refresh starts from: `dim` (1000 rows),
-- `ev` (:rows rows), `ev_parted` (the same rows in 8 partitions by id), the queries (four over
-- `ev`, the aggregate again over `ev_parted`) and the change sets. Included (\ir) by refresh.sql,
-- refresh_rmvc.sql and refresh_dml.sql, each run by bench/refresh in a fresh database, so
-- that the change sets stay identical everywhere.
SET client_min_messages = warning;
CREATE TABLE dim (k int PRIMARY KEY, name text);
INSERT INTO dim SELECT k, 'name ' || k FROM generate_series(0, 999) k;
CREATE TABLE ev (id int PRIMARY KEY, g int, k int, v numeric);
INSERT INTO ev SELECT i, i % 1000, (i * 7) % 1000, i % 9973 FROM generate_series(1, :rows) i;
-- The partitioned copy: 8 ranges of id, new ids in the last one.
CREATE TABLE ev_parted (LIKE ev INCLUDING ALL) PARTITION BY RANGE (id);
SELECT format('CREATE TABLE ev_parted_%s PARTITION OF ev_parted FOR VALUES FROM (%s) TO (%s)', p,
              CASE WHEN p = 0 THEN 'MINVALUE' ELSE (:rows / 8 * p)::text END,
              CASE WHEN p = 7 THEN 'MAXVALUE' ELSE (:rows / 8 * (p + 1))::text END)
FROM generate_series(0, 7) p \gexec
INSERT INTO ev_parted SELECT * FROM ev;
ANALYZE ev, dim, ev_parted;

-- The queries; SRC stands for the source table (query_sql); agg_partitioned reads ev_parted,
-- which gets the same change sets as ev (apply_change_set). `key` is the result's key (the
-- source's primary key, or the group key): the unique index REFRESH ... CONCURRENTLY needs.
CREATE TABLE queries (name text, sql text, key text);
INSERT INTO queries VALUES
  ('filter', 'SELECT id, g, v FROM SRC WHERE g % 10 = 0', 'id'),
  ('aggregate', 'SELECT g, sum(v) AS s, count(*) AS n FROM SRC GROUP BY g', 'g'),
  ('join', 'SELECT e.id, e.v, d.name FROM SRC e JOIN dim d ON d.k = e.k', 'id'),
  ('join_aggregate', 'SELECT d.name, sum(e.v) AS s, count(*) AS n FROM SRC e JOIN dim d ON d.k = e.k GROUP BY d.name', 'name'),
  ('agg_partitioned', 'SELECT g, sum(v) AS s, count(*) AS n FROM ev_parted GROUP BY g', 'g');
CREATE FUNCTION query_sql(q text, src text) RETURNS text LANGUAGE sql AS
  $$ SELECT replace(sql, 'SRC', src) FROM queries WHERE name = q $$;

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

-- The size and label of a round's change set: pct % of the rows, or `fixed` rows when given.
CREATE FUNCTION change_set_size(pct numeric, fixed int, total int) RETURNS int
LANGUAGE sql AS $$ SELECT COALESCE(fixed, greatest(1, (total * pct / 100)::int)) $$;
CREATE FUNCTION change_set_label(pct numeric, fixed int) RETURNS text
LANGUAGE sql AS $$ SELECT COALESCE(fixed || ' rows', pct || '%') $$;
