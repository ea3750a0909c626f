-- bench/refresh_steady.sql: refreshes in a steady state, as a scheduler worker runs them: in
-- one session, after every round of :changes changed source rows (70 % updates, 15 % deletes,
-- 15 % inserts on `ev` and `ev_parted`), each DIFFERENTIAL stream table refreshed; 5 rounds to
-- warm up, then :rounds timed. Run by bench/refresh in its first database after the main rounds
-- (the stream tables and change sets of refresh.sql); prints the median per query.
\set QUIET on
CREATE TABLE steady (query text, ms numeric, changed bigint);
CREATE PROCEDURE steady_round(changes int, keep boolean) LANGUAGE plpgsql AS $$
DECLARE q record; t0 timestamptz; total int; next_id int; ms numeric; changed bigint;
BEGIN
  SELECT count(*), max(id) + 1 INTO total, next_id FROM ev;
  PERFORM apply_change_set('ev', total, changes, next_id);
  COMMIT;
  PERFORM apply_change_set('ev_parted', total, changes, next_id);
  COMMIT;
  FOR q IN SELECT * FROM queries LOOP
    t0 := clock_timestamp();
    PERFORM pgstream.refresh_stream_table('diff_' || q.name);
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
    SELECT COALESCE(last_rows_inserted, 0) + COALESCE(last_rows_updated, 0) + COALESCE(last_rows_deleted, 0)
      INTO changed FROM pgstream.pgs_stream_tables WHERE pgs_name = 'diff_' || q.name;
    IF keep THEN
      INSERT INTO steady VALUES (q.name, ms, changed);
    END IF;
    COMMIT;
  END LOOP;
END $$;
SELECT format('CALL steady_round(%s, false)', :changes) FROM generate_series(1, 5) \gexec
SELECT format('CALL steady_round(%s, true)', :changes) FROM generate_series(1, :rounds) \gexec
SELECT format('%-8s %-15s %9s %9s %9s %9s', :rows, query, round(avg(changed)), 
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
              round(percentile_cont(0.1) WITHIN GROUP (ORDER BY ms)::numeric, 2),
              round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 2))
FROM steady GROUP BY query ORDER BY query;
