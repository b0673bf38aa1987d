{{
    config(
        materialized='view'
    )
}}
-- One row per order date (UTC) with valid orders as of the end of run_date: all revenue split
-- into e-mail attributed (last touch, fct_order_attribution) and organic, with numerators and
-- denominators. A view on the incremental table int_attribution_daily (which holds the unique
-- index on order_date), adding as_of_date.
with

attribution_daily as (

    select * from {{ ref('int_attribution_daily') }}

),

final as (

    select
        order_date,
        orders,
        revenue,
        attributed_orders,
        attributed_revenue,
        organic_orders,
        organic_revenue,
        attributed_revenue_share,
        {{ run_date() }} as as_of_date

    from attribution_daily

)

select * from final
