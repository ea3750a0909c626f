-- Shop revenue per calendar month of ordered_at (timestamp without time zone), returns left out (stream table).
select
    date_trunc('month', orders.ordered_at) as order_month,
    count(distinct orders.order_id) as paid_orders,
    count(distinct orders.customer_id) as paying_customers,
    sum(payments.amount) as revenue,
    sum(case when payments.payment_method in ('coupon', 'gift_card') then payments.amount else 0 end) as voucher_revenue
from {{ ref('stg_orders') }} as orders
inner join {{ ref('stg_payments') }} as payments
    on payments.order_id = orders.order_id
where orders.status not in ('returned', 'return_pending')
group by 1
