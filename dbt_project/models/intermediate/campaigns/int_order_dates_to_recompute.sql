-- Order dates (UTC) whose attribution totals can have changed: the dates of the orders of
-- int_orders_to_recompute. int_attribution_daily deletes and re-aggregates exactly these dates on
-- an incremental run.
with

orders_to_recompute as (

    select * from {{ ref('int_orders_to_recompute') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

final as (

    -- each order looked up by primary key; offset 0 keeps the lookups: joined by order_id,
    -- PostgreSQL over-estimates the union and hash-joins the whole order table
    select distinct changed_order.order_date
    from orders_to_recompute
    cross join lateral (
        select orders.order_date from orders
        where orders.order_id = orders_to_recompute.order_id
        offset 0  -- noqa: AM09
    ) as changed_order

)

select * from final
