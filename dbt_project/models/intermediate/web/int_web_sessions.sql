{{
    config(
        materialized='incremental',
        incremental_strategy='delete_insert_by_index',
        unique_key='session_id',
        on_schema_change='append_new_columns',
        pre_hook=[
            "{{ migrate_indexes([{'columns': ['visitor_id', 'session_number']}], [['session_id'], ['visitor_id']]) }}",
            "{% if is_incremental() %}
            delete from {{ this }}
            where
                visitor_id in (select visitor_id from {{ ref('int_web_visitors_to_recompute') }})
                and ended_at >= {{ incremental_since_ts() }}
                - interval '{{ var('web_session_timeout_minutes') | int }} minutes'
            {% else %}select 1{% endif %}",
        ],
        indexes=[
            {'columns': ['visitor_id', 'session_number']},
            {'columns': ['session_date']},
            {'columns': ['customer_id', 'started_at']},
            {'columns': ['ended_at']},
        ]
    )
}}
-- Why one long model: the session rule (CTEs gaps, flagged, numbered: 'a session ends after more
-- than web_session_timeout_minutes without a page view') needs the resume point of each visitor
-- and the restitch needs the stored sessions, both read from this table itself (`this`); dbt
-- lets only the model read its own table (another model would be a cycle; is_incremental() is
-- false in an ephemeral one). Reading order: resume (affected_visitors .. visitor_page_views), the
-- rule (gaps .. numbered), one row per session (ordered .. resessionized), restitch, final.
-- Pre-hook: deletes the sessions of int_web_visitors_to_recompute that a page view of the window
-- can change (ending at most web_session_timeout_minutes before it, or later): a constant range on
-- the index on ended_at, the few sessions of the last days whatever the history (= any(array(...))
-- over the visitors degrades to a linear search per row at 1M).
-- Indexes: session_id by the contract's primary key; (visitor_id, session_number) to resume each
-- visitor after their last session. Tables built by earlier versions get it from migrate_indexes,
-- which also drops their second unique index on session_id and the one on visitor_id alone.
-- One row per web session: a visitor's page views with no gap longer than
-- web_session_timeout_minutes (default 30; a gap of exactly 30 minutes stays in the session).
-- Sessions run across midnight. The visitor's customer (int_web_visitors_identified) is applied to
-- all of the visitor's sessions, also those before the identification.
-- Incremental, bounded by the window: for every visitor with a page view in
-- [run_date - web_lookback_days, run_date], the sessions that a page view of the window can touch
-- (those ending at most web_session_timeout_minutes before the window, or later) are deleted by
-- the pre-hook and rebuilt from the page views after the visitor's last remaining session; their
-- numbers continue after the remaining sessions. Remaining sessions only get the visitor's
-- customer rewritten when the identification changed (delete and insert by session_id). A page view
-- of the window cannot join a session that ended earlier than that, so this equals
-- re-sessionizing the visitor's whole history (tests/test_marts.py: full refresh = day by day).
-- fct_web_sessions publishes it; int_customer_web_activity and the web marts read it here.
-- depends_on: {{ ref('int_web_visitors_to_recompute') }}
with

visitors_identified as (

    select * from {{ ref('int_web_visitors_identified') }}

),

affected_visitors as (

    -- visitors with a page view in the window (all of them on a full build)
    {%- if is_incremental() %}
    select visitor_id from {{ ref('int_web_visitors_to_recompute') }}
    {%- else %}
    select distinct visitor_id from {{ ref('int_web_page_views') }}
    where view_date <= {{ run_date() }}
    {%- endif %}

),

kept_sessions as (

    -- the affected visitors' last session left after the pre-hook (all end before the window can
    -- reach): sessions are numbered 1..n per visitor, so its number is the count kept. One index
    -- probe per visitor on (visitor_id, session_number), not every session of a regular visitor
    {%- if is_incremental() %}
    select
        affected_visitors.visitor_id,
        last_kept.session_number as sessions_kept,
        last_kept.ended_at as kept_until

    from affected_visitors
    cross join lateral (
        select
            previous.session_number,
            previous.ended_at
        from {{ this }} as previous
        where
            previous.visitor_id = affected_visitors.visitor_id
        order by previous.session_number desc
        limit 1
    ) as last_kept
    {%- else %}
    select
        null::text as visitor_id,
        0 as sessions_kept,
        null::timestamptz as kept_until

    where false
    {%- endif %}

),

resume_points as (

    select
        affected_visitors.visitor_id,
        coalesce(kept_sessions.sessions_kept, 0) as sessions_kept,
        coalesce(kept_sessions.kept_until, '-infinity'::timestamptz) as kept_until

    from affected_visitors
    left join kept_sessions
        on affected_visitors.visitor_id = kept_sessions.visitor_id

),

visitor_page_views as (

    -- the page views after the last kept session, per visitor (index on visitor_id, viewed_at)
    select
        page_views_after.*,
        resume_points.sessions_kept

    from resume_points
    cross join lateral (
        select page_views.* from {{ ref('int_web_page_views') }} as page_views
        where
            page_views.visitor_id = resume_points.visitor_id
            and page_views.viewed_at > resume_points.kept_until
        -- offset 0 keeps the subquery a per-visitor index range scan: flattened into a join, the
        -- planner merge-joins the whole page-view table (12 s instead of 0.6 s at 365 days)
        offset 0  -- noqa: AM09
    ) as page_views_after

),

-- the session rule: a gap of more than web_session_timeout_minutes starts a new session
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
        sessions_kept + sum(is_session_start) over (
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

resessionized as (

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

),

restitched as (

    -- remaining sessions of affected visitors whose identification changed in this run
    {%- if is_incremental() %}
    select
        previous.session_id,
        previous.visitor_id,
        previous.session_number,
        reidentified.customer_id,
        reidentified.customer_identified_at,
        previous.started_at,
        previous.ended_at,
        previous.session_date,
        previous.duration_seconds,
        previous.page_views,
        previous.unique_pages,
        previous.landing_path,
        previous.exit_path,
        previous.referrer,
        previous.referrer_host,
        previous.utm_source,
        previous.utm_medium,
        previous.utm_campaign,
        previous.orders,
        previous.has_order,
        previous.is_first_session,
        previous.is_bounce,
        previous.is_engaged

    from (
        -- only visitors int_web_visitors_identified re-derived (an identifying page view in the
        -- window) can have a new identification. A visitor's sessions all carry the same one, so
        -- their last remaining session tells whether it changed: one index probe per such visitor
        -- (instead of a scan of every session: 5 s a day at 1M customers, growing with history),
        -- then the sessions of the few that changed, by the index on (visitor_id, session_number)
        select
            identifying.visitor_id,
            identified_now.customer_id,
            identified_now.identified_at as customer_identified_at

        from (
            select distinct identifying_views.visitor_id
            from {{ ref('int_web_page_views') }} as identifying_views
            where
                identifying_views.view_date between {{ incremental_since() }} and {{ run_date() }}
                and (identifying_views.customer_token is not null or identifying_views.order_id is not null)
        ) as identifying
        cross join lateral (
            select
                last_session.customer_id,
                last_session.customer_identified_at
            from {{ this }} as last_session
            where last_session.visitor_id = identifying.visitor_id
            order by last_session.session_number desc
            limit 1
        ) as stored
        left join {{ ref('int_web_visitors_identified') }} as identified_now
            on identifying.visitor_id = identified_now.visitor_id
        where
            stored.customer_id is distinct from identified_now.customer_id
            or stored.customer_identified_at is distinct from identified_now.identified_at
    ) as reidentified
    cross join lateral (
        select sessions_of_visitor.* from {{ this }} as sessions_of_visitor
        where sessions_of_visitor.visitor_id = reidentified.visitor_id
        offset 0  -- noqa: AM09
    ) as previous
    {%- else %}
    select * from resessionized
    where false
    {%- endif %}

),

final as (

    select * from resessionized
    union all
    select * from restitched

)

select * from final
{%- if not is_incremental() %}
-- a full build lays the sessions out by day, as the daily runs append them, not grouped by visitor
-- (the window order): the daily reads by session_date and ended_at then touch the pages of those
-- days, not a page per session all over the table
order by session_date
{%- endif %}
