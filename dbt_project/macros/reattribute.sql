{#-
    Orders whose facts as of run_date can differ from what the incremental tables hold: placed since
    run_date - lookback (including any placed after run_date, so a rebuilt past day holds nothing
    later), or whose status changed or row was reloaded since then. All orders on a full build.
    `orders_changed_since` is the SELECT of their order_id (arguments: relations or CTE names of
    stg_shop__orders and stg_shop__order_status_history); raw.orders and raw.order_status_history
    are indexed on created_at / updated_at for it.
    `delete_orders_to_reattribute` is the pre-hook of int_orders_as_of and int_order_attribution:
    it deletes exactly those orders; the model then inserts those placed before the end of run_date.
-#}
{% macro orders_changed_since(orders, status_history, lookback_days=none) -%}
    {%- set since_ts = incremental_since_ts(var('attribution_window_days') if lookback_days is none else lookback_days) -%}
    select order_id from {{ orders }}
    where ordered_at >= {{ since_ts }}
    union
    select order_id from {{ status_history }}
    where status_changed_at >= {{ since_ts }}
    union
    select order_id from {{ orders }}
    where updated_at >= {{ since_ts }}
{%- endmacro %}

{% macro delete_orders_to_reattribute() -%}
    {%- if is_incremental() -%}
delete from {{ this }}
where order_id = any(array(
    {{ orders_changed_since(ref('stg_shop__orders'), ref('stg_shop__order_status_history')) }}
))
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}

{#-
    `changed_orders(orders, status_history, columns, more_order_ids)`: the distinct `columns` of the
    orders of `orders_changed_since` (plus the order ids of the SELECT `more_order_ids`), each order
    looked up by primary key. offset 0 keeps the lookups: joined by `order_id in (...)`, PostgreSQL
    over-estimates the union and hash-joins the whole order table, which grows with the history.
-#}
{% macro changed_orders(orders, status_history, columns, more_order_ids=none) -%}
    select distinct {% for column in columns %}changed_order.{{ column }}{{ ", " if not loop.last }}{% endfor %}
    from (
        {{ orders_changed_since(orders, status_history) }}
        {%- if more_order_ids %}
        union
        {{ more_order_ids }}
        {%- endif %}
    ) as changed
    cross join lateral (
        select {% for column in columns %}orders_by_id.{{ column }}{{ ", " if not loop.last }}{% endfor %}
        from {{ orders }} as orders_by_id
        where orders_by_id.order_id = changed.order_id
        offset 0  -- noqa: AM09
    ) as changed_order
{%- endmacro %}

{#-
    Customers whose order facts can have changed: the customers of `orders_changed_since` and of
    orders with an order line changed since then (the favourite category); all customers with an
    order on a full build. Pre-hook `delete_customers_with_changed_orders` of
    int_customer_orders_summarized deletes them; the model re-inserts those with an order placed
    before the end of run_date.
-#}
{% macro customers_with_changed_orders(orders, status_history, order_lines) -%}
    {{ changed_orders(orders, status_history, ['customer_id'],
                      "select order_id from " ~ order_lines ~ " where updated_at >= "
                      ~ incremental_since_ts(var('attribution_window_days'))) }}
{%- endmacro %}

{% macro delete_customers_with_changed_orders() -%}
    {%- if is_incremental() -%}
delete from {{ this }}
where customer_id = any(array(
    {{ customers_with_changed_orders(ref('stg_shop__orders'), ref('stg_shop__order_status_history'),
                                     ref('stg_shop__order_lines')) }}
))
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}

{#-
    Order dates (UTC) whose attribution totals can have changed: the dates of `changed_orders`. Pre-hook `delete_attribution_days_to_recompute`
    of int_attribution_daily deletes those dates; the model re-aggregates them.
-#}
{% macro order_dates_changed_since(orders, status_history) -%}
    {{ changed_orders(orders, status_history, ['order_date']) }}
{%- endmacro %}

{% macro delete_attribution_days_to_recompute() -%}
    {%- if is_incremental() -%}
delete from {{ this }}
where order_date = any(array(
    {{ order_dates_changed_since(ref('stg_shop__orders'), ref('stg_shop__order_status_history')) }}
))
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}
