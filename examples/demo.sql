-- pg_stream_dbt demo: a FULL stream table over an aggregate, kept equal to its query.
\pset footer off
CREATE EXTENSION pg_stream_dbt;
CREATE TABLE orders (id serial PRIMARY KEY, customer text, amount numeric);
INSERT INTO orders (customer, amount) VALUES ('ada', 30), ('ada', 12), ('bob', 7), ('cy', NULL);

SELECT pgstream.create_stream_table(
    'order_totals',
    'SELECT customer, sum(amount) AS total, count(*) AS orders FROM orders GROUP BY customer',
    schedule => '1m', refresh_mode => 'FULL');
SELECT customer, total, orders FROM order_totals ORDER BY customer;

INSERT INTO orders (customer, amount) VALUES ('dee', 5);
UPDATE orders SET amount = 8 WHERE customer = 'bob';
DELETE FROM orders WHERE customer = 'cy';
SELECT pgstream.refresh_stream_table('order_totals');
SELECT customer, total, orders FROM order_totals ORDER BY customer;

SELECT pgs_name, refresh_mode, schedule, total_refreshes, last_rows_inserted,
       last_rows_deleted, stale, next_refresh_at > last_refresh_at AS scheduled_ahead
FROM pgstream.pg_stat_stream_tables;

-- Bad input is refused with a clear error and changes nothing.
\set ON_ERROR_STOP 0
SELECT pgstream.create_stream_table('order_totals', 'SELECT 1', '1m', 'FULL');
SELECT pgstream.alter_stream_table('order_totals', schedule => 'every now and then');
\set ON_ERROR_STOP 1

SELECT pgstream.drop_stream_table('order_totals');
SELECT count(*) AS stream_tables_left FROM pgstream.pgs_stream_tables;
