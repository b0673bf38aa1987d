{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['customer_id'], 'unique': true},
            {'columns': ['computed_for_date']},
        ],
        pre_hook="{{ delete_customers_to_recompute(var('attribution_window_days'), ref('int_order_window_customers_to_recompute')) }}"
    )
}}
-- Valid orders and their revenue over the 365 days up to the end of run_date, per customer with at
-- least one such order. Aggregating the whole window every day reads a year of orders; instead a
-- run recomputes only the customers whose window can have changed since the day the table was last
-- computed for: an order placed, changed or reloaded since run_date - attribution_window_days (as
-- int_customer_orders_summarized), or one that left the window since then. Each is recomputed from
-- its own orders (index on int_orders_as_of.customer_id). When the table's day is not within the
-- lookback (first build, a rebuilt past day, a gap in the runs) every customer is recomputed from
-- one pass over the window (macros/per_customer_windows.sql).
-- depends_on: {{ ref('int_order_window_customers_to_recompute') }}
with

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

{% if recompute_all_customers(var('attribution_window_days')) -%}
window_orders as (

    -- grouped by customer_id || '' (a no-op) PostgreSQL scans the window and hash-aggregates it;
    -- grouped by customer_id it reads the window in customer order through the index, one random
    -- heap read per order (4x slower at 2M orders)
    select
        customer_id || '' as customer_id,
        total_amount

    from orders
    where
        is_valid_order
        and ordered_at >= {{ as_of_ts() }} - interval '365 days'
        and ordered_at < {{ as_of_ts() }}

),
{%- else -%}
customers_to_recompute as (

    {{ customers_to_recompute(ref('int_order_window_customers_to_recompute')) }}

),

window_orders as (

    -- per customer through the index on customer_id; offset 0 keeps the planner from scanning the
    -- window (it cannot estimate how few customers these are)
    select orders_of_customer.*
    from customers_to_recompute
    cross join lateral (
        select
            orders.customer_id,
            orders.total_amount
        from orders
        where
            orders.customer_id = customers_to_recompute.customer_id
            and orders.is_valid_order
            and orders.ordered_at >= {{ as_of_ts() }} - interval '365 days'
            and orders.ordered_at < {{ as_of_ts() }}
        offset 0  -- noqa: AM09
    ) as orders_of_customer

),
{%- endif %}

final as (

    select
        customer_id,
        count(*) as orders_365d,
        sum(total_amount)::numeric(14, 2) as revenue_365d,
        {{ run_date() }} as computed_for_date

    from window_orders
    group by customer_id

)

select * from final
