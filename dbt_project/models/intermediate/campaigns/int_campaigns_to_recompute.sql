-- Campaigns whose recipient facts can have changed since run_date - attribution_window_days: sent
-- since then minus one attribution window (new orders in their window), with an e-mail event since
-- then (late opens, clicks, unsubscribes), or whose attribution window holds an order of
-- int_orders_to_recompute (a refund, a reload). int_campaign_recipients and int_campaign_funnel
-- delete and recompute exactly these on an incremental run; a rebuilt past day therefore
-- recomputes every campaign touched by anything after it.
{%- set since_ts = lookback_since_ts(var('attribution_window_days')) %}
{%- set window = "interval '" ~ (var('attribution_window_days') | int) ~ " days'" %}
with

campaigns as (

    select * from {{ ref('stg_esp__campaigns') }}

),

campaigns_in_window as (

    -- the same relation again (a CTE read twice would be materialized)
    select * from {{ ref('stg_esp__campaigns') }}

),

email_events as (

    select * from {{ ref('stg_esp__email_events') }}

),

orders_to_recompute as (

    select * from {{ ref('int_orders_to_recompute') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

changed_orders as (

    -- each order looked up by primary key; offset 0 keeps the lookups: joined by order_id,
    -- PostgreSQL over-estimates the union and hash-joins the whole order table
    select distinct changed_order.ordered_at
    from orders_to_recompute
    cross join lateral (
        select orders.ordered_at from orders
        where orders.order_id = orders_to_recompute.order_id
        offset 0  -- noqa: AM09
    ) as changed_order

),

final as (

    select campaign_id from campaigns
    where sent_at >= {{ since_ts }} - {{ window }}
    union
    select campaign_id from email_events
    where occurred_at >= {{ since_ts }} and campaign_id is not null
    union
    select campaigns_in_window.campaign_id
    from changed_orders
    inner join campaigns_in_window
        on
            changed_orders.ordered_at >= campaigns_in_window.sent_at
            and changed_orders.ordered_at < campaigns_in_window.sent_at + {{ window }}

)

select * from final
