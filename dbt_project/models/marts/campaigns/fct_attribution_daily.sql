{{
    config(
        indexes=[{'columns': ['order_date'], 'unique': true}]
    )
}}
-- One row per order date (UTC) with valid orders as of the end of run_date: all revenue split
-- into e-mail attributed (last touch, fct_order_attribution) and organic, with numerators and
-- denominators.
with

attribution as (

    select * from {{ ref('fct_order_attribution') }}

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
        )::numeric(12, 6) as attributed_revenue_share,
        {{ run_date() }} as as_of_date

    from attribution
    group by order_date

)

select * from final
