-- One row per customer as of the end of run_date.
with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

email_flags as (

    select * from {{ ref('int_customer_email_flags') }}

),

customer_orders as (

    select
        customer_id,
        count(*) as order_count,
        count(*) filter (where is_valid_order) as valid_order_count,
        count(*) filter (where is_cancelled) as cancelled_order_count,
        count(*) filter (where is_refunded) as refunded_order_count,
        min(ordered_at) filter (where is_valid_order) as first_order_at,
        max(ordered_at) filter (where is_valid_order) as last_order_at,
        coalesce(
            sum(total_amount) filter (where not is_cancelled), 0
        ) as gross_revenue,
        coalesce(sum(total_amount) filter (where is_refunded), 0) as refunded_revenue,
        coalesce(sum(total_amount) filter (where is_valid_order), 0) as net_revenue

    from orders
    group by customer_id

),

joined as (

    select
        customers.customer_id,
        customers.email,
        customers.first_name,
        customers.country,
        customers.signed_up_at,
        customers.accepts_marketing,
        customers.is_valid_email,
        customer_orders.first_order_at,
        customer_orders.last_order_at,
        coalesce(customer_orders.order_count, 0) as order_count,
        coalesce(customer_orders.valid_order_count, 0) as valid_order_count,
        coalesce(customer_orders.cancelled_order_count, 0) as cancelled_order_count,
        coalesce(customer_orders.refunded_order_count, 0) as refunded_order_count,
        coalesce(customer_orders.gross_revenue, 0)::numeric(14, 2) as gross_revenue,
        coalesce(customer_orders.refunded_revenue, 0)::numeric(14, 2) as refunded_revenue,
        coalesce(customer_orders.net_revenue, 0)::numeric(14, 2) as net_revenue,
        email_flags.first_unsubscribed_at is not null as has_unsubscribed,
        email_flags.first_hard_bounced_at is not null as has_hard_bounced,
        email_flags.first_complained_at is not null as has_complained

    from customers
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id
    left join email_flags
        on customers.customer_id = email_flags.customer_id
    -- customers who exist as of run_date (signed up, or already ordered as a guest)
    where
        customers.signed_up_at < {{ as_of_ts() }}
        or customer_orders.customer_id is not null

),

derived as (

    select
        *,
        valid_order_count >= 2 as is_repeat_buyer,
        {{ run_date() }} - {{ utc_date('last_order_at') }} as days_since_last_order,
        (has_unsubscribed or has_hard_bounced or has_complained) as is_suppressed,
        {{ is_holdout('customer_id') }} as is_holdout

    from joined

),

final as (

    select
        customer_id,
        email,
        first_name,
        country,
        signed_up_at,
        accepts_marketing,
        is_valid_email,
        first_order_at,
        last_order_at,
        order_count,
        valid_order_count,
        cancelled_order_count,
        refunded_order_count,
        gross_revenue,
        refunded_revenue,
        net_revenue,
        is_repeat_buyer,
        days_since_last_order,
        has_unsubscribed,
        has_hard_bounced,
        has_complained,
        is_suppressed,
        is_holdout,
        (
            accepts_marketing and is_valid_email and not is_suppressed
        ) as is_contactable,
        case
            when last_order_at is null then 'prospect'
            when days_since_last_order > {{ var('lifecycle_lapsed_days') | int }} then 'lapsed'
            when days_since_last_order > {{ var('lifecycle_active_days') | int }} then 'at_risk'
            when valid_order_count = 1 then 'new'
            else 'active'
        end as lifecycle_stage,
        {{ run_date() }} as as_of_date

    from derived

)

select * from final
