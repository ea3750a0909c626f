-- Shop order counts per status, only statuses with at least five orders (stream table, HAVING).
select
    status,
    count(*) as orders,
    count(distinct customer_id) as customers,
    min(order_date) as first_order_date,
    max(order_date) as last_order_date
from {{ ref('stg_orders') }}
group by status
having count(*) >= 5
