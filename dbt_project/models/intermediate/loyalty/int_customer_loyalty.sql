-- One row per shop customer with a loyalty membership as of the end of run_date: tier, points
-- balance and its value (var loyalty_point_value, currency per point), what was earned, redeemed
-- and expired, the last reward. A member is linked to the customer by the ledger's customer_id,
-- else by e-mail (the customer with that address, lowest id if several); a customer with two
-- memberships (an app's duplicate) keeps the one with the latest event. Members no customer matches
-- are counted in marts.fct_loyalty_daily (unlinked_members), not here. Rebuilt daily: the balance
-- sums the member's whole ledger (one group by; docs/marts.md "Loyalty").
with

events as (

    select * from {{ ref('stg_loyalty__events') }}
    where occurred_at < {{ as_of_ts() }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

customer_by_email as (

    select distinct on (email)
        email,
        customer_id

    from customers
    where email is not null
    order by email asc, customer_id asc

),

members as (

    select
        member_id,
        (
            array_agg(customer_id order by occurred_at desc, event_id desc)
            filter (where customer_id is not null)
        )[1] as ledger_customer_id,
        (array_agg(email order by occurred_at desc, event_id desc) filter (where email is not null))[1] as email,
        (array_agg(tier order by occurred_at desc, event_id desc) filter (where tier is not null))[1] as tier,
        min(occurred_at) as joined_at,
        max(occurred_at) as last_event_at,
        max(occurred_at) filter (where event_type = 'redeemed') as last_redeemed_at,
        sum(points) as points_balance,
        coalesce(sum(points) filter (where event_type = 'earned'), 0) as points_earned,
        coalesce(-sum(points) filter (where event_type = 'redeemed'), 0) as points_redeemed,
        coalesce(-sum(points) filter (where event_type = 'expired'), 0) as points_expired

    from events
    group by member_id

),

linked as (

    select
        coalesce(known.customer_id, by_email.customer_id) as customer_id,
        members.*

    from members
    left join customers as known
        on members.ledger_customer_id = known.customer_id
    left join customer_by_email as by_email
        on members.email = by_email.email

),

final as (

    select distinct on (customer_id)
        customer_id,
        member_id,
        tier,
        joined_at,
        last_event_at,
        last_redeemed_at,
        points_balance::bigint as points_balance,
        round(points_balance * {{ var('loyalty_point_value') }}, 2)::numeric(14, 2) as points_value,
        points_earned::bigint as points_earned,
        points_redeemed::bigint as points_redeemed,
        points_expired::bigint as points_expired

    from linked
    where customer_id is not null
    order by customer_id asc, last_event_at desc, member_id asc

)

select * from final
