-- SQL text that must reach the database byte for byte: quotes, dollar quotes, backslashes, percent signs.
{{ config(materialized='stream_table', schedule='@hourly', refresh_mode='DIFFERENTIAL') }}

SELECT
    customer_id,
    'it''s "quoted"' AS single_quotes,
    $$dollar $tag$ 'text'$$ AS dollar_quotes,
    'back\slash \n \\' AS backslashes,
    '100% of {{ "%" }}s' AS percents
FROM {{ ref('raw_orders') }}
WHERE id = 1
