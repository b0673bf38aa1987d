{{
    config(
        materialized='table'
    )
}}
-- E-mail engagement per customer in the last email_engagement_days (default 90) days up to the end
-- of run_date: messages delivered, human opens (machine/privacy-proxy opens excluded) and clicks.
-- An event belongs to the customer of its customer_id custom argument, else to the customer with
-- that address (smallest id when several share it). A table, not a view: dim_customers and the
-- data tests would each re-run the 90-day aggregation.
with

email_events as (

    select * from {{ ref('stg_esp__email_events') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

customers_by_email as (

    select
        email,
        min(customer_id) as customer_id

    from customers
    group by email

),

recent_events as (

    select * from email_events
    where
        occurred_at < {{ as_of_ts() }}
        and occurred_at >= {{ as_of_ts() }} - interval '{{ var("email_engagement_days") | int }} days'
        and event_type in ('delivered', 'open', 'click')

),

resolved as (

    select
        coalesce(recent_events.customer_id, customers_by_email.customer_id) as customer_id,
        recent_events.event_type,
        recent_events.is_machine_open,
        recent_events.occurred_at

    from recent_events
    left join customers_by_email
        on recent_events.email = customers_by_email.email

),

final as (

    select
        customer_id,
        count(*) filter (where event_type = 'delivered') as emails_delivered,
        count(*) filter (where event_type = 'open' and not is_machine_open) as human_opens,
        count(*) filter (where event_type = 'click') as clicks,
        max(occurred_at) filter (
            where event_type = 'open' and not is_machine_open
        ) as last_human_open_at,
        max(occurred_at) filter (where event_type = 'click') as last_click_at

    from resolved
    where customer_id is not null
    group by customer_id

)

select * from final
