{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_days_to_rebuild('view_date') }}",
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['view_date', 'page_rank']}]
    )
}}
-- One row per day and page path: page views, unique visitors, entrances (sessions landing there)
-- and exits, with the page's rank of the day (1 = most viewed; ties by path). "Top pages" is
-- `where page_rank <= 10`. Incremental: the lookback days are recomputed.
with

page_views as (

    select * from {{ ref('int_web_page_views') }}

),

sessions as (

    select * from {{ ref('int_web_sessions') }}

),

days_views as (

    select * from page_views
    where view_date between {{ incremental_since() }} and {{ run_date() }}

),

days_sessions as (

    -- one day more: a session that started the day before the window may exit inside it
    select * from sessions
    where session_date between {{ incremental_since() }} - 1 and {{ run_date() }}

),

views_per_page as (

    select
        view_date,
        path,
        count(*) as page_views,
        count(distinct visitor_id) as unique_visitors

    from days_views
    group by view_date, path

),

landings as (

    select
        session_date as view_date,
        landing_path,
        count(*) as entrances

    from days_sessions
    group by session_date, landing_path

),

session_exits as (

    select
        {{ utc_date('ended_at') }} as view_date,
        exit_path,
        count(*) as exits

    from days_sessions
    group by {{ utc_date('ended_at') }}, exit_path

),

final as (

    select
        views_per_page.view_date,
        views_per_page.path,
        views_per_page.page_views,
        views_per_page.unique_visitors,
        coalesce(landings.entrances, 0) as entrances,
        coalesce(session_exits.exits, 0) as exits,
        row_number() over (
            partition by views_per_page.view_date
            order by views_per_page.page_views desc, views_per_page.path asc
        )::integer as page_rank

    from views_per_page
    left join landings
        on
            views_per_page.view_date = landings.view_date
            and views_per_page.path = landings.landing_path
    left join session_exits
        on
            views_per_page.view_date = session_exits.view_date
            and views_per_page.path = session_exits.exit_path

),

completeness as (

    select
        event_date,
        complete
    from {{ ref('fct_source_completeness_daily') }}
    where source = 'web_logs'

)

-- is_complete_day: the web log holds the whole day (marts.fct_source_completeness_daily)
select
    final.*,
    coalesce(completeness.complete, false) as is_complete_day
from final
left join completeness on final.view_date = completeness.event_date
