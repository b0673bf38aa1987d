-- Who is held out of each audience for run_date: contactable customers an audience picks whose
-- stable hash bucket is below holdout_pct. Never pushed; kept to measure lift.
with

candidates as (

    select * from {{ ref('sync_audience_candidates') }}

),

final as (

    select
        audience,
        customer_id,
        segment,
        snapshot_date

    from candidates
    where
        is_contactable
        and is_holdout

)

select * from final
