{{
    config(
        indexes=[
            {'columns': ['email']},
            {'columns': ['lifecycle_stage']},
        ]
    )
}}
-- Why over 150 lines: one job (assemble the customer dimension); the length is its column list
-- (the contract's 50-odd columns from seven per-customer inputs), each computed once.
-- (customer_id is indexed by the contract's primary key.)
-- One row per customer as of the end of run_date. Rebuilt every day (everything relative to
-- run_date changes daily for every customer), but only from per-customer inputs and bounded
-- windows: lifetime order facts come from a table that is incremental per customer
-- (int_customer_orders_summarized), the 365-day order figures and the web activity (last seen,
-- 30/90-day sessions) from tables kept up to date per customer (int_customer_order_windows,
-- int_customer_web_activity); the 90-day e-mail figures read only their window (indexed by date);
-- p_alive, clv_12m and churn_risk are the run date's forecast (ecrm.predict runs before the dbt
-- invocation that builds this model and everything after it: docs/predictions.md).
with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

customer_orders as (

    select * from {{ ref('int_customer_orders_summarized') }}

),

email_flags as (

    select * from {{ ref('int_customer_email_flags') }}

),

email_engagement as (

    select * from {{ ref('int_customer_email_engagement') }}

),

web_activity as (

    select * from {{ ref('int_customer_web_activity') }}

),

orders_last_365d as (

    select * from {{ ref('int_customer_order_windows') }}

),

predictions as (

    select * from {{ ref('stg_predictions__customer_predictions') }}
    where snapshot_date = {{ run_date() }}

),

loyalty as (

    select * from {{ ref('int_customer_loyalty') }}

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
        least(customers.signed_up_at, customer_orders.first_placed_at) as customer_since_at,
        coalesce(customer_orders.order_count, 0) as order_count,
        coalesce(customer_orders.valid_order_count, 0) as valid_order_count,
        coalesce(customer_orders.cancelled_order_count, 0) as cancelled_order_count,
        coalesce(customer_orders.refunded_order_count, 0) as refunded_order_count,
        coalesce(customer_orders.gross_revenue, 0)::numeric(14, 2) as gross_revenue,
        coalesce(customer_orders.refunded_revenue, 0)::numeric(14, 2) as refunded_revenue,
        coalesce(customer_orders.net_revenue, 0)::numeric(14, 2) as net_revenue,
        coalesce(customer_orders.discounted_order_count, 0) as discounted_order_count,
        coalesce(customer_orders.coupon_order_count, 0) as coupon_order_count,
        coalesce(customer_orders.discount_amount, 0)::numeric(14, 2) as discount_amount,
        coalesce(customer_orders.discount_known_order_count, 0) as discount_known_order_count,
        coalesce(customer_orders.any_discount_order_count, 0) as any_discount_order_count,
        customer_orders.favourite_category,
        coalesce(orders_last_365d.orders_365d, 0) as orders_365d,
        coalesce(orders_last_365d.revenue_365d, 0)::numeric(14, 2) as revenue_365d,
        coalesce(web_activity.web_sessions_30d, 0) as web_sessions_30d,
        coalesce(web_activity.web_sessions_90d, 0) as web_sessions_90d,
        web_activity.last_seen_at,
        coalesce(email_engagement.emails_delivered, 0) as emails_delivered_90d,
        coalesce(email_engagement.human_opens, 0) as human_opens_90d,
        coalesce(email_engagement.clicks, 0) as clicks_90d,
        email_engagement.last_human_open_at,
        email_engagement.last_click_at,
        email_flags.first_unsubscribed_at is not null as has_unsubscribed,
        email_flags.first_hard_bounced_at is not null as has_hard_bounced,
        email_flags.first_complained_at is not null as has_complained,
        predictions.p_alive,
        predictions.clv_12m,
        predictions.churn_risk,
        loyalty.customer_id is not null as is_loyalty_member,
        loyalty.tier as loyalty_tier,
        loyalty.points_balance as loyalty_points_balance,
        loyalty.points_value as loyalty_points_value,
        loyalty.last_redeemed_at as last_loyalty_reward_at

    from customers
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id
    left join email_flags
        on customers.customer_id = email_flags.customer_id
    left join email_engagement
        on customers.customer_id = email_engagement.customer_id
    left join web_activity
        on customers.customer_id = web_activity.customer_id
    left join orders_last_365d
        on customers.customer_id = orders_last_365d.customer_id
    left join predictions
        on customers.customer_id = predictions.customer_id
    left join loyalty
        on customers.customer_id = loyalty.customer_id
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
        {{ run_date() }} - {{ utc_date('customer_since_at') }} as tenure_days,
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
            when days_since_last_order > {{ var('lifecycle_lost_days') | int }} then 'lost'
            when days_since_last_order > {{ var('lifecycle_lapsed_days') | int }} then 'lapsed'
            when days_since_last_order > {{ var('lifecycle_active_days') | int }} then 'at_risk'
            when valid_order_count = 1 then 'new'
            else 'active'
        end as lifecycle_stage,
        {{ run_date() }} as as_of_date,
        customer_since_at,
        tenure_days,
        round(net_revenue / nullif(valid_order_count, 0), 2)::numeric(14, 2) as avg_order_value,
        discounted_order_count,
        coupon_order_count,
        coupon_order_count > 0 as has_used_coupon,
        discount_amount,
        discount_known_order_count,
        any_discount_order_count,
        round(
            any_discount_order_count::numeric / nullif(discount_known_order_count, 0), 6
        )::numeric(12, 6) as discount_order_share,
        discount_known_order_count >= {{ var('full_price_min_orders') | int }}
        and any_discount_order_count = 0 as is_full_price_buyer,
        favourite_category,
        orders_365d,
        revenue_365d,
        web_sessions_30d,
        web_sessions_90d,
        last_seen_at,
        emails_delivered_90d,
        human_opens_90d,
        clicks_90d,
        last_human_open_at,
        last_click_at,
        p_alive,
        clv_12m,
        churn_risk,
        is_loyalty_member,
        loyalty_tier,
        loyalty_points_balance,
        loyalty_points_value,
        last_loyalty_reward_at

    from derived

)

select * from final
