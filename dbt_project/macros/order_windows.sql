{#-
    int_customer_order_windows: the 365-day order count and revenue per customer, kept up to date by
    recomputing only the customers whose window can have changed since the table's state.

    `order_windows_recompute_all()`: true when the table has to be recomputed for every customer:
    on a first build or --full-refresh, and when the day the table was last computed for (the
    largest computed_for_date, read through its index) is not in [run_date - lookback - 1, run_date]
    (a rebuilt past day, or a gap in the daily runs longer than the lookback). Otherwise the
    customers of `order_windows_to_recompute` are enough: every order that entered the window,
    changed or left it since the table's day is in [since, end of run_date) or left in
    [since - 365 days, end of run_date - 365 days).
-#}
{% macro order_windows_recompute_all() -%}
    {%- if not is_incremental() -%}
        {{ return(true) }}
    {%- endif -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set last_day = run_query("select max(computed_for_date) from " ~ this).columns[0].values()[0] -%}
    {%- if last_day is none -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set day = modules.datetime.date.fromisoformat(run_date_str()) -%}
    {%- set lookback = modules.datetime.timedelta(days=var('attribution_window_days') | int + 1) -%}
    {{ return(not (day - lookback <= last_day <= day)) }}
{%- endmacro %}

{% macro order_windows_to_recompute() -%}
    {%- set since_ts = incremental_since_ts(var('attribution_window_days')) -%}
    {{ customers_with_changed_orders(ref('stg_shop__orders'), ref('stg_shop__order_status_history'),
                                     ref('stg_shop__order_lines')) }}
    union
    -- orders that left the window since the table's day (index on ordered_at)
    select customer_id from {{ ref('int_orders_as_of') }}
    where
        ordered_at >= {{ since_ts }} - interval '365 days'
        and ordered_at < {{ as_of_ts() }} - interval '365 days'
{%- endmacro %}

{#- Pre-hook: every row when recomputing all, else the customers to recompute. -#}
{% macro delete_order_windows_to_recompute() -%}
    {%- if not is_incremental() -%}
select 1
    {%- elif order_windows_recompute_all() -%}
truncate {{ this }}
    {%- else -%}
delete from {{ this }}
where customer_id = any(array(
    {{ order_windows_to_recompute() }}
))
    {%- endif -%}
{%- endmacro %}
