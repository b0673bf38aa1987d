{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['campaign_id'], 'unique': true}],
        pre_hook="{{ delete_to_recompute('campaign_id', ref('int_campaigns_to_recompute')) }}"
    )
}}
-- Per campaign sent before the end of run_date: the recipient funnel (numerators and
-- denominators) from int_campaign_recipients. Opens, clicks, conversions and attributed orders
-- count for delivered recipients only. Incremental per campaign: a run recomputes exactly the
-- campaigns int_campaign_recipients recomputes (int_campaigns_to_recompute); the others'
-- recipients did not change. fct_campaign_kpis reads it instead of every recipient ever.
-- depends_on: {{ ref('int_campaigns_to_recompute') }}
with

recipients as (

    {%- if is_incremental() %}
    -- the recomputed campaigns' recipients through the index on campaign_id
    select campaign_recipients.* from {{ ref('int_campaign_recipients') }} as campaign_recipients
    where campaign_recipients.campaign_id = any(array(
        select campaigns.campaign_id from {{ ref('int_campaigns_to_recompute') }} as campaigns
    ))
    {%- else %}
    select * from {{ ref('int_campaign_recipients') }}
    {%- endif %}

),

final as (

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

)

select * from final
