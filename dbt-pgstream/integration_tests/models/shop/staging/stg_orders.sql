-- Shop staging: one row per order; status cleaned up, rows without a customer dropped.
select
    id as order_id,
    customer_id,
    order_date,
    ordered_at,
    lower(trim(status)) as status
from {{ ref('shop_orders') }}
where customer_id is not null
