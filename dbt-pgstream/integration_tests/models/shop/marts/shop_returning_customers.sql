-- Shop customers who sent an order back or are about to (stream table, IN subquery).
select
    customer_id,
    first_name,
    last_name
from {{ ref('stg_customers') }}
where customer_id in (
    select customer_id
    from {{ ref('stg_orders') }}
    where status in ('returned', 'return_pending')
)
