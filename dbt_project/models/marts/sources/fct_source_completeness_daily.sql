{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['source', 'day'],
        on_schema_change='append_new_columns'
    )
}}
-- One row per event source (web_logs, email_events) and UTC day: is the day complete in the
-- warehouse, or may more of its lines still arrive? Files never line up with UTC days: the web log
-- is rotated at 06:25 shop time, the ESP export runs at 02:00 UTC, so on run date D the newest day
-- holds only its first hours (ecrm.simulate.delivery). A day is complete when
--   covered:          the source's first folder is not later than the day, and a line stamped at
--                     or after the day's end is loaded (a later file has covered its end), or
--   lookback_passed:  a folder later than day + lookback has been loaded: no line of the day can
--                     load any more (the loader quarantines it as too_late), so what is there is all.
-- Otherwise it is partial: not_yet_covered (lines until covered_until only), or
-- history_begins_mid_day (a day before the source's first folder: the first file holds only its
-- last hours, the day is never whole).
-- Cheap: the first and last timestamps come from the raw tables' timestamp indexes (partitioned
-- by day), the latest folder from the load ledger; each run rewrites the days from run_date -
-- (largest lookback + 1), plus any older day still partial, a few rows per source.
with

source_bounds as (

    select
        'web_logs'::text as source,
        {{ var('web_lookback_days') }}::integer as lookback_days,
        (select min(requested_at) from {{ source('web', 'web_requests') }}) as first_line_at,
        (select max(requested_at) from {{ source('web', 'web_requests') }}) as last_line_at

    union all

    select
        'email_events'::text,
        {{ var('email_lookback_days') }}::integer,
        (select min(occurred_at) from {{ source('esp', 'email_events') }}),
        (select max(occurred_at) from {{ source('esp', 'email_events') }})

),

latest_folders as (

    -- the first and the newest day folder loaded per source, up to run_date (a folder is a day of
    -- files; folder D's file holds the start of day D, whichever way it is cut)
    select
        source,
        min((interval_start at time zone 'UTC')::date) as first_folder_day,
        max((interval_start at time zone 'UTC')::date) as latest_folder_day
    from {{ source('ops', 'load_ledger') }}
    where status = 'succeeded'
        and source in ('web_logs', 'email_events')
        and interval_start < ({{ run_date() }} + 1)::timestamp at time zone 'UTC'
    group by source

),

bounds as (

    select
        b.source,
        b.lookback_days,
        b.first_line_at,
        b.last_line_at,
        f.latest_folder_day,
        coalesce(f.first_folder_day, (b.first_line_at at time zone 'UTC')::date) as first_folder_day,
        -- a source with folders but no line yet (no e-mail sent so far) has days too, all partial
        least((b.first_line_at at time zone 'UTC')::date, f.first_folder_day) as first_day,
        {% if is_incremental() -%}
        least(
            {{ run_date() }} - ({{ [var('web_lookback_days'), var('email_lookback_days')] | max }} + 1),
            (select min(t.day) from {{ this }} as t
             where t.source = b.source and not t.complete and t.reason <> 'history_begins_mid_day')
        ) as since
        {%- else -%}
        cast('1900-01-01' as date) as since
        {%- endif %}
    from source_bounds as b
    left join latest_folders as f on f.source = b.source
    where b.first_line_at is not null or f.first_folder_day is not null

),

days as (

    select
        bounds.*,
        d::date as day,
        d::date::timestamp at time zone 'UTC' as day_start,
        (d::date + 1)::timestamp at time zone 'UTC' as day_end
    from bounds
    cross join lateral generate_series(greatest(bounds.first_day, bounds.since), {{ run_date() }}, interval '1 day') as d

),

final as (

    select
        source,
        day,
        case
            when day < first_folder_day then 'history_begins_mid_day'
            when last_line_at >= day_end then 'covered'
            when latest_folder_day > day + lookback_days then 'lookback_passed'
            else 'not_yet_covered'
        end as reason,
        case when first_line_at < day_end then greatest(day_start, first_line_at) end as covered_from,
        case when last_line_at >= day_start then least(day_end, last_line_at) end as covered_until,
        lookback_days,
        latest_folder_day
    from days

)

select
    source,
    day,
    reason in ('covered', 'lookback_passed') as complete,
    reason,
    covered_from,
    covered_until,
    lookback_days,
    latest_folder_day
from final
