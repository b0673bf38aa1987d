-- Customers whose 365-day order window (int_customer_order_windows) can have changed since
-- run_date - attribution_window_days: those of int_order_customers_to_recompute (an order placed,
-- changed or reloaded since then) and those with an order that left the window since then, i.e.
-- placed in [since - 365 days, end of run_date - 365 days) (index on int_orders_as_of.ordered_at).
with

order_customers_to_recompute as (

    select * from {{ ref('int_order_customers_to_recompute') }}

),

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

final as (

    select customer_id from order_customers_to_recompute
    union
    select customer_id from orders
    where
        ordered_at >= {{ lookback_since_ts(var('attribution_window_days')) }} - interval '365 days'
        and ordered_at < {{ as_of_ts() }} - interval '365 days'

)

select * from final
