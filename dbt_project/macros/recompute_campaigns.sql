{#-
    Campaigns whose recipient facts can have changed since run_date - attribution_window_days
    (all campaigns on a full build): sent since then minus one attribution window (new orders in
    their window), with an e-mail event since then (late opens, clicks, unsubscribes), or whose
    attribution window holds an order whose status changed or was reloaded since then (a refund).
    A rebuilt past day therefore recomputes every campaign touched by anything after it.
    `campaigns_to_recompute` is the SELECT (arguments: relations or CTE names);
    `delete_campaigns_to_recompute` the pre-hook of int_campaign_recipients.
-#}
{% macro campaigns_to_recompute(campaigns, email_events, status_history, orders) -%}
    {%- set since_ts = incremental_since_ts(var('attribution_window_days')) -%}
    {%- set window = "interval '" ~ (var('attribution_window_days') | int) ~ " days'" -%}
    select campaign_id from {{ campaigns }}
    where sent_at >= {{ since_ts }} - {{ window }}
    union
    select campaign_id from {{ email_events }}
    where occurred_at >= {{ since_ts }} and campaign_id is not null
    union
    select campaigns_in_window.campaign_id
    from ({{ changed_orders(orders, status_history, ['ordered_at']) }}) as orders_changed
    inner join {{ campaigns }} as campaigns_in_window
        on
            campaigns_in_window.sent_at <= orders_changed.ordered_at
            and campaigns_in_window.sent_at + {{ window }} > orders_changed.ordered_at
{%- endmacro %}

{% macro delete_campaigns_to_recompute() -%}
    {%- if is_incremental() -%}
delete from {{ this }}
where campaign_id = any(array(
    {{ campaigns_to_recompute(ref('stg_esp__campaigns'), ref('stg_esp__email_events'),
                              ref('stg_shop__order_status_history'), ref('stg_shop__orders')) }}
))
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}
