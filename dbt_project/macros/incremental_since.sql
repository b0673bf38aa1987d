{#-
    First day an incremental run re-processes: run_date - web_lookback_days on an incremental run,
    the beginning of time on a first build or --full-refresh. A SQL date expression, so models need
    no Jinja branches inside their WHERE clauses.
-#}
{% macro incremental_since(lookback_days=none) -%}
    {%- set days = var('web_lookback_days') if lookback_days is none else lookback_days -%}
    {%- if is_incremental() -%}
        ({{ run_date() }} - {{ days | int }})
    {%- else -%}
        cast('1900-01-01' as date)
    {%- endif -%}
{%- endmacro %}
