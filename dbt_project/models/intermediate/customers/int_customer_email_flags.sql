{{
    config(
        materialized='incremental',
        incremental_strategy='delete_insert_by_index',
        unique_key='customer_id',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['customer_id'], 'unique': true}]
    )
}}
-- Suppression-relevant ESP events up to the end of run_date, per customer. An event belongs to a
-- customer through its customer_id custom argument or through the (normalized) e-mail address:
-- suppression is about the address, whichever customer record it came from.
-- Incremental per customer: the flags are first occurrences, so a run reads only the events since
-- run_date - attribution_window_days (index on occurred_at) and, for the customers they belong to,
-- combines them with the stored first occurrences before that day (stored ones from that day on,
-- e.g. after run_date when a past day is rebuilt, are dropped). Like the campaign facts, an event
-- that arrives more than attribution_window_days late is only applied by a --full-refresh.
{%- set since_ts = incremental_since_ts(var('attribution_window_days')) %}
with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

email_events as (

    select * from {{ ref('stg_esp__email_events') }}

),

suppression_events as (

    -- since the window start, also after run_date: their customers are recomputed
    select
        event_id,
        event_type,
        email,
        customer_id,
        occurred_at,
        is_hard_bounce

    from email_events
    where
        occurred_at >= {{ since_ts }}
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

recent as (

    select
        customer_id,
        min(occurred_at) filter (
            where event_type = 'unsubscribe' and occurred_at < {{ as_of_ts() }}
        ) as first_unsubscribed_at,
        min(occurred_at) filter (
            where is_hard_bounce and occurred_at < {{ as_of_ts() }}
        ) as first_hard_bounced_at,
        min(occurred_at) filter (
            where event_type = 'spamreport' and occurred_at < {{ as_of_ts() }}
        ) as first_complained_at

    from matched
    group by customer_id

),

previous as (

    -- what the table holds for those customers, from before the window start only
    {%- if is_incremental() %}
    select
        customer_id,
        case when first_unsubscribed_at < {{ since_ts }} then first_unsubscribed_at end
            as first_unsubscribed_at,
        case when first_hard_bounced_at < {{ since_ts }} then first_hard_bounced_at end
            as first_hard_bounced_at,
        case when first_complained_at < {{ since_ts }} then first_complained_at end
            as first_complained_at

    from {{ this }}
    where customer_id in (select recent.customer_id from recent)
    {%- else %}
    select * from recent
    where false
    {%- endif %}

),

final as (

    -- least() ignores nulls; a customer whose stored flags all lie in the future of run_date keeps
    -- a row of nulls (no flag), which reads the same as no row
    select
        recent.customer_id,
        least(previous.first_unsubscribed_at, recent.first_unsubscribed_at) as first_unsubscribed_at,
        least(previous.first_hard_bounced_at, recent.first_hard_bounced_at) as first_hard_bounced_at,
        least(previous.first_complained_at, recent.first_complained_at) as first_complained_at

    from recent
    left join previous
        on recent.customer_id = previous.customer_id

)

select * from final
