-- Customers whose web activity (int_customer_web_activity) can have changed since
-- run_date - web_lookback_days, with `left_window_on`:
-- - null: their sessions changed: identified customers of visitors with a page view since then
--   (re-sessionized by int_web_sessions) or identified since then (also later: a rebuilt past day
--   drops them);
-- - a day: one of their sessions left the 30- or 90-day window on it (a window as of day d holds
--   the sessions started on d - 29 or later). The days after the table's last computed day count
--   (macros/per_customer_windows.sql); listed back to the oldest such day a daily run can have
--   (run_date - web_lookback_days - 1, else every customer is recomputed), index on session_date.
{%- set oldest_last_day = lookback_since(var('web_lookback_days') | int + 1) %}
with

-- each part reads its relation itself (a CTE read twice would be materialized: every row)
customers_viewed as (

    select visitors_identified.customer_id
    from {{ ref('int_web_visitors_identified') }} as visitors_identified
    where visitors_identified.visitor_id in (
        select page_views.visitor_id from {{ ref('int_web_page_views') }} as page_views
        where page_views.view_date >= {{ lookback_since() }}
    )

),

customers_identified as (

    select customer_id from {{ ref('int_web_visitors_identified') }}
    where identified_at >= {{ lookback_since_ts() }}

),

sessions_left_30d as (

    select
        customer_id,
        session_date + 30 as left_window_on

    from {{ ref('int_web_sessions') }}
    where
        customer_id is not null
        and session_date between {{ oldest_last_day }} - 29 and {{ run_date() }} - 30

),

sessions_left_90d as (

    select
        customer_id,
        session_date + 90 as left_window_on

    from {{ ref('int_web_sessions') }}
    where
        customer_id is not null
        and session_date between {{ oldest_last_day }} - 89 and {{ run_date() }} - 90

),

final as (

    select
        customer_id,
        null::date as left_window_on
    from customers_viewed
    union
    select
        customer_id,
        null::date as left_window_on
    from customers_identified
    union
    select
        customer_id,
        left_window_on
    from sessions_left_30d
    union
    select
        customer_id,
        left_window_on
    from sessions_left_90d

)

select * from final
