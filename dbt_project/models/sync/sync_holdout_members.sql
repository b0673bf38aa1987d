-- Who is held out of each audience for run_date: contactable customers of the audience's
-- segments whose stable hash bucket is below holdout_pct. Never pushed; kept to measure lift.
with

rfm as (

    select * from {{ ref('fct_customer_rfm_daily') }}
    where snapshot_date = {{ run_date() }}

),

audiences as (

    select * from {{ ref('audiences') }}

),

final as (

    select
        audiences.audience,
        rfm.customer_id,
        rfm.segment,
        rfm.snapshot_date

    from rfm
    inner join audiences
        on rfm.segment = audiences.segment
    where
        rfm.is_contactable
        and rfm.is_holdout

)

select * from final
