-- Shop customers worth more than the average customer who completed an order (stream table over a stream table).
select
    customer_summary.customer_id,
    customer_summary.first_name,
    customer_summary.last_name,
    customer_summary.number_of_orders,
    customer_summary.customer_lifetime_value
from {{ ref('shop_customer_summary') }} as customer_summary
where customer_summary.customer_lifetime_value > (
        select avg(customer_lifetime_value) from {{ ref('shop_customer_summary') }}
    )
    and exists (
        select 1
        from {{ ref('stg_orders') }} as orders
        where orders.customer_id = customer_summary.customer_id
            and orders.status = 'completed'
    )
