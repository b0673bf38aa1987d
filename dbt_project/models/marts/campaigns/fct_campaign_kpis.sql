-- One row per campaign sent before the end of run_date: funnel counts (numerators and
-- denominators), rates, and the incremental lift of delivered recipients over the holdout group.
with

campaigns as (

    select * from {{ ref('stg_esp__campaigns') }}

),

recipients as (

    select * from {{ ref('fct_campaign_recipients') }}

),

holdouts as (

    select * from {{ ref('int_campaign_holdouts_measured') }}

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

recipient_counts as (

    select
        campaign_id,
        count(*) as recipients,
        count(*) filter (where is_delivered) as delivered,
        count(*) filter (where is_bounced) as bounced,
        count(*) filter (where is_delivered and has_opened) as human_openers,
        count(*) filter (where is_delivered and has_clicked) as clickers,
        count(*) filter (where has_unsubscribed) as unsubscribes,
        count(*) filter (where has_complained) as complaints,
        count(*) filter (where is_delivered and has_converted) as converters,
        coalesce(sum(attributed_orders) filter (where is_delivered), 0) as attributed_orders,
        coalesce(sum(attributed_revenue) filter (where is_delivered), 0) as attributed_revenue

    from recipients
    group by campaign_id

),

joined as (

    select
        campaigns_sent.campaign_id,
        campaigns_sent.campaign_name,
        campaigns_sent.audience,
        campaigns_sent.variant,
        campaigns_sent.sent_at,
        campaigns_sent.sent_date,
        coalesce(recipient_counts.recipients, 0) as recipients,
        coalesce(recipient_counts.delivered, 0) as delivered,
        coalesce(recipient_counts.bounced, 0) as bounced,
        coalesce(recipient_counts.human_openers, 0) as human_openers,
        coalesce(recipient_counts.clickers, 0) as clickers,
        coalesce(recipient_counts.unsubscribes, 0) as unsubscribes,
        coalesce(recipient_counts.complaints, 0) as complaints,
        coalesce(recipient_counts.converters, 0) as converters,
        coalesce(recipient_counts.attributed_orders, 0) as attributed_orders,
        coalesce(recipient_counts.attributed_revenue, 0) as attributed_revenue,
        coalesce(holdouts.holdout_customers, 0) as holdout_customers,
        coalesce(holdouts.holdout_converters, 0) as holdout_converters,
        coalesce(holdouts.holdout_revenue, 0) as holdout_revenue,
        coalesce(last_touch.last_touch_orders, 0) as last_touch_orders,
        coalesce(last_touch.last_touch_revenue, 0) as last_touch_revenue,
        campaigns_sent.sent_at + interval '{{ var("attribution_window_days") | int }} days'
        <= {{ as_of_ts() }} as is_attribution_window_complete

    from campaigns_sent
    left join recipient_counts
        on campaigns_sent.campaign_id = recipient_counts.campaign_id
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
        p_treated - p_holdout as absolute_lift,
        (p_treated - p_holdout) / nullif(p_holdout, 0) as relative_lift,
        -- unpooled standard error of the difference of two proportions
        sqrt(
            p_treated * (1 - p_treated) / nullif(delivered, 0)
            + p_holdout * (1 - p_holdout) / nullif(holdout_customers, 0)
        ) as absolute_lift_se

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
        round(p_treated, 6)::numeric(12, 6) as treated_conversion_rate,
        round(p_holdout, 6)::numeric(12, 6) as holdout_conversion_rate,
        round(absolute_lift, 6)::numeric(12, 6) as absolute_lift,
        round(relative_lift, 6)::numeric(12, 6) as relative_lift,
        round(absolute_lift_se, 6)::numeric(12, 6) as absolute_lift_se,
        round(absolute_lift - 1.96 * absolute_lift_se, 6)::numeric(12, 6) as absolute_lift_ci_lower,
        round(absolute_lift + 1.96 * absolute_lift_se, 6)::numeric(12, 6) as absolute_lift_ci_upper,
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
        )::numeric(14, 6) as revenue_lift_per_customer

    from lift

)

select * from final
