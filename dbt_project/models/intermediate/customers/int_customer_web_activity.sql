{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['customer_id'], 'unique': true},
            {'columns': ['computed_for_date']},
        ],
        pre_hook="{{ delete_customers_to_recompute(var('web_lookback_days'), ref('int_web_customers_to_recompute'), by_window_day=true) }}"
    )
}}
-- Per identified customer, as of the end of run_date: when they were last seen on the site and
-- their sessions in the last 30 and 90 days. Only sessions of visitors identified before the as-of
-- moment count, so rebuilding a past day ignores later stitching. Kept up to date per customer
-- (macros/per_customer_windows.sql): a run recomputes the customers whose sessions can have changed
-- since run_date - web_lookback_days (a page view of one of their visitors since then, or a visitor
-- identified since then) or left a window since then, each from its own sessions (index on
-- int_web_sessions (customer_id, started_at); int_web_customers_to_recompute lists them); the
-- others keep their row. Counting the windows in
-- dim_customers every day read 90 days of sessions (3x more once history fills them).
-- depends_on: {{ ref('int_web_customers_to_recompute') }}
with

sessions as (

    select * from {{ ref('int_web_sessions') }}

),

{% if recompute_all_customers(var('web_lookback_days')) -%}
known_sessions as (

    -- every identified customer: one pass over the sessions, hash-aggregated (customer_id || '':
    -- grouped by customer_id PostgreSQL walks the index, one random heap read per session)
    select
        customer_id || '' as customer_id,
        started_at,
        ended_at

    from sessions
    where
        customer_id is not null
        and customer_identified_at < {{ as_of_ts() }}
        and started_at < {{ as_of_ts() }}

),
{%- else -%}
customers_to_recompute as (

    {{ customers_to_recompute(ref('int_web_customers_to_recompute'), by_window_day=true) }}

),

known_sessions as (

    -- per customer through the index on (customer_id, started_at); offset 0 keeps the planner from
    -- scanning all sessions (it cannot estimate how few customers these are)
    select customer_sessions.*
    from customers_to_recompute
    cross join lateral (
        select
            sessions.customer_id,
            sessions.started_at,
            sessions.ended_at
        from sessions
        where
            sessions.customer_id = customers_to_recompute.customer_id
            and sessions.customer_identified_at < {{ as_of_ts() }}
            and sessions.started_at < {{ as_of_ts() }}
        offset 0  -- noqa: AM09
    ) as customer_sessions

),
{%- endif %}

final as (

    select
        customer_id,
        -- a session still running at the as-of moment counts from its start
        max(
            case when ended_at < {{ as_of_ts() }} then ended_at else started_at end
        ) as last_seen_at,
        count(*) filter (
            where started_at >= {{ as_of_ts() }} - interval '30 days'
        ) as web_sessions_30d,
        count(*) filter (
            where started_at >= {{ as_of_ts() }} - interval '90 days'
        ) as web_sessions_90d,
        {{ run_date() }} as computed_for_date

    from known_sessions
    group by customer_id

)

select * from final
