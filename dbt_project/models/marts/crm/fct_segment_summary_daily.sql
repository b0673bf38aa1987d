{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_days_to_rebuild('snapshot_date', 0) }}",
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['snapshot_date', 'segment'], 'unique': true}]
    )
}}
-- One row per snapshot_date and segment (every segment, also when empty), with numerators and
-- denominators so shares can be re-aggregated.
with

rfm as (

    select * from {{ ref('fct_customer_rfm_daily') }}
    where snapshot_date = {{ run_date() }}

),

segment_map as (

    select * from {{ ref('rfm_segment_map') }}

),

segments as (

    select distinct segment from segment_map
    union
    select 'Lost' as segment
    union
    select 'Prospect' as segment

),

segment_totals as (

    select
        segment,
        count(*) as customers,
        count(*) filter (where is_contactable) as contactable_customers,
        count(*) filter (where is_holdout) as holdout_customers,
        sum(monetary) as revenue

    from rfm
    group by segment

),

day_totals as (

    select
        count(*) as total_customers,
        coalesce(sum(monetary), 0) as total_revenue

    from rfm

),

final as (

    select
        {{ run_date() }} as snapshot_date,
        segments.segment,
        coalesce(segment_totals.customers, 0) as customers,
        coalesce(segment_totals.contactable_customers, 0) as contactable_customers,
        coalesce(segment_totals.holdout_customers, 0) as holdout_customers,
        coalesce(segment_totals.revenue, 0)::numeric(14, 2) as revenue,
        day_totals.total_customers,
        day_totals.total_revenue::numeric(14, 2) as total_revenue,
        round(
            coalesce(segment_totals.customers, 0)::numeric
            / nullif(day_totals.total_customers, 0),
            6
        )::numeric(12, 6) as customer_share,
        round(
            coalesce(segment_totals.revenue, 0) / nullif(day_totals.total_revenue, 0),
            6
        )::numeric(12, 6) as revenue_share

    from segments
    cross join day_totals
    left join segment_totals
        on segments.segment = segment_totals.segment

)

select * from final
