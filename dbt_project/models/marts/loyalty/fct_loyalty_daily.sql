-- One row per day of the loyalty program, from its first ledger event to run_date: points earned,
-- redeemed, expired and adjusted on the day, the points outstanding at its end and their liability
-- in currency (var loyalty_point_value per point), members (joined so far, new, active on the day)
-- and tier changes. Empty for a shop without a loyalty program. Rebuilt daily as of run_date (the
-- outstanding points are a running sum over the whole ledger); a past run date reproduces its rows.
with

events as (

    select * from {{ ref('stg_loyalty__events') }}
    where occurred_at < {{ as_of_ts() }}

),

days as (

    select calendar.calendar_day::date as ledger_date
    from generate_series(
        (select min(event_date) as first_date from events)::timestamp,
        {{ run_date() }}::timestamp,
        interval '1 day'
    ) as calendar (calendar_day)

),

per_day as (

    select
        event_date,
        coalesce(sum(points) filter (where event_type = 'earned'), 0) as points_earned,
        coalesce(-sum(points) filter (where event_type = 'redeemed'), 0) as points_redeemed,
        coalesce(-sum(points) filter (where event_type = 'expired'), 0) as points_expired,
        coalesce(sum(points) filter (where event_type = 'adjusted'), 0) as points_adjusted,
        sum(points) as net_points,
        count(*) filter (where event_type = 'redeemed') as redemptions,
        count(*) filter (where event_type = 'tier_changed') as tier_changes,
        count(distinct member_id) as active_members

    from events
    group by event_date

),

member_first_days as (

    select
        member_id,
        min(event_date) as first_date

    from events
    group by member_id

),

first_days as (

    select
        first_date,
        count(*) as new_members

    from member_first_days
    group by first_date

),

final as (

    select
        days.ledger_date,
        coalesce(per_day.points_earned, 0)::bigint as points_earned,
        coalesce(per_day.points_redeemed, 0)::bigint as points_redeemed,
        coalesce(per_day.points_expired, 0)::bigint as points_expired,
        coalesce(per_day.points_adjusted, 0)::bigint as points_adjusted,
        sum(coalesce(per_day.net_points, 0)) over (order by days.ledger_date)::bigint as outstanding_points,
        round(
            sum(coalesce(per_day.net_points, 0)) over (order by days.ledger_date)
            * {{ var('loyalty_point_value') }}, 2
        )::numeric(14, 2) as outstanding_liability,
        coalesce(per_day.redemptions, 0)::bigint as redemptions,
        coalesce(per_day.tier_changes, 0)::bigint as tier_changes,
        coalesce(per_day.active_members, 0)::bigint as active_members,
        coalesce(first_days.new_members, 0)::bigint as new_members,
        sum(coalesce(first_days.new_members, 0)) over (order by days.ledger_date)::bigint as members,
        {{ run_date() }} as as_of_date

    from days
    left join per_day
        on days.ledger_date = per_day.event_date
    left join first_days
        on days.ledger_date = first_days.first_date

)

select * from final
