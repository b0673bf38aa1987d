{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_days_to_rebuild('kpi_date') }}",
        on_schema_change='append_new_columns'
    )
}}
-- One row per day (the UTC date a session started): sessions, visitors (new vs returning), depth,
-- bounce, engagement and session -> order conversion, each rate with its numerator and
-- denominator. Incremental: the days [run_date - web_lookback_days, run_date] are recomputed,
-- so sessions that ran past midnight and late log lines are complete after the lookback.
with

sessions as (

    select * from {{ ref('int_web_sessions') }}

),

days as (

    select * from sessions
    where session_date between {{ incremental_since() }} and {{ run_date() }}

),

aggregated as (

    select
        session_date as kpi_date,
        count(*) as sessions,
        count(distinct visitor_id) as visitors,
        count(distinct visitor_id) filter (where is_first_session) as new_visitors,
        sum(page_views) as page_views,
        count(*) filter (where is_bounce) as bounced_sessions,
        count(*) filter (where is_engaged) as engaged_sessions,
        count(*) filter (where has_order) as converting_sessions,
        sum(orders) as session_orders,
        sum(duration_seconds) as total_duration_seconds

    from days
    group by session_date

),

final as (

    select
        kpi_date,
        sessions,
        visitors,
        new_visitors,
        visitors - new_visitors as returning_visitors,
        page_views::bigint as page_views,
        round(page_views::numeric / nullif(sessions, 0), 6)::numeric(12, 6) as pages_per_session,
        bounced_sessions,
        round(bounced_sessions::numeric / nullif(sessions, 0), 6)::numeric(12, 6) as bounce_rate,
        engaged_sessions,
        round(engaged_sessions::numeric / nullif(sessions, 0), 6)::numeric(12, 6) as engagement_rate,
        converting_sessions,
        round(converting_sessions::numeric / nullif(sessions, 0), 6)::numeric(12, 6) as session_conversion_rate,
        session_orders::bigint as session_orders,
        total_duration_seconds::bigint as total_duration_seconds,
        round(total_duration_seconds::numeric / nullif(sessions, 0), 2)::numeric(12, 2)
            as avg_session_duration_seconds

    from aggregated

),

completeness as (

    select
        event_date,
        complete
    from {{ ref('fct_source_completeness_daily') }}
    where source = 'web_logs'

)

-- is_complete_day: the web log holds the whole day (marts.fct_source_completeness_daily), false on
-- the run date until the next rotated file arrives; dashboards and metrics filter on it
select
    final.*,
    coalesce(completeness.complete, false) as is_complete_day
from final
left join completeness on final.kpi_date = completeness.event_date
