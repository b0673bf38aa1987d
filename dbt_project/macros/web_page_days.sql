{#-
    int_web_page_views rebuilds a day of its lookback window only when the day's raw log lines
    changed since it was built: a late or reloaded log file changes the day's count of page-view
    lines or the load ids they came from (loads are numbered upwards; a reload is a new load). The
    day of run_date is always rebuilt (reruns). Re-inserting the unchanged lookback days every run
    cost most of the model's time at 365 days of history (index maintenance on a table of every
    page view ever). `web_page_requests_where()` is the page-view filter, shared by the model and
    this check; `web_page_days_to_rebuild()` the SELECT of the days (all of them on a full build);
    `delete_web_page_days_to_rebuild()` the pre-hook.
-#}
{% macro web_page_requests_where(requests) -%}
    {{ requests }}.requested_at < {{ as_of_ts() }}
    and {{ requests }}.requested_at >= {{ incremental_since() }}::timestamp at time zone 'UTC'
    and not {{ requests }}.is_bot
    and not {{ requests }}.is_static
    and {{ requests }}.http_method = 'GET'
    and {{ requests }}.http_status between 200 and 399
{%- endmacro %}

{% macro web_page_days_to_rebuild() -%}
    {%- set built_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list
        if is_incremental() else [] -%}
    {%- if is_incremental() and 'load_id' not in built_columns -%}
    -- built before load_id was kept (dbt adds the column after the pre-hook): every lookback day
    select cast(day as date) as view_date
    from generate_series({{ incremental_since() }}, {{ run_date() }}, interval '1 day') as days (day)
    {%- elif is_incremental() -%}
    select coalesce(raw_days.view_date, built_days.view_date) as view_date
    from (
        select
            {{ utc_date('requests.requested_at') }} as view_date,
            count(*) as page_views,
            sum(requests.load_id) as load_id_sum,
            max(requests.load_id) as last_load_id
        from {{ ref('stg_web__requests') }} as requests
        where {{ web_page_requests_where('requests') }}
        group by 1
    ) as raw_days
    full outer join (
        select
            view_date,
            count(*) as page_views,
            sum(load_id) as load_id_sum,
            max(load_id) as last_load_id
        from {{ this }}
        where view_date between {{ incremental_since() }} and {{ run_date() }}
        group by view_date
    ) as built_days
        on raw_days.view_date = built_days.view_date
    where
        raw_days.view_date is null
        or built_days.view_date is null
        or raw_days.page_views <> built_days.page_views
        or raw_days.load_id_sum is distinct from built_days.load_id_sum
        or raw_days.last_load_id is distinct from built_days.last_load_id
    union
    select {{ run_date() }} as view_date
    {%- else -%}
    select null::date
    {%- endif -%}
{%- endmacro %}

{% macro delete_web_page_days_to_rebuild() -%}
    {%- if is_incremental() -%}
delete from {{ this }}
where
    view_date between {{ incremental_since() }} and {{ run_date() }}
    and view_date in (
        {{ web_page_days_to_rebuild() }}
    )
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}
