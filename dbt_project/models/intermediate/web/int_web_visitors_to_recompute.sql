-- Visitors with a page view in [run_date - web_lookback_days, run_date]: int_web_sessions
-- re-sessionizes their recent sessions on an incremental run.
with

page_views as (

    select * from {{ ref('int_web_page_views') }}

),

final as (

    select distinct visitor_id from page_views
    where view_date between {{ lookback_since() }} and {{ run_date() }}

)

select * from final
