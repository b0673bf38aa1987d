-- Suppression-relevant ESP events up to the end of run_date, per customer. An event belongs to a
-- customer through its customer_id custom argument or through the (normalized) e-mail address:
-- suppression is about the address, whichever customer record it came from.
with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

email_events as (

    select * from {{ ref('stg_esp__email_events') }}

),

suppression_events as (

    select
        event_id,
        event_type,
        email,
        customer_id,
        occurred_at,
        is_hard_bounce

    from email_events
    where
        occurred_at < {{ as_of_ts() }}
        and (
            event_type in ('unsubscribe', 'spamreport')
            or is_hard_bounce
        )

),

matched_by_id as (

    select
        customers.customer_id,
        suppression_events.event_id,
        suppression_events.event_type,
        suppression_events.occurred_at,
        suppression_events.is_hard_bounce

    from suppression_events
    inner join customers
        on suppression_events.customer_id = customers.customer_id

),

matched_by_email as (

    select
        customers.customer_id,
        suppression_events.event_id,
        suppression_events.event_type,
        suppression_events.occurred_at,
        suppression_events.is_hard_bounce

    from suppression_events
    inner join customers
        on suppression_events.email = customers.email

),

matched as (

    select * from matched_by_id
    union
    select * from matched_by_email

),

final as (

    select
        customer_id,
        min(occurred_at) filter (
            where event_type = 'unsubscribe'
        ) as first_unsubscribed_at,
        min(occurred_at) filter (where is_hard_bounce) as first_hard_bounced_at,
        min(occurred_at) filter (
            where event_type = 'spamreport'
        ) as first_complained_at

    from matched
    group by customer_id

)

select * from final
