-- pg_stream_dbt demo: a DIFFERENTIAL stream table over an aggregate, kept equal to its query
-- by applying only the rows that changed.
\pset footer off
CREATE EXTENSION pg_stream_dbt;
CREATE TABLE orders (id serial PRIMARY KEY, customer text, amount numeric);
INSERT INTO orders (customer, amount) VALUES ('ada', 30), ('ada', 12), ('bob', 7), ('cy', NULL);

SELECT pgstream.create_stream_table(
    'order_totals',
    'SELECT customer, sum(amount) AS total, count(*) AS orders FROM orders GROUP BY customer',
    schedule => '1m', refresh_mode => 'DIFFERENTIAL');
SELECT customer, total, orders FROM order_totals ORDER BY customer;
SELECT property, value FROM pgstream.explain_stream_table('order_totals')
WHERE property IN ('refresh_mode', 'effective_mode', 'source', 'delta_shape');
-- The first refresh after DDL (creating tables) recomputes; later ones apply changes only.
SELECT pgstream.refresh_stream_table('order_totals');

INSERT INTO orders (customer, amount) VALUES ('dee', 5);
UPDATE orders SET amount = 8 WHERE customer = 'bob';
DELETE FROM orders WHERE customer = 'cy';
SELECT pgstream.refresh_stream_table('order_totals');
SELECT customer, total, orders FROM order_totals ORDER BY customer;

SELECT pgs_name, refresh_mode, last_refresh_kind, schedule, total_refreshes, last_rows_inserted,
       last_rows_deleted, stale, next_refresh_at > last_refresh_at AS scheduled_ahead
FROM pgstream.pg_stat_stream_tables;

-- Bad input is refused with a clear error and changes nothing.
\set ON_ERROR_STOP 0
SELECT pgstream.create_stream_table('order_totals', 'SELECT 1', '1m', 'FULL');
SELECT pgstream.alter_stream_table('order_totals', schedule => 'every now and then');
SELECT pgstream.create_stream_table('ranked', 'SELECT customer, rank() OVER (ORDER BY amount) FROM orders');
-- AUTO takes FULL for what DIFFERENTIAL cannot maintain, and says why.
SELECT pgstream.create_stream_table('ranked', 'SELECT customer, rank() OVER (ORDER BY amount) FROM orders',
                                    refresh_mode => 'AUTO');
SELECT pgs_name, effective_mode, mode_reason FROM pgstream.pgs_stream_tables WHERE pgs_name = 'ranked';
SELECT pgstream.drop_stream_table('ranked');
\set ON_ERROR_STOP 1

SELECT pgstream.drop_stream_table('order_totals');
SELECT count(*) AS stream_tables_left FROM pgstream.pgs_stream_tables;
