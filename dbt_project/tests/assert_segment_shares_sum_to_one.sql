-- Customer shares of a day sum to 1 (when the day has customers), and segment customers add up
-- to the day's total.
with

summary as (

    select * from {{ ref('fct_segment_summary_daily') }}

),

per_day as (

    select
        snapshot_date,
        sum(customer_share) as total_share,
        sum(customers) as summed_customers,
        max(total_customers) as total_customers

    from summary
    group by snapshot_date

),

final as (

    select * from per_day
    where
        summed_customers <> total_customers
        or (total_customers > 0 and abs(total_share - 1) > 0.0001)

)

select * from final
