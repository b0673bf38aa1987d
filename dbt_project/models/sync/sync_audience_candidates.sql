-- Every customer an audience's rule picks for run_date, before the compliance split: the RFM
-- audiences (seed `audiences`: segment -> audience), the forecast audience high_value_at_risk
-- (int_customers_high_value_at_risk) and the lifecycle flows' members (sync_flow_members,
-- audiences flow_*). sync_audience_members keeps the contactable, non-holdout ones;
-- sync_holdout_members the contactable holdout ones: one rule for every audience. Margin
-- protection (seed audience_offers): a discount audience leaves out full-price buyers here, before
-- the holdout split, so its holdout is drawn from the same customers as its members. Reward
-- cooldown (same seed, loyal_reward): a reward audience leaves out whoever redeemed a loyalty
-- reward in its last reward_cooldown_days days, also before the holdout split.
with

rfm as (

    select * from {{ ref('fct_customer_rfm_daily') }}
    where snapshot_date = {{ run_date() }}

),

audiences as (

    select * from {{ ref('audiences') }}

),

high_value_at_risk as (

    select * from {{ ref('int_customers_high_value_at_risk') }}

),

flow_members as (

    select * from {{ ref('sync_flow_members') }}

),

audience_offers as (

    select * from {{ ref('audience_offers') }}

),

loyalty as (

    select * from {{ ref('int_customer_loyalty') }}

),

picked as (

    select
        audiences.audience,
        rfm.customer_id

    from rfm
    inner join audiences
        on rfm.segment = audiences.segment

    union all

    select
        'high_value_at_risk' as audience,
        customer_id

    from high_value_at_risk

    union all

    select
        audience,
        customer_id

    from flow_members

),

final as (

    select
        picked.audience,
        picked.customer_id,
        rfm.segment,
        rfm.snapshot_date,
        rfm.is_contactable,
        rfm.is_holdout

    from picked
    inner join rfm
        on picked.customer_id = rfm.customer_id
    left join audience_offers
        on picked.audience = audience_offers.audience
    left join loyalty
        on picked.customer_id = loyalty.customer_id
    where
        not {{ leaves_out_full_price_buyer('audience_offers', 'rfm') }}
        and not coalesce(
            loyalty.last_redeemed_at
            >= {{ as_of_ts() }} - make_interval(days => audience_offers.reward_cooldown_days),
            false
        )

)

select * from final
