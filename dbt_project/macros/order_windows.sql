{#-
    int_customer_order_windows: the 365-day order count and revenue per customer, kept up to date by
    recomputing only the customers whose window can have changed since the table's state.

    Every customer is recomputed when `recompute_all_customers(attribution_window_days)` says so
    (macros/per_customer_windows.sql); otherwise the customers of `order_windows_to_recompute` are
    enough: every order that entered the window, changed or left it since the table's day is in
    [since, end of run_date) or left in [since - 365 days, end of run_date - 365 days).
-#}
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
