{#-
    Pre-hook of int_order_attribution (incremental): delete the orders this run re-attributes,
    i.e. placed since run_date - attribution_window_days (including any placed after run_date, so
    a rebuilt past day holds nothing later), or whose status changed or row was reloaded since
    then. The model then inserts those that are valid as of run_date. Nothing on a full build.
-#}
{% macro delete_orders_to_reattribute() -%}
    {%- if is_incremental() -%}
        {%- set since = incremental_since(var('attribution_window_days')) -%}
delete from {{ this }}
where
    order_date >= {{ since }}
    or order_id in (
        select order_id from {{ ref('stg_shop__order_status_history') }}
        where status_changed_at >= {{ since }}::timestamp at time zone 'UTC'
    )
    or order_id in (
        select order_id from {{ ref('stg_shop__orders') }}
        where updated_at >= {{ since }}::timestamp at time zone 'UTC'
    )
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}
