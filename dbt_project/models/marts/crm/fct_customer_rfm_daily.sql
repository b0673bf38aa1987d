{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_days_to_rebuild('snapshot_date', 0) }}",
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['snapshot_date', 'segment']},
            {'columns': ['customer_id', 'snapshot_date']},
        ]
    )
}}
-- Why over 150 lines: one job (the day's RFM snapshot): scores, the segment map and the
-- lifecycle stage per customer; rfm_window_days other than 365 adds its own window read.
-- One row per customer per snapshot_date (= run_date). Each run replaces exactly its own
-- snapshot_date (pre-hook delete through the index, then append), so reruns are idempotent and earlier days stay.
{%- set f_thresholds = var('rfm_f_thresholds') %}
{%- set rfm_days = var('rfm_window_days') | int %}
-- depends_on: {{ ref('int_orders_as_of') }} (read only when rfm_window_days is not 365)
{%- if execute and (f_thresholds | length) != 5 %}
    {{ exceptions.raise_compiler_error("var 'rfm_f_thresholds' needs 5 ascending order counts, e.g. [1, 2, 3, 5, 8]") }}
{%- endif %}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

segment_map as (

    select * from {{ ref('rfm_segment_map') }}

),

{%- if rfm_days != 365 %}
orders_in_window as (

    select
        customer_id,
        count(*) as frequency,
        sum(total_amount) as monetary

    from {{ ref('int_orders_as_of') }}
    where
        is_valid_order
        and ordered_at >= {{ as_of_ts() }} - interval '{{ rfm_days }} days'
        and ordered_at < {{ as_of_ts() }}
    group by customer_id

),
{%- endif %}

customer_activity as (

    select
        customers.customer_id,
        customers.last_order_at,
        customers.days_since_last_order as recency_days,
        {%- if rfm_days == 365 %}
        -- the default window: dim_customers' 365-day figures, not aggregated a second time
        customers.orders_365d as frequency,
        customers.revenue_365d as monetary,
        {%- else %}
        coalesce(orders_in_window.frequency, 0) as frequency,
        coalesce(orders_in_window.monetary, 0)::numeric(14, 2) as monetary,
        {%- endif %}
        customers.is_holdout,
        customers.is_contactable,
        customers.lifecycle_stage,
        customers.is_full_price_buyer

    from customers
    {%- if rfm_days != 365 %}
    left join orders_in_window
        on customers.customer_id = orders_in_window.customer_id
    {%- endif %}

),

scored as (

    -- quintiles over the customers active in the window; ties broken by customer_id
    select
        customer_id,
        ntile(5) over (order by recency_days desc, customer_id asc) as r_score,
        case
            when frequency >= {{ f_thresholds[4] | int }} then 5
            when frequency >= {{ f_thresholds[3] | int }} then 4
            when frequency >= {{ f_thresholds[2] | int }} then 3
            when frequency >= {{ f_thresholds[1] | int }} then 2
            else 1
        end as f_score,
        ntile(5) over (order by monetary asc, customer_id asc) as m_score

    from customer_activity
    where frequency > 0

),

segmented as (

    select
        customer_activity.customer_id,
        customer_activity.recency_days,
        customer_activity.frequency,
        customer_activity.monetary,
        scored.r_score,
        scored.f_score,
        scored.m_score,
        customer_activity.is_holdout,
        customer_activity.is_contactable,
        customer_activity.lifecycle_stage,
        customer_activity.is_full_price_buyer,
        scored.r_score::text || scored.f_score::text || scored.m_score::text as rfm_cell,
        case
            when customer_activity.last_order_at is null then 'Prospect'
            -- ordered before, but not within the window: past every quintile
            when customer_activity.frequency = 0 then 'Lost'
            else segment_map.segment
        end as segment

    from customer_activity
    left join scored
        on customer_activity.customer_id = scored.customer_id
    left join segment_map
        on
            scored.r_score = segment_map.r_score
            and scored.f_score = segment_map.f_score

),

final as (

    select
        {{ run_date() }} as snapshot_date,
        customer_id,
        recency_days,
        frequency,
        monetary,
        r_score,
        f_score,
        m_score,
        rfm_cell,
        segment,
        is_holdout,
        is_contactable,
        lifecycle_stage,
        is_full_price_buyer

    from segmented

)

select * from final
