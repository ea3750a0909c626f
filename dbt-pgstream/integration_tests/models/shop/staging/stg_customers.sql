-- Shop staging: one row per customer, columns renamed for the marts.
select
    id as customer_id,
    first_name,
    last_name
from {{ ref('shop_customers') }}
