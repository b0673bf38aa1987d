{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['order_date', 'discount_code'], 'unique': true}],
        pre_hook="{{ delete_to_recompute('order_date', ref('int_order_dates_to_recompute')) }}"
    )
}}
-- One row per order date (UTC) and discount code used on valid orders of that date, as of the
-- end of run_date: orders, customers (new: one of the customer's orders that day with the code is
-- their first valid order; returning otherwise: new + returning = customers), gross and net
-- revenue, the discount the code gave, and the average order value with the code beside the
-- day's average of orders with no discount at all (orders whose discount is unknown count for
-- neither). An order with two codes counts for both: codes do not
-- add up to the day. Incremental per date like int_attribution_daily: a run re-aggregates only the
-- dates of orders placed, changed or reloaded since run_date - attribution_window_days
-- (int_order_dates_to_recompute); other dates cannot have changed.
-- depends_on: {{ ref('int_order_dates_to_recompute') }}
with

dates as (

    {%- if is_incremental() %}
    select order_date from {{ ref('int_order_dates_to_recompute') }}
    {%- else %}
    select distinct order_date from {{ ref('int_orders_as_of') }}
    {%- endif %}

),

orders as (

    -- the dates' valid orders through the index on ordered_at (order_date is its UTC date)
    select orders_as_of.*
    from {{ ref('int_orders_as_of') }} as orders_as_of
    where
        orders_as_of.order_date = any(array(select dates.order_date from dates))
        and orders_as_of.is_valid_order

),

order_codes as (

    select codes.*
    from {{ ref('int_order_discount_codes') }} as codes
    where
        codes.order_date = any(array(select dates.order_date from dates))
        and codes.is_valid_order

),

first_orders as (

    -- is the order its customer's first valid one? one probe per order (index on customer_id)
    select
        orders.order_id,
        not exists (
            select 1 as found from {{ ref('int_orders_as_of') }} as earlier
            where
                earlier.customer_id = orders.customer_id
                and earlier.is_valid_order
                and (earlier.ordered_at, earlier.order_id) < (orders.ordered_at, orders.order_id)
        ) as is_first_order

    from orders
    where orders.order_id in (select order_codes.order_id from order_codes)

),

full_price_days as (

    select
        order_date,
        count(*) as orders_without_discount,
        sum(total_amount) as net_revenue_without_discount

    from orders
    where {{ order_has_discount('discount_amount', 'coupon_code', 'discount_codes') }} = false
    group by order_date

),

per_code as (

    select
        order_codes.order_date,
        order_codes.discount_code,
        -- the code's type; should orders disagree (an edited code), the first by name
        min(order_codes.discount_type) as discount_type,
        count(distinct order_codes.order_id) as orders,
        count(distinct order_codes.customer_id) as customers,
        -- a customer whose first valid order is among the day's orders with the code is new, even
        -- when a second order with the same code follows the same day: each customer counts once
        count(distinct order_codes.customer_id) filter (where first_orders.is_first_order) as new_customers,
        count(distinct order_codes.customer_id)
        - count(distinct order_codes.customer_id) filter (where first_orders.is_first_order) as returning_customers,
        sum(order_codes.total_amount + coalesce(order_codes.discount_amount, 0)) as gross_revenue,
        sum(order_codes.total_amount) as net_revenue,
        sum(order_codes.code_discount_amount) as discount_given

    from order_codes
    inner join first_orders
        on order_codes.order_id = first_orders.order_id
    group by order_codes.order_date, order_codes.discount_code

),

final as (

    select
        per_code.order_date,
        per_code.discount_code,
        per_code.discount_type,
        per_code.orders,
        per_code.customers,
        per_code.new_customers,
        per_code.returning_customers,
        per_code.gross_revenue::numeric(14, 2) as gross_revenue,
        per_code.net_revenue::numeric(14, 2) as net_revenue,
        per_code.discount_given::numeric(14, 2) as discount_given,
        round(per_code.net_revenue / nullif(per_code.orders, 0), 2)::numeric(14, 2) as avg_order_value,
        coalesce(full_price_days.orders_without_discount, 0) as day_orders_without_discount,
        coalesce(full_price_days.net_revenue_without_discount, 0)::numeric(14, 2)
            as day_net_revenue_without_discount,
        round(
            full_price_days.net_revenue_without_discount / nullif(full_price_days.orders_without_discount, 0), 2
        )::numeric(14, 2) as avg_order_value_without_discount

    from per_code
    left join full_price_days
        on per_code.order_date = full_price_days.order_date

)

select * from final
