{{
    config(
        materialized='table'
    )
}}
-- E-mail engagement per customer in the last email_engagement_days (default 90) days up to the end
-- of run_date: messages delivered, human opens (machine/privacy-proxy opens excluded) and clicks.
-- An event belongs to the customer of its customer_id custom argument, else to the customer with
-- that address (smallest id when several share it). A table, not a view: dim_customers and the
-- data tests would each re-run the 90-day aggregation. The e-mail events are referenced directly
-- twice (a CTE used twice is materialized without its indexes).
{%- set window_events %}
occurred_at < {{ as_of_ts() }}
        and occurred_at >= {{ as_of_ts() }} - interval '{{ var("email_engagement_days") | int }} days'
        and event_type in ('delivered', 'open', 'click')
{%- endset %}
with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

events_by_argument as (

    -- events of the window that carry their customer_id (the push sets it: nearly all of them)
    select
        customer_id,
        event_type,
        is_machine_open,
        occurred_at

    from {{ ref('stg_esp__email_events') }}
    where
        {{ window_events }}
        and customer_id is not null

),

events_by_address as (

    -- the others belong to the customer with their address
    select
        email,
        event_type,
        is_machine_open,
        occurred_at

    from {{ ref('stg_esp__email_events') }}
    where
        {{ window_events }}
        and customer_id is null

),

customers_by_email as (

    -- several customer records may share an address: the smallest id, deterministically
    select
        email,
        min(customer_id) as customer_id

    from customers
    where email in (select events_by_address.email from events_by_address)
    group by email

),

resolved as (

    select * from events_by_argument
    union all
    select
        customers_by_email.customer_id,
        events_by_address.event_type,
        events_by_address.is_machine_open,
        events_by_address.occurred_at

    from events_by_address
    inner join customers_by_email
        on events_by_address.email = customers_by_email.email

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
