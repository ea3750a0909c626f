-- A plain view: stream_table_healthy must report it (its test has severity warn).
{{ config(materialized='view') }}

SELECT customer_id FROM {{ ref('raw_orders') }}
