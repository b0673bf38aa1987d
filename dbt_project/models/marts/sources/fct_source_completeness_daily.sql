{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['source', 'event_date'],
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

    -- min/max over the timestamp index of each day partition: no scan of the lines
    select
        'web_logs'::text as source,  -- noqa: RF04
        {{ var('web_lookback_days') }}::integer as lookback_days,
        min(requested_at) as first_line_at,
        max(requested_at) as last_line_at
    from {{ source('web', 'web_requests') }}

    union all

    select
        'email_events'::text as source,  -- noqa: RF04
        {{ var('email_lookback_days') }}::integer as lookback_days,
        min(occurred_at) as first_line_at,
        max(occurred_at) as last_line_at
    from {{ source('esp', 'email_events') }}

),

latest_folders as (

    -- the first and the newest day folder loaded per source, up to run_date (a folder is a day of
    -- files; folder D's file holds the start of day D, whichever way it is cut)
    select
        source,
        min((interval_start at time zone 'UTC')::date) as first_folder_day,
        max((interval_start at time zone 'UTC')::date) as latest_folder_day
    from {{ source('ops', 'load_ledger') }}
    where
        status = 'succeeded'
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
            (
                select min(t.event_date) from {{ this }} as t
                where t.source = b.source and not t.complete and t.reason <> 'history_begins_mid_day'
            )
        ) as since
        {%- else -%}
        '1900-01-01'::date as since
        {%- endif %}
    from source_bounds as b
    left join latest_folders as f on b.source = f.source
    where b.first_line_at is not null or f.first_folder_day is not null

),

days as (

    select
        bounds.*,
        d.d::date as event_date,
        d.d::date::timestamp at time zone 'UTC' as day_start,
        (d.d::date + 1)::timestamp at time zone 'UTC' as day_end
    from bounds
    cross join lateral generate_series(
        greatest(bounds.first_day, bounds.since), {{ run_date() }}, interval '1 day'
    ) as d (d)

),

final as (

    select
        source,
        event_date,
        case
            when event_date < first_folder_day then 'history_begins_mid_day'
            when last_line_at >= day_end then 'covered'
            when latest_folder_day > event_date + lookback_days then 'lookback_passed'
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
    event_date,
    reason in ('covered', 'lookback_passed') as complete,
    reason,
    covered_from,
    covered_until,
    lookback_days,
    latest_folder_day
from final
