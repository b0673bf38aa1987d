-- The flows' current members on run_date, treated only: who is pushed in each flow audience.
-- A member entered the flow within its window (entry_date > run_date - window_days) and has not
-- exited: no valid order placed after the entry (flows with exit_on_order; the entry is decided
-- on the data up to the end of its day, so orders from the next day on), contactable on every day
-- since (an unsubscribe, hard bounce or complaint ends it at once), and for segment-transition
-- flows with exit_on_segment_leave in the segment(s) it entered for on every day since. An exit is
-- for good: coming back into the segment does not re-add the member. Held-out entrants are never
-- members. One row per (audience, customer_id). Today's consent and campaign holdout are applied
-- where every audience's are, in sync_audience_candidates -> sync_audience_members.
with

entrants as (

    select * from {{ ref('fct_flow_entrants') }}
    where
        entry_date <= {{ run_date() }}
        and not is_flow_holdout

),

flows as (

    select * from {{ ref('flows') }}

),

today as (

    select * from {{ ref('fct_customer_rfm_daily') }}
    where snapshot_date = {{ run_date() }}

),

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

in_window as (

    -- the latest entry of each (flow, customer) still inside its window
    select distinct on (entrants.flow, entrants.customer_id)
        entrants.flow,
        entrants.customer_id,
        entrants.entry_date,
        flows.audience,
        flows.trigger_type,
        flows.trigger_to,
        flows.exit_on_order,
        flows.exit_on_segment_leave

    from entrants
    inner join flows
        on entrants.flow = flows.flow
    where entrants.entry_date > {{ run_date() }} - flows.window_days
    order by entrants.flow asc, entrants.customer_id asc, entrants.entry_date desc

),

not_exited as (

    select
        in_window.*,
        today.segment

    from in_window
    inner join today
        on in_window.customer_id = today.customer_id
    where
        -- exits are for good: a day out of the segment, or not contactable, since the entry ends it
        not exists (
            select 1 as found from {{ ref('fct_customer_rfm_daily') }} as since_entry
            where
                since_entry.customer_id = in_window.customer_id
                and since_entry.snapshot_date > in_window.entry_date
                and since_entry.snapshot_date <= {{ run_date() }}
                and (
                    not since_entry.is_contactable
                    or (
                        in_window.exit_on_segment_leave
                        and in_window.trigger_type = 'segment_transition'
                        and not {{ flow_value_matches('in_window.trigger_to', 'since_entry.segment') }}
                    )
                )
        )
        and not (
            in_window.exit_on_order
            and exists (
                select 1 as found from orders
                where
                    orders.customer_id = in_window.customer_id
                    and orders.is_valid_order
                    and orders.ordered_at >= (in_window.entry_date + 1)::timestamp at time zone 'UTC'
                    and orders.ordered_at < {{ as_of_ts() }}
            )
        )

),

final as (

    select
        audience,
        customer_id,
        segment,
        {{ run_date() }} as snapshot_date,
        flow,
        entry_date

    from not_exited

)

select * from final
