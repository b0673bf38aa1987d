{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['order_date'], 'unique': true}],
        pre_hook="{{ delete_to_recompute('order_date', ref('int_order_dates_to_recompute')) }}"
    )
}}
-- One row per order date (UTC) with valid orders as of the end of run_date: revenue split into
-- e-mail attributed (last touch, int_order_attribution) and organic. Incremental per date: a run
-- re-aggregates only the dates of the orders int_order_attribution re-attributes (placed since
-- run_date - attribution_window_days or later, or whose status changed or was reloaded since then);
-- the totals of other dates cannot have changed. fct_attribution_daily adds as_of_date.
-- depends_on: {{ ref('int_order_dates_to_recompute') }}
with

attribution as (

    {%- if is_incremental() %}
    -- the dates' orders through the index on order_date
    select order_attribution.* from {{ ref('int_order_attribution') }} as order_attribution
    where order_attribution.order_date = any(array(
        select order_dates.order_date from {{ ref('int_order_dates_to_recompute') }} as order_dates
    ))
    {%- else %}
    select * from {{ ref('int_order_attribution') }}
    {%- endif %}

),

final as (

    select
        order_date,
        count(*) as orders,
        sum(total_amount)::numeric(14, 2) as revenue,
        count(*) filter (where is_attributed) as attributed_orders,
        coalesce(sum(total_amount) filter (where is_attributed), 0)::numeric(14, 2) as attributed_revenue,
        count(*) filter (where not is_attributed) as organic_orders,
        coalesce(sum(total_amount) filter (where not is_attributed), 0)::numeric(14, 2) as organic_revenue,
        round(
            coalesce(sum(total_amount) filter (where is_attributed), 0) / nullif(sum(total_amount), 0),
            6
        )::numeric(12, 6) as attributed_revenue_share

    from attribution
    group by order_date

)

select * from final
