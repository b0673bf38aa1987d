-- Web activity per identified customer as of the end of run_date: sessions started in the last
-- 30 and 90 days and the last time the customer was seen on the site. Only sessions of visitors
-- identified before the as-of moment count, so rebuilding a past day ignores later stitching.
with

sessions as (

    select * from {{ ref('fct_web_sessions') }}

),

known_sessions as (

    select * from sessions
    where
        customer_id is not null
        and customer_identified_at < {{ as_of_ts() }}
        and started_at < {{ as_of_ts() }}

),

final as (

    select
        customer_id,
        count(*) filter (
            where started_at >= {{ as_of_ts() }} - interval '30 days'
        ) as web_sessions_30d,
        count(*) filter (
            where started_at >= {{ as_of_ts() }} - interval '90 days'
        ) as web_sessions_90d,
        -- a session still running at the as-of moment counts from its start
        max(
            case when ended_at < {{ as_of_ts() }} then ended_at else started_at end
        ) as last_seen_at

    from known_sessions
    group by customer_id

)

select * from final
