-- Customers whose lifetime order facts can have changed since run_date - attribution_window_days:
-- the customers of int_orders_to_recompute and of orders with an order line changed since then
-- (the favourite category). int_customer_orders_summarized deletes and recomputes exactly these
-- on an incremental run.
with

orders_to_recompute as (

    select * from {{ ref('int_orders_to_recompute') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

order_lines as (

    select * from {{ ref('stg_shop__order_lines') }}

),

changed_orders as (

    select order_id from orders_to_recompute
    union
    select order_id from order_lines
    where updated_at >= {{ lookback_since_ts(var('attribution_window_days')) }}

),

final as (

    -- each order looked up by primary key; offset 0 keeps the lookups: joined by order_id,
    -- PostgreSQL over-estimates the union and hash-joins the whole order table
    select distinct changed_order.customer_id
    from changed_orders
    cross join lateral (
        select orders.customer_id from orders
        where orders.order_id = changed_orders.order_id
        offset 0  -- noqa: AM09
    ) as changed_order

)

select * from final
