-- Name override: the stream table is called customer_order_counts, not customer_counts.
{{ config(
    materialized='stream_table',
    stream_table_name='customer_order_counts',
    schedule='30m',
    refresh_mode='DIFFERENTIAL'
) }}

SELECT customer_id, COUNT(*) AS orders
FROM {{ ref('raw_orders') }}
GROUP BY customer_id
