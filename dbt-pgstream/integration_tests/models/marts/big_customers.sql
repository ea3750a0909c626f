-- A stream table reading another stream table (order_totals); schedule and mode come from dbt_project.yml.
SELECT
    customer_id,
    total_amount
FROM {{ ref('order_totals') }}
WHERE total_amount >= 100
