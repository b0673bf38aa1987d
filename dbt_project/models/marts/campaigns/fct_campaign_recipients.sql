{{
    config(
        materialized='view'
    )
}}
-- One row per campaign and recipient (e-mail address) as of the end of run_date: what the ESP
-- reported, and whether the recipient ordered within the attribution window after the send.
-- A view on the incremental table int_campaign_recipients, adding the as-of flag.
with

recipients as (

    select * from {{ ref('int_campaign_recipients') }}

),

final as (

    select
        *,
        sent_at + interval '{{ var("attribution_window_days") | int }} days'
        <= {{ as_of_ts() }} as is_attribution_window_complete

    from recipients

)

select * from final
