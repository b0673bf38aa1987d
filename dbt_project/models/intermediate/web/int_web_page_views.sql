{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_web_page_days_to_rebuild() }}",
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['visitor_id', 'viewed_at']},
            {'columns': ['view_date']},
        ]
    )
}}
-- Human page views: GET requests answered 2xx/3xx that are neither bots nor static assets, one
-- row per log line. A visitor is the keyed hash (HMAC-SHA256, key in ops.secrets:
-- macros/visitor_key.sql) of (remote address, user agent). Incremental: a run
-- replaces run_date and the days of [run_date - web_lookback_days, run_date) whose log lines
-- changed since they were built (a late or reloaded file: macros/web_page_days.sql); days after
-- run_date, if already built, stay as they are.
with

requests as (

    select * from {{ ref('stg_web__requests') }}

),

page_requests as (

    select * from requests
    where
        {{ web_page_requests_where('requests') }}  -- noqa: LT02
        {%- if is_incremental() %}
        and {{ utc_date('requests.requested_at') }} in ({{ web_page_days_to_rebuild() }})
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
