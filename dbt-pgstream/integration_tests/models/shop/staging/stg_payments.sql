-- Shop staging: one row per payment, amounts converted from cents to dollars.
select
    id as payment_id,
    order_id,
    payment_method,
    amount / 100.0 as amount
from {{ ref('shop_payments') }}
where amount is not null
