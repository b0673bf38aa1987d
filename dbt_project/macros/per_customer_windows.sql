{#-
    Tables of per-customer windows (int_customer_order_windows, int_customer_web_activity) are kept
    up to date by recomputing only the customers whose window can have changed since the day the
    table was last computed for; each row carries that day as computed_for_date.

    `recompute_all_customers(lookback_days)`: true when every customer has to be recomputed: on a
    first build or --full-refresh, and when the table's day (the largest computed_for_date, read
    through its index) is not in [run_date - lookback_days - 1, run_date] (a rebuilt past day, or a
    gap in the daily runs longer than the lookback): the customers a run lists are those with a
    change since run_date - lookback_days.
-#}
{% macro recompute_all_customers(lookback_days) -%}
    {%- if not is_incremental() -%}
        {{ return(true) }}
    {%- endif -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set last_day = last_computed_for_date() -%}
    {%- if last_day is none -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set day = modules.datetime.date.fromisoformat(run_date_str()) -%}
    {%- set lookback = modules.datetime.timedelta(days=lookback_days | int + 1) -%}
    {{ return(not (day - lookback <= last_day <= day)) }}
{%- endmacro %}

{#-
    Pre-hook of those tables: nothing on a full build, every row when recomputing all, else the rows
    of the customers `customers_to_recompute(to_recompute, ...)` lists.
-#}
{% macro delete_customers_to_recompute(lookback_days, to_recompute, by_window_day=false) -%}
    {%- if not is_incremental() -%}
select 1
    {%- elif recompute_all_customers(lookback_days) -%}
truncate {{ this }}
    {%- else -%}
delete from {{ this }}
where customer_id = any(array(
    {{ customers_to_recompute(to_recompute, by_window_day) }}
))
    {%- endif -%}
{%- endmacro %}

{#-
    The customers of `to_recompute` (an `int_*_to_recompute` model, given by its relation). With
    `by_window_day`, its rows carry `left_window_on`: null when the customer's data changed, else
    the day one of their sessions left a window; only those left after the table's day count
    (none on a rerun of that day).
-#}
{% macro customers_to_recompute(to_recompute, by_window_day=false) -%}
    select {{ "distinct" if by_window_day }} customer_id from {{ to_recompute }}
    {%- if by_window_day %}
    where
        left_window_on is null
        {#- run_date when there is no last day: rendered for a full build's pre-hook, never run #}
        or left_window_on > cast('{{ last_computed_for_date() or run_date_str() }}' as date)
    {%- endif %}
{%- endmacro %}

{#-
    The day the table was last computed for (the largest computed_for_date, through its index):
    every row's windows are right as of that day, so a run only has to add what left a window
    after it. None on an empty table and when the model is not incremental (first build,
    --full-refresh); when not executing (parsing), run_date.
-#}
{% macro last_computed_for_date() -%}
    {%- if not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if not execute -%}
        {{ return(modules.datetime.date.fromisoformat(run_date_str())) }}
    {%- endif -%}
    {{ return(run_query("select max(computed_for_date) from " ~ this).columns[0].values()[0]) }}
{%- endmacro %}
