-- Verify no stream tables have consecutive errors.
-- An empty result set means the test passes.
SELECT pgs_schema, pgs_name, consecutive_errors, last_error
FROM pgstream.pg_stat_stream_tables
WHERE consecutive_errors > 0
