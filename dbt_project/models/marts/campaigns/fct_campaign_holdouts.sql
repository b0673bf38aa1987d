{{ config(materialized='view') }}
-- Per campaign: the holdout group it is compared with, and how many of them ordered within the
-- attribution window after the send. Holdout group = contactable customers with is_holdout whose
-- RFM segment on the day before the send (the snapshot the audience was synced from) belongs to
-- the campaign's audience. Reads the daily RFM fact (a mart, hence this layer), so it needs that
-- day's snapshot. A view: computed inside fct_campaign_kpis' build, as before. A discount
-- audience (seed audience_offers) leaves full-price buyers out of its holdout as of its members.
with

campaigns as (

    select * from {{ ref('stg_esp__campaigns') }}

),

audiences as (

    select * from {{ ref('audiences') }}

),

audience_offers as (

    select * from {{ ref('audience_offers') }}

),

rfm as (

    select * from {{ ref('fct_customer_rfm_daily') }}

),

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

campaigns_sent as (

    select * from campaigns
    where sent_at < {{ as_of_ts() }}

),

holdout_members as (

    select
        campaigns_sent.campaign_id,
        campaigns_sent.sent_at,
        rfm.customer_id

    from campaigns_sent
    inner join audiences
        on campaigns_sent.audience = audiences.audience
    inner join rfm
        on
            rfm.snapshot_date = campaigns_sent.sent_date - 1
            and audiences.segment = rfm.segment
    left join audience_offers
        on campaigns_sent.audience = audience_offers.audience
    where
        rfm.is_holdout
        and rfm.is_contactable
        -- the holdout of a discount audience leaves out full-price buyers as its members did
        and not {{ leaves_out_full_price_buyer('audience_offers', 'rfm') }}

),

member_conversions as (

    select
        holdout_members.campaign_id,
        holdout_members.customer_id,
        count(orders.order_id) as orders_in_window,
        coalesce(sum(orders.total_amount), 0) as revenue_in_window

    from holdout_members
    left join orders
        on
            holdout_members.customer_id = orders.customer_id
            and orders.is_valid_order
            and holdout_members.sent_at <= orders.ordered_at
            and holdout_members.sent_at + interval '{{ var("attribution_window_days") | int }} days'
            > orders.ordered_at
    group by holdout_members.campaign_id, holdout_members.customer_id

),

final as (

    select
        campaign_id,
        count(*) as holdout_customers,
        count(*) filter (where orders_in_window > 0) as holdout_converters,
        sum(revenue_in_window)::numeric(14, 2) as holdout_revenue

    from member_conversions
    group by campaign_id

)

select * from final
