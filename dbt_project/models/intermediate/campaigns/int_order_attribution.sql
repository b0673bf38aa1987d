{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['order_id'], 'unique': true},
            {'columns': ['order_date']},
            {'columns': ['attributed_campaign_id']},
        ],
        pre_hook="{{ delete_to_recompute('order_id', ref('int_orders_to_recompute')) }}"
    )
}}
-- Why over 150 lines: one job (last touch per order): touches of two kinds with their own
-- windows, ranked; the event read is bounded by the orders being attributed.
-- One row per valid order placed before the end of run_date, with its last-touch campaign.
-- Touches of the order's customer: a click on a campaign e-mail counts for
-- attribution_click_window_days (default 7) after the click, a delivered campaign for
-- attribution_window_days (default 7) after its sent_at; windows are [touch, touch + N days).
-- A click beats a delivery (it shows intent); among touches of the same kind the latest before
-- the order wins (ties: campaign_id). No touch in its window: organic.
-- Incremental (fct_order_attribution adds as_of_date on top): a run re-attributes the orders placed
-- since run_date - attribution_window_days and every order whose status changed since then (a
-- rebuilt past day includes later changes, so an order refunded later is valid again as of that
-- day); the pre-hook first deletes exactly those orders and everything placed after run_date.
-- Only e-mail events that can touch those orders are read (from the earliest of them minus the
-- longer window), so the daily run does not read the whole event history.
{%- set touch_reach_days = [
    var('attribution_window_days') | int, var('attribution_click_window_days') | int
] | max + 1 %}
with

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

campaigns as (

    select * from {{ ref('stg_esp__campaigns') }}

),

email_events as (

    select * from {{ ref('stg_esp__email_events') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

valid_orders as (

    select orders.* from orders
    {%- if is_incremental() %}
    inner join {{ ref('int_orders_to_recompute') }} as orders_to_attribute
        on orders.order_id = orders_to_attribute.order_id
    {%- endif %}
    where orders.is_valid_order

),

customers_by_email as (

    select
        email,
        min(customer_id) as customer_id

    from customers
    group by email

),

campaign_events as (

    select
        email_events.campaign_id,
        email_events.event_type,
        email_events.occurred_at,
        campaigns.sent_at,
        coalesce(email_events.customer_id, customers_by_email.customer_id) as customer_id

    from email_events
    inner join campaigns
        on email_events.campaign_id = campaigns.campaign_id
    left join customers_by_email
        on email_events.email = customers_by_email.email
    where
        email_events.occurred_at < {{ as_of_ts() }}
        -- only touches that can reach an order being attributed: a touch's window starts at the
        -- click or the send, the event comes after the send (one day of slack; index on occurred_at)
        and email_events.occurred_at >= (
            select min(valid_orders.ordered_at) as first_ordered_at from valid_orders
        ) - interval '{{ touch_reach_days }} days'
        and email_events.event_type in ('delivered', 'click')

),

touches as (

    select distinct
        customer_id,
        campaign_id,
        'click' as touch_type,
        1 as touch_priority,
        occurred_at as touched_at,
        occurred_at
        + interval '{{ var("attribution_click_window_days") | int }} days' as window_ends_at

    from campaign_events
    where event_type = 'click' and customer_id is not null

    union all

    select distinct
        customer_id,
        campaign_id,
        'delivery' as touch_type,
        2 as touch_priority,
        sent_at as touched_at,
        sent_at + interval '{{ var("attribution_window_days") | int }} days' as window_ends_at

    from campaign_events
    where event_type = 'delivered' and customer_id is not null

),

candidates as (

    select
        valid_orders.order_id,
        touches.campaign_id,
        touches.touch_type,
        touches.touched_at,
        row_number() over (
            partition by valid_orders.order_id
            order by touches.touch_priority asc, touches.touched_at desc, touches.campaign_id desc
        ) as touch_rank

    from valid_orders
    inner join touches
        on
            valid_orders.customer_id = touches.customer_id
            and valid_orders.ordered_at >= touches.touched_at
            and valid_orders.ordered_at < touches.window_ends_at

),

final as (

    select
        valid_orders.order_id,
        valid_orders.customer_id,
        valid_orders.ordered_at,
        valid_orders.order_date,
        valid_orders.total_amount,
        candidates.campaign_id as attributed_campaign_id,
        candidates.touch_type as attribution_touch_type,
        candidates.touched_at,
        candidates.campaign_id is not null as is_attributed,
        case when candidates.campaign_id is null then 'organic' else 'email' end as attribution_channel,
        {{ is_holdout('valid_orders.customer_id') }} as is_holdout_customer

    from valid_orders
    left join candidates
        on
            valid_orders.order_id = candidates.order_id
            and candidates.touch_rank = 1

)

select * from final
