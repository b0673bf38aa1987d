{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_days_to_rebuild('as_of_date', 0) }}",
        on_schema_change='append_new_columns'
    )
}}
-- Per run date, loyalty members vs the other buyers (customers with a valid order): how many, their
-- repeat rate and spend. An association, not an effect: loyal customers join programs, the program
-- does not make them loyal (the holdouts of the loyal_reward audience measure the effect). Empty
-- groups give no row; a shop without a program has only the non-member row. Incremental: a run
-- replaces its own as_of_date.
with

customers as (

    select * from {{ ref('dim_customers') }}
    where valid_order_count >= 1

),

final as (

    select
        {{ run_date() }} as as_of_date,
        case when is_loyalty_member then 'member' else 'non_member' end as customer_group,
        count(*)::bigint as buyers,
        count(*) filter (where is_repeat_buyer)::bigint as repeat_buyers,
        round(count(*) filter (where is_repeat_buyer)::numeric / count(*), 6)::numeric(12, 6) as repeat_rate,
        sum(net_revenue)::numeric(16, 2) as net_revenue,
        round(sum(net_revenue) / count(*), 2)::numeric(14, 2) as net_revenue_per_buyer,
        sum(revenue_365d)::numeric(16, 2) as revenue_365d,
        round(sum(revenue_365d) / count(*), 2)::numeric(14, 2) as revenue_365d_per_buyer

    from customers
    group by is_loyalty_member

)

select * from final
