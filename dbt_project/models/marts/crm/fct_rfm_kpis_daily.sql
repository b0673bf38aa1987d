{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_days_to_rebuild('snapshot_date', 0) }}",
        on_schema_change='append_new_columns'
    )
}}
-- One row per snapshot_date: the Pareto figure, the share of net revenue in the RFM window that
-- comes from the top pareto_top_pct (default 20) percent of the customers with an order in the
-- window, ranked by monetary (highest first, ties by customer_id), with its numerator and
-- denominator. Incremental, replaces its snapshot_date like fct_segment_summary_daily.
with

rfm as (

    select * from {{ ref('fct_customer_rfm_daily') }}
    where snapshot_date = {{ run_date() }}

),

active as (

    select
        customer_id,
        monetary,
        row_number() over (order by monetary desc, customer_id asc) as monetary_rank,
        count(*) over () as active_customers

    from rfm
    where frequency > 0

),

top_customers as (

    select
        count(*) as top_customers,
        coalesce(sum(monetary), 0) as top_customers_revenue

    from active
    where monetary_rank <= ceil(active_customers * {{ var('pareto_top_pct') | int }} / 100.0)

),

day_totals as (

    select
        count(*) filter (where frequency > 0) as active_customers,
        coalesce(sum(monetary), 0) as total_revenue

    from rfm

),

final as (

    select
        {{ run_date() }} as snapshot_date,
        day_totals.active_customers,
        top_customers.top_customers,
        top_customers.top_customers_revenue::numeric(14, 2) as top_customers_revenue,
        day_totals.total_revenue::numeric(14, 2) as total_revenue,
        round(
            top_customers.top_customers_revenue / nullif(day_totals.total_revenue, 0), 6
        )::numeric(12, 6) as top_customers_revenue_share

    from day_totals
    cross join top_customers

)

select * from final
