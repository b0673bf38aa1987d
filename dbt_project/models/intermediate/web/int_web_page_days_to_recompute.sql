-- The days of [run_date - web_lookback_days, run_date] with page views in the log, each with what
-- tells whether it changed since int_web_page_views built it: its count of page-view lines and the
-- loads they came from (loads are numbered upwards; a late or reloaded file is a new load).
-- int_web_page_views recomputes the days whose figures differ from the rows it holds, and always
-- run_date (reruns); re-inserting unchanged days cost most of its time at 365 days of history.
with

requests as (

    select * from {{ ref('stg_web__requests') }}

),

final as (

    select
        {{ utc_date('requested_at') }} as view_date,
        count(*) as page_views,
        sum(load_id) as load_id_sum,
        max(load_id) as last_load_id

    from requests
    where
        requested_at < {{ as_of_ts() }}
        and requested_at >= {{ lookback_since_ts() }}
        and {{ is_page_view() }}
    group by 1

)

select * from final
