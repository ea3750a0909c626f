-- TPC-H Q17 Small-Quantity-Order Revenue (spec 3.0.1, parameters: BRAND = Brand#23, CONTAINER = MED DRUM)
-- CONTAINER is MED DRUM, not the validation value MED BOX: at SF 0.01 no part is Brand#23 + MED BOX, so the sum is NULL.
select
    sum(l_extendedprice) / 7.0 as avg_yearly
from
    lineitem,
    part
where
    p_partkey = l_partkey
    and p_brand = 'Brand#23'
    and p_container = 'MED DRUM'
    and l_quantity < (
        select
            0.2 * avg(l_quantity)
        from
            lineitem
        where
            l_partkey = p_partkey
    )
