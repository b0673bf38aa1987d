{{ config(materialized='table') }}
-- One row per calendar day, 2015-01-01 to 2040-12-31: MetricFlow's time spine (dbt semantic layer,
-- docs/metrics.md). It joins metrics over days and fills days without rows; nothing else reads it.
with

days as (

    select cast(day_start as date) as date_day
    from generate_series(
        cast('2015-01-01' as date), cast('2040-12-31' as date), interval '1 day'
    ) as spine (day_start)

),

final as (

    select date_day from days

)

select * from final
