{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_days_to_rebuild('transition_date', 0) }}",
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['transition_date', 'to_segment']},
            {'columns': ['customer_id', 'transition_date']},
        ]
    )
}}
-- One row per customer whose RFM segment on a snapshot differs from their segment on the
-- previous snapshot (the latest fct_customer_rfm_daily snapshot_date <= transition_date - 1).
-- Customers without a previous snapshot (first snapshot, new customers) and customers whose
-- segment did not change produce no row. days_in_from_segment counts from the first snapshot of
-- the unbroken run of from_segment snapshots before the change. Incremental, replaces its
-- transition_date: a run computes run_date only (a full build every snapshot up to run_date), and
-- reads only snapshots before it, so rebuilding a past day reproduces it.
-- fct_customer_rfm_daily is referenced directly in every join (no shared CTE, which PostgreSQL
-- would materialize without indexes): the daily run reads two days and the changed customers'
-- histories through the (snapshot_date, segment) and (customer_id, snapshot_date) indexes.
with

target_days as (

    select distinct snapshot_date from {{ ref('fct_customer_rfm_daily') }}
    where snapshot_date between {{ incremental_since(0) }} and {{ run_date() }}

),

day_pairs as (

    select
        target_days.snapshot_date,
        (
            select max(earlier.snapshot_date) as latest_before from {{ ref('fct_customer_rfm_daily') }} as earlier
            where earlier.snapshot_date < target_days.snapshot_date
        ) as previous_snapshot_date

    from target_days

),

changes as (

    select
        current_day.customer_id,
        previous_day.segment as from_segment,
        current_day.segment as to_segment,
        day_pairs.snapshot_date as transition_date,
        day_pairs.previous_snapshot_date

    from day_pairs
    inner join {{ ref('fct_customer_rfm_daily') }} as current_day
        on day_pairs.snapshot_date = current_day.snapshot_date
    inner join {{ ref('fct_customer_rfm_daily') }} as previous_day
        on
            day_pairs.previous_snapshot_date = previous_day.snapshot_date
            and current_day.customer_id = previous_day.customer_id
    where current_day.segment <> previous_day.segment

),

last_other_segment as (

    -- the latest snapshot before the run of from_segment snapshots (null: the run is the history)
    select
        changes.customer_id,
        changes.transition_date,
        max(rfm.snapshot_date) as last_other_date

    from changes
    inner join {{ ref('fct_customer_rfm_daily') }} as rfm
        on
            changes.customer_id = rfm.customer_id
            and changes.previous_snapshot_date > rfm.snapshot_date
            and changes.from_segment <> rfm.segment
    group by changes.customer_id, changes.transition_date

),

entered as (

    select
        changes.customer_id,
        changes.transition_date,
        min(rfm.snapshot_date) as from_segment_since

    from changes
    left join last_other_segment
        on
            changes.customer_id = last_other_segment.customer_id
            and changes.transition_date = last_other_segment.transition_date
    inner join {{ ref('fct_customer_rfm_daily') }} as rfm
        on
            changes.customer_id = rfm.customer_id
            and changes.previous_snapshot_date >= rfm.snapshot_date
            and coalesce(last_other_segment.last_other_date, cast('1900-01-01' as date)) < rfm.snapshot_date
    group by changes.customer_id, changes.transition_date

),

final as (

    select
        changes.customer_id,
        changes.from_segment,
        changes.to_segment,
        changes.transition_date,
        cast(changes.transition_date - entered.from_segment_since as integer) as days_in_from_segment,
        entered.from_segment_since,
        changes.previous_snapshot_date

    from changes
    inner join entered
        on
            changes.customer_id = entered.customer_id
            and changes.transition_date = entered.transition_date

)

select * from final
