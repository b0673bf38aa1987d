{{
    config(
        materialized='view'
    )
}}
-- One row per valid order placed before the end of run_date with its last-touch campaign (see
-- int_order_attribution, the incremental table with the indexes; this view adds as_of_date).
with

order_attribution as (

    select * from {{ ref('int_order_attribution') }}

),

final as (

    select
        order_id,
        customer_id,
        ordered_at,
        order_date,
        total_amount,
        attributed_campaign_id,
        attribution_touch_type,
        touched_at,
        is_attributed,
        attribution_channel,
        is_holdout_customer,
        {{ run_date() }} as as_of_date

    from order_attribution

)

select * from final
