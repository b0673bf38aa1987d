{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['visitor_id', 'viewed_at']},
            {'columns': ['view_date']},
        ],
        pre_hook="
            {%- if is_incremental() -%}
            delete from {{ this }}
            where
                view_date between {{ incremental_since() }} and {{ run_date() }}
                and view_date in (
                    {%- if 'load_id' in adapter.get_columns_in_relation(this) | map(attribute='name') | list %}
                    select coalesce(logged.view_date, built.view_date)
                    from {{ ref('int_web_page_days_to_recompute') }} as logged
                    full outer join (
                        select
                            view_date,
                            count(*) as page_views,
                            sum(load_id) as load_id_sum,
                            max(load_id) as last_load_id
                        from {{ this }}
                        where view_date between {{ incremental_since() }} and {{ run_date() }}
                        group by view_date
                    ) as built
                        on logged.view_date = built.view_date
                    where
                        logged.view_date is null
                        or built.view_date is null
                        or logged.page_views <> built.page_views
                        or logged.load_id_sum is distinct from built.load_id_sum
                        or logged.last_load_id is distinct from built.last_load_id
                    union
                    select {{ run_date() }}
                    {%- else %}
                    -- built before load_id was kept (dbt adds the column after this hook): every day
                    select view_date from {{ this }}
                    {%- endif %}
                )
            {%- else -%}
            select 1
            {%- endif -%}
        "
    )
}}
-- Human page views: GET requests answered 2xx/3xx that are neither bots nor static assets, one
-- row per log line. A visitor is the keyed hash (HMAC-SHA256, key in ops.secrets:
-- macros/visitor_key.sql) of (remote address, user agent). Incremental: the pre-hook deletes
-- run_date and the days of [run_date - web_lookback_days, run_date) whose log lines changed since
-- they were built (int_web_page_days_to_recompute: a late or reloaded file), the run then inserts
-- the days of that window it does not hold; days after run_date, if already built, stay.
-- depends_on: {{ ref('int_web_page_days_to_recompute') }}
with

requests as (

    select * from {{ ref('stg_web__requests') }}

),

page_requests as (

    select * from requests
    where
        requested_at < {{ as_of_ts() }}
        and requested_at >= {{ incremental_since_ts() }}
        and {{ is_page_view() }}  -- noqa: LT02
        {%- if is_incremental() %}
        -- the days of the window it does not hold (after the pre-hook): one index probe per day
        and {{ utc_date('requested_at') }} not in (
            select cast(days.window_day as date) as view_date
            from generate_series({{ incremental_since() }}, {{ run_date() }}, interval '1 day') as days (window_day)
            where exists (
                select built.view_date from {{ this }} as built
                where built.view_date = cast(days.window_day as date)
            )
        )
        {%- endif %}

),

visitor_key as (

    select
        {{ hmac_pad('secrets.value', 54) }} as inner_pad,
        {{ hmac_pad('secrets.value', 92) }} as outer_pad
    from {{ source('ops', 'secrets') }} as secrets
    where secrets.name = 'visitor_id'

),

final as (

    select
        request_id as page_view_id,
        {{ visitor_hmac("ip_address || '|' || coalesce(user_agent, '')", 'visitor_key') }} as visitor_id,
        requested_at as viewed_at,
        {{ utc_date('requested_at') }} as view_date,
        path,
        query_string,
        referrer,
        lower(substring(referrer from '^[a-zA-Z][a-zA-Z0-9+.-]*://([^/:?#]+)')) as referrer_host,
        utm_source,
        utm_medium,
        utm_campaign,
        customer_token,
        order_id,
        http_status,
        load_id

    from page_requests

)

select * from final
