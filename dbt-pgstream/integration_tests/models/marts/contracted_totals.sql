-- Order totals under an enforced contract (schema.yml): its constraints are applied to the stream
-- table; a sql_header runs in the model's transaction; refresh_on_run refreshes it on every run.
{{ config(
    materialized='stream_table',
    refresh_on_run=true,
    sql_header="set local pgstream_it.header = 'seen';",
    post_hook="do $$ begin execute format('comment on table %s is %L', '{{ this }}', 'header: ' || coalesce(current_setting('pgstream_it.header', true), 'missing')); end $$"
) }}

SELECT
    customer_id,
    SUM(amount) AS total_amount,
    COUNT(*) AS order_count
FROM {{ ref('raw_orders') }}
GROUP BY customer_id
