{#-
    First day an incremental run re-processes: run_date - web_lookback_days on an incremental run,
    the beginning of time on a first build or --full-refresh. A SQL date expression, so models need
    no Jinja branches inside their WHERE clauses.
-#}
{% macro incremental_since(lookback_days=none) -%}
    {%- if is_incremental() -%}
        {{ lookback_since(lookback_days) }}
    {%- else -%}
        cast('1900-01-01' as date)
    {%- endif -%}
{%- endmacro %}

{#-
    run_date - lookback_days (default web_lookback_days) as a SQL date, whatever the model's
    materialization: the start of the window the `int_*_to_recompute` views look at.
-#}
{% macro lookback_since(lookback_days=none) -%}
    {%- set days = var('web_lookback_days') if lookback_days is none else lookback_days -%}
    ({{ run_date() }} - {{ days | int }})
{%- endmacro %}

{#- lookback_since as a timestamptz (00:00 UTC of that day). -#}
{% macro lookback_since_ts(lookback_days=none) -%}
    {{ lookback_since(lookback_days) }}::timestamp at time zone 'UTC'
{%- endmacro %}

{#- incremental_since as a timestamptz (00:00 UTC of that day), for comparing timestamps. -#}
{% macro incremental_since_ts(lookback_days=none) -%}
    {{ incremental_since(lookback_days) }}::timestamp at time zone 'UTC'
{%- endmacro %}

{#-
    Pre-hook of the incremental tables partitioned by a date: delete the days this run rebuilds,
    [incremental_since(lookback_days), run_date], through the table's index on that date; the model
    then appends them (incremental_strategy 'append'). dbt's own delete+insert deletes by
    `date in (select distinct date from <unanalyzed temp table>)`, which PostgreSQL plans as a
    scan of the whole table: the daily run then grows with history. Nothing on a full build.
-#}
{% macro delete_days_to_rebuild(column, lookback_days=none) -%}
    {%- if is_incremental() -%}
delete from {{ this }}
where {{ column }} between {{ incremental_since(lookback_days) }} and {{ run_date() }}
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}
