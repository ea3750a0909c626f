-- bench/refresh_dml.sql: tables for the single-row autocommit DML latency of bench/refresh
-- (psql variable :rows). Seven identical copies of `ev`, differing only in who reads them:
--   lat_plain   nobody (the baseline every ratio divides by)
--   lat_none    nobody either (a second copy: the A/A ratio shows the noise)
--   lat_full1   0 DIFFERENTIAL readers, 1 FULL stream table (statement-level capture only)
--   lat_diff1   1 DIFFERENTIAL stream table (the aggregate)
--   lat_diff4   4 DIFFERENTIAL stream tables (filter, aggregate, join, join_aggregate)
-- and two references that no stream table reads, for what any trigger-based capture costs:
--   lat_noop    a statement trigger with transition tables that does nothing (PL/pgSQL)
--   lat_audit   a hand-rolled change log: a PL/pgSQL statement trigger appending the transition
--               rows to a table (xid, sequence number, +1/-1, the columns: what a buffer row
--               holds; an update's old and new rows), as users write audit triggers
-- Inserts take their ids from a sequence per table (<table>_ids); the stream tables are never
-- refreshed during the run (schedule 1h). bench/refresh drives it with pgbench, or, without
-- pgbench, with lat_loop below (server-side timing, one statement per transaction).
\set QUIET on
\ir refresh_data.sql
CREATE TABLE lat_config AS SELECT :rows::int AS rows;
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['lat_plain', 'lat_none', 'lat_full1', 'lat_diff1', 'lat_diff4',
                           'lat_noop', 'lat_audit'] LOOP
    EXECUTE format('CREATE TABLE %I (LIKE ev INCLUDING ALL)', t);
    EXECUTE format('INSERT INTO %I SELECT * FROM ev', t);
    EXECUTE format('CREATE SEQUENCE %I START %s', t || '_ids', (SELECT max(id) + 1 FROM ev));
    EXECUTE format('ANALYZE %I', t);
  END LOOP;
  PERFORM pgstream.create_stream_table('full1_aggregate', query_sql('aggregate', 'lat_full1'), '1h', 'FULL');
  PERFORM pgstream.create_stream_table('diff1_aggregate', query_sql('aggregate', 'lat_diff1'), '1h', 'DIFFERENTIAL');
  PERFORM pgstream.create_stream_table('diff4_' || name, query_sql(name, 'lat_diff4'), '1h', 'DIFFERENTIAL')
  FROM queries WHERE sql LIKE '%SRC%';
END $$;

-- The two references' triggers.
CREATE FUNCTION lat_noop_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER lat_noop_ins AFTER INSERT ON lat_noop REFERENCING NEW TABLE AS n
  FOR EACH STATEMENT EXECUTE FUNCTION lat_noop_trigger();
CREATE TRIGGER lat_noop_upd AFTER UPDATE ON lat_noop REFERENCING OLD TABLE AS o NEW TABLE AS n
  FOR EACH STATEMENT EXECUTE FUNCTION lat_noop_trigger();
CREATE SEQUENCE lat_audit_seq;
CREATE TABLE lat_audit_log (xid xid8, seq int8, w int2, id int, g int, k int, v numeric);
CREATE FUNCTION lat_audit_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    INSERT INTO lat_audit_log
    SELECT pg_current_xact_id(), nextval('lat_audit_seq'), -1, o.id, o.g, o.k, o.v FROM o
    UNION ALL SELECT pg_current_xact_id(), nextval('lat_audit_seq'), 1, n.id, n.g, n.k, n.v FROM n;
  ELSE
    INSERT INTO lat_audit_log SELECT pg_current_xact_id(), nextval('lat_audit_seq'), 1, n.id, n.g, n.k, n.v FROM n;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER lat_audit_ins AFTER INSERT ON lat_audit REFERENCING NEW TABLE AS n
  FOR EACH STATEMENT EXECUTE FUNCTION lat_audit_trigger();
CREATE TRIGGER lat_audit_upd AFTER UPDATE ON lat_audit REFERENCING OLD TABLE AS o NEW TABLE AS n
  FOR EACH STATEMENT EXECUTE FUNCTION lat_audit_trigger();

-- The fallback loop: n single-row statements (op 'insert' or 'update') on tbl, each in its
-- own transaction, timed server side around statement and COMMIT; microseconds into lat_times.
CREATE TABLE lat_times (op text, tbl text, us numeric);
CREATE PROCEDURE lat_loop(tbl text, op text, n int) LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz; times numeric[] := '{}'; total int := (SELECT rows FROM lat_config);
  stmt text := CASE op
    WHEN 'insert' THEN format('INSERT INTO %I VALUES (nextval(%L), $1, ($1 * 7) %% 1000, $1)', tbl, tbl || '_ids')
    ELSE format('UPDATE %I SET v = v + 1 WHERE id = $1', tbl) END;
  arg int;
BEGIN
  FOR i IN 1..n LOOP
    arg := CASE op WHEN 'insert' THEN (random() * 999)::int ELSE 1 + (random() * (total - 1))::int END;
    t0 := clock_timestamp();
    EXECUTE stmt USING arg;
    COMMIT;
    times := times || (extract(epoch FROM clock_timestamp() - t0) * 1e6);
  END LOOP;
  INSERT INTO lat_times SELECT op, tbl, unnest(times);
  COMMIT;
END $$;
