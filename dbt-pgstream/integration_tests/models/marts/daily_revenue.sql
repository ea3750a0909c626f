-- Schema override: the stream table lives in <target schema>_reporting.
{{ config(
    materialized='stream_table',
    stream_table_schema=target.schema ~ '_reporting',
    schedule='1h',
    refresh_mode='DIFFERENTIAL'
) }}

SELECT created_at::date AS order_date, SUM(amount) AS revenue
FROM {{ ref('raw_orders') }}
GROUP BY created_at::date
