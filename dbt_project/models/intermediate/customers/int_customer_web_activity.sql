{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['customer_id'], 'unique': true}],
        pre_hook="{{ delete_customers_with_changed_sessions() }}"
    )
}}
-- When each identified customer was last seen on the site, as of the end of run_date. Only sessions
-- of visitors identified before the as-of moment count, so rebuilding a past day ignores later
-- stitching. Incremental per customer: a customer's sessions change only when one of their visitors
-- has a page view in [run_date - web_lookback_days, ...) (re-sessionized) or was identified since
-- then; those customers are recomputed from their sessions (index on fct_web_sessions.customer_id),
-- the others keep their row. The 30/90-day session counts are windows: dim_customers counts them.
with

sessions as (

    select * from {{ ref('fct_web_sessions') }}

),

customers_to_recompute as (

    {{ customers_with_changed_sessions(ref('int_web_page_views'), ref('int_web_visitors_identified')) }}

),

known_sessions as (

    -- per customer through the index on (customer_id, started_at); offset 0 keeps the planner from
    -- scanning all sessions (it cannot estimate how few customers these are)
    select customer_sessions.*
    from customers_to_recompute
    cross join lateral (
        select sessions.* from sessions
        where
            sessions.customer_id = customers_to_recompute.customer_id
            and sessions.customer_identified_at < {{ as_of_ts() }}
            and sessions.started_at < {{ as_of_ts() }}
        offset 0  -- noqa: AM09
    ) as customer_sessions

),

final as (

    select
        customer_id,
        -- a session still running at the as-of moment counts from its start
        max(
            case when ended_at < {{ as_of_ts() }} then ended_at else started_at end
        ) as last_seen_at

    from known_sessions
    group by customer_id

)

select * from final
