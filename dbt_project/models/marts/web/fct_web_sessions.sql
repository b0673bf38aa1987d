{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='visitor_id',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['session_id'], 'unique': true},
            {'columns': ['session_date']},
            {'columns': ['visitor_id']},
            {'columns': ['customer_id', 'started_at']},
        ]
    )
}}
-- One row per web session: a visitor's page views with no gap longer than
-- web_session_timeout_minutes (default 30; a gap of exactly 30 minutes stays in the session).
-- Sessions run across midnight. The visitor's customer (int_web_visitors_identified) is applied to
-- all of the visitor's sessions, also those before the identification. Incremental like the dbt
-- Segment package: every visitor with a page view in the lookback window is re-sessionized from
-- their whole history and replaces all of their rows (delete+insert on visitor_id).
with

page_views as (

    select * from {{ ref('int_web_page_views') }}

),

visitors_identified as (

    select * from {{ ref('int_web_visitors_identified') }}

),

affected_visitors as (

    -- visitors with a page view in the window (all of them on a full build)
    select distinct visitor_id from page_views
    where view_date between {{ incremental_since() }} and {{ run_date() }}

),

visitor_page_views as (

    select page_views.* from page_views
    inner join affected_visitors
        on page_views.visitor_id = affected_visitors.visitor_id

),

gaps as (

    select
        *,
        lag(viewed_at) over (
            partition by visitor_id order by viewed_at asc, page_view_id asc
        ) as previous_viewed_at

    from visitor_page_views

),

flagged as (

    select
        *,
        case
            when previous_viewed_at is null then 1
            when
                viewed_at - previous_viewed_at
                > interval '{{ var("web_session_timeout_minutes") | int }} minutes'
                then 1
            else 0
        end as is_session_start

    from gaps

),

numbered as (

    select
        *,
        sum(is_session_start) over (
            partition by visitor_id
            order by viewed_at asc, page_view_id asc
            rows between unbounded preceding and current row
        ) as session_number

    from flagged

),

ordered as (

    select
        *,
        row_number() over (
            partition by visitor_id, session_number
            order by viewed_at asc, page_view_id asc
        ) as view_in_session,
        row_number() over (
            partition by visitor_id, session_number
            order by viewed_at desc, page_view_id desc
        ) as view_from_end

    from numbered

),

sessions as (

    select
        visitor_id,
        session_number,
        min(viewed_at) as started_at,
        max(viewed_at) as ended_at,
        count(*) as page_views,
        count(distinct path) as unique_pages,
        count(distinct order_id) as orders,
        max(page_view_id) filter (where view_in_session = 1) as first_page_view_id,
        max(path) filter (where view_in_session = 1) as landing_path,
        max(path) filter (where view_from_end = 1) as exit_path,
        max(referrer) filter (where view_in_session = 1) as referrer,
        max(referrer_host) filter (where view_in_session = 1) as referrer_host,
        max(utm_source) filter (where view_in_session = 1) as utm_source,
        max(utm_medium) filter (where view_in_session = 1) as utm_medium,
        max(utm_campaign) filter (where view_in_session = 1) as utm_campaign

    from ordered
    group by visitor_id, session_number

),

final as (

    select
        md5(sessions.visitor_id || '|' || sessions.first_page_view_id) as session_id,
        sessions.visitor_id,
        sessions.session_number::integer as session_number,
        visitors_identified.customer_id,
        visitors_identified.identified_at as customer_identified_at,
        sessions.started_at,
        sessions.ended_at,
        {{ utc_date('sessions.started_at') }} as session_date,
        extract(epoch from sessions.ended_at - sessions.started_at)::integer as duration_seconds,
        sessions.page_views,
        sessions.unique_pages,
        sessions.landing_path,
        sessions.exit_path,
        sessions.referrer,
        sessions.referrer_host,
        sessions.utm_source,
        sessions.utm_medium,
        sessions.utm_campaign,
        sessions.orders,
        sessions.orders > 0 as has_order,
        sessions.session_number = 1 as is_first_session,
        sessions.page_views = 1 as is_bounce,
        (
            sessions.page_views >= 2
            or sessions.ended_at - sessions.started_at
            >= interval '{{ var("web_engaged_seconds") | int }} seconds'
            or sessions.orders > 0
        ) as is_engaged

    from sessions
    left join visitors_identified
        on sessions.visitor_id = visitors_identified.visitor_id

)

select * from final
