-- Why over 150 lines: funnel rates and the holdout lift (proportions, lift) are published
-- together with their numerators and denominators; the lift arithmetic has its unit test.
-- One row per campaign sent before the end of run_date: funnel counts (numerators and
-- denominators), rates, and the incremental lift of delivered recipients over the holdout group.
with

campaigns as (

    select * from {{ ref('stg_esp__campaigns') }}

),

funnel as (

    select * from {{ ref('int_campaign_funnel') }}

),

holdouts as (

    select * from {{ ref('fct_campaign_holdouts') }}

),

order_attribution as (

    select * from {{ ref('fct_order_attribution') }}

),

last_touch as (

    select
        attributed_campaign_id as campaign_id,
        count(*) as last_touch_orders,
        sum(total_amount) as last_touch_revenue

    from order_attribution
    where is_attributed
    group by attributed_campaign_id

),

campaigns_sent as (

    select * from campaigns
    where sent_at < {{ as_of_ts() }}

),

joined as (

    select
        campaigns_sent.campaign_id,
        campaigns_sent.campaign_name,
        campaigns_sent.audience,
        campaigns_sent.variant,
        campaigns_sent.sent_at,
        campaigns_sent.sent_date,
        coalesce(funnel.recipients, 0) as recipients,
        coalesce(funnel.delivered, 0) as delivered,
        coalesce(funnel.bounced, 0) as bounced,
        coalesce(funnel.human_openers, 0) as human_openers,
        coalesce(funnel.clickers, 0) as clickers,
        coalesce(funnel.unsubscribes, 0) as unsubscribes,
        coalesce(funnel.complaints, 0) as complaints,
        coalesce(funnel.converters, 0) as converters,
        coalesce(funnel.attributed_orders, 0) as attributed_orders,
        coalesce(funnel.attributed_revenue, 0) as attributed_revenue,
        coalesce(holdouts.holdout_customers, 0) as holdout_customers,
        coalesce(holdouts.holdout_converters, 0) as holdout_converters,
        coalesce(holdouts.holdout_revenue, 0) as holdout_revenue,
        coalesce(last_touch.last_touch_orders, 0) as last_touch_orders,
        coalesce(last_touch.last_touch_revenue, 0) as last_touch_revenue,
        campaigns_sent.sent_at + interval '{{ var("attribution_window_days") | int }} days'
        <= {{ as_of_ts() }} as is_attribution_window_complete

    from campaigns_sent
    left join funnel
        on campaigns_sent.campaign_id = funnel.campaign_id
    left join holdouts
        on campaigns_sent.campaign_id = holdouts.campaign_id
    left join last_touch
        on campaigns_sent.campaign_id = last_touch.campaign_id

),

proportions as (

    select
        *,
        converters::numeric / nullif(delivered, 0) as p_treated,
        holdout_converters::numeric / nullif(holdout_customers, 0) as p_holdout

    from joined

),

lift as (

    select
        *,
        {{ proportion_lift('p_treated', 'p_holdout', 'delivered', 'holdout_customers') }}

    from proportions

),

final as (

    select
        campaign_id,
        campaign_name,
        audience,
        variant,
        sent_at,
        sent_date,
        {{ run_date() }} as as_of_date,
        is_attribution_window_complete,
        recipients,
        delivered,
        bounced,
        human_openers,
        clickers,
        unsubscribes,
        complaints,
        converters,
        attributed_orders::bigint as attributed_orders,
        attributed_revenue::numeric(14, 2) as attributed_revenue,
        round(delivered::numeric / nullif(recipients, 0), 6)::numeric(12, 6) as delivery_rate,
        round(bounced::numeric / nullif(recipients, 0), 6)::numeric(12, 6) as bounce_rate,
        round(human_openers::numeric / nullif(delivered, 0), 6)::numeric(12, 6) as open_rate,
        round(clickers::numeric / nullif(delivered, 0), 6)::numeric(12, 6) as click_rate,
        round(clickers::numeric / nullif(human_openers, 0), 6)::numeric(12, 6) as click_to_open_rate,
        round(unsubscribes::numeric / nullif(delivered, 0), 6)::numeric(12, 6) as unsubscribe_rate,
        round(complaints::numeric / nullif(delivered, 0), 6)::numeric(12, 6) as complaint_rate,
        round(converters::numeric / nullif(delivered, 0), 6)::numeric(12, 6) as conversion_rate,
        delivered as treated_customers,
        converters as treated_converters,
        holdout_customers,
        holdout_converters,
        holdout_revenue::numeric(14, 2) as holdout_revenue,
        {{ proportion_lift_columns() }},
        last_touch_orders::bigint as last_touch_orders,
        last_touch_revenue::numeric(14, 2) as last_touch_revenue,
        round(
            attributed_revenue::numeric / nullif(delivered, 0), 6
        )::numeric(14, 6) as revenue_per_recipient,
        round(
            holdout_revenue::numeric / nullif(holdout_customers, 0), 6
        )::numeric(14, 6) as holdout_revenue_per_customer,
        round(
            attributed_revenue::numeric / nullif(delivered, 0)
            - holdout_revenue::numeric / nullif(holdout_customers, 0),
            6
        )::numeric(14, 6) as revenue_lift_per_customer,
        {{ detectable_lift_columns('delivered', 'holdout_customers') }}

    from lift

)

select * from final
