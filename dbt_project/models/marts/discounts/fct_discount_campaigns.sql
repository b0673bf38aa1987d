{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['campaign_id'], 'unique': true}],
        pre_hook="{{ delete_discount_campaigns_to_recompute() }}"
    )
}}
-- Why over 150 lines: one job, a discount campaign against its holdout, but four figures (orders,
-- net revenue, and both again over the 30 and 60 days after the window) each with its interval.
-- One row per campaign that carried a discount code (stg_esp__campaigns.discount_code), sent
-- before the end of run_date: its delivered recipients (treated, they got the code) against its
-- holdout (no e-mail, no code; drawn as fct_campaign_holdouts draws it, full-price buyers left out
-- of a discount audience on both sides). Per customer: valid orders and their net revenue (after
-- every discount) in the window [sent_at, sent_at + attribution_window_days), and in the 30 and 60
-- days after it (pull-forward). Differences of means with unpooled standard errors and 95%
-- normal intervals (macro mean_difference: the proportion_lift method for any figure); totals
-- scale the per-customer difference by the treated count. The discount the code gave the treated
-- in the window is observed, not estimated: the return per unit of discount and its interval are
-- the incremental net revenue's divided by it.
-- Incremental per campaign: a run recomputes the campaigns whose windows can still change (sent
-- within attribution window + 60 days + attribution window, for late refunds), or sent after
-- run_date (a rebuilt past day); older campaigns keep their final row.
{%- set window_days = var('attribution_window_days') | int %}
{%- set reach_days = 2 * window_days + 60 %}
with

campaigns as (

    select * from {{ ref('stg_esp__campaigns') }}
    where
        discount_code is not null
        {%- if is_incremental() %}
        and sent_date > {{ run_date() }} - {{ reach_days }}
        {%- endif %}
        and sent_at < {{ as_of_ts() }}

),

recipients as (

    select * from {{ ref('int_campaign_recipients') }}

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

treated as (

    select distinct
        campaigns.campaign_id,
        recipients.customer_id,
        'treated' as arm

    from campaigns
    inner join recipients
        on campaigns.campaign_id = recipients.campaign_id
    where
        recipients.is_delivered
        and recipients.customer_id is not null

),

holdout as (

    select distinct
        campaigns.campaign_id,
        rfm.customer_id,
        'holdout' as arm

    from campaigns
    inner join audiences
        on campaigns.audience = audiences.audience
    inner join rfm
        on
            rfm.snapshot_date = campaigns.sent_date - 1
            and audiences.segment = rfm.segment
    left join audience_offers
        on campaigns.audience = audience_offers.audience
    where
        rfm.is_holdout
        and rfm.is_contactable
        and not {{ leaves_out_full_price_buyer('audience_offers', 'rfm') }}

),

members as (

    select
        arms.*,
        campaigns.sent_at,
        campaigns.discount_code,
        campaigns.sent_at + interval '{{ window_days }} days' as window_end,
        campaigns.sent_at + interval '{{ window_days + 30 }} days' as after_30d_end,
        campaigns.sent_at + interval '{{ window_days + 60 }} days' as after_60d_end

    from (
        select * from treated
        union all
        select * from holdout
    ) as arms
    inner join campaigns
        on arms.campaign_id = campaigns.campaign_id

),

code_discounts as (

    -- what the campaign's code took off its treated members' orders in the window
    select
        members.campaign_id,
        members.customer_id,
        sum(codes.code_discount_amount) as discount_window

    from members
    inner join {{ ref('int_order_discount_codes') }} as codes
        on
            members.customer_id = codes.customer_id
            and members.discount_code = codes.discount_code
            and codes.is_valid_order
            and members.sent_at <= codes.ordered_at
            and members.sent_at + interval '{{ window_days }} days' > codes.ordered_at
    where
        members.arm = 'treated'
        -- only the orders of the campaigns' windows (index on ordered_at), not every order
        and codes.ordered_at >= (select min(campaigns.sent_at) as first_sent_at from campaigns)
        and codes.ordered_at < (
            select max(campaigns.sent_at) as last_sent_at from campaigns
        ) + interval '{{ window_days }} days'
    group by members.campaign_id, members.customer_id

),

member_figures as (

    -- each member's valid orders from the send to 60 days after the window (index on customer_id)
    select
        members.campaign_id,
        members.arm,
        members.customer_id,
        coalesce(code_discounts.discount_window, 0) as discount_window,
        coalesce(figures.orders_window, 0) as orders_window,
        coalesce(figures.net_window, 0) as net_window,
        coalesce(figures.orders_30d, 0) as orders_30d,
        coalesce(figures.net_30d, 0) as net_30d,
        coalesce(figures.orders_60d, 0) as orders_60d,
        coalesce(figures.net_60d, 0) as net_60d

    from members
    left join code_discounts
        on
            members.campaign_id = code_discounts.campaign_id
            and members.customer_id = code_discounts.customer_id
    left join lateral (
        select
            count(*) filter (where orders.ordered_at < members.window_end) as orders_window,
            sum(orders.total_amount) filter (where orders.ordered_at < members.window_end) as net_window,
            count(*) filter (
                where orders.ordered_at >= members.window_end and orders.ordered_at < members.after_30d_end
            ) as orders_30d,
            sum(orders.total_amount) filter (
                where orders.ordered_at >= members.window_end and orders.ordered_at < members.after_30d_end
            ) as net_30d,
            count(*) filter (where orders.ordered_at >= members.window_end) as orders_60d,
            sum(orders.total_amount) filter (where orders.ordered_at >= members.window_end) as net_60d
        from {{ ref('int_orders_as_of') }} as orders
        where
            orders.customer_id = members.customer_id
            and orders.is_valid_order
            and orders.ordered_at >= members.sent_at
            and orders.ordered_at < members.after_60d_end
            and orders.ordered_at < {{ as_of_ts() }}
    ) as figures on true

),

arms as (

    select
        campaign_id,
        {%- for figure in ['orders_window', 'net_window', 'orders_30d', 'net_30d', 'orders_60d', 'net_60d'] %}
        {%- for arm in ['treated', 'holdout'] %}
        coalesce(sum({{ figure }}) filter (where arm = '{{ arm }}'), 0) as {{ figure }}_sum_{{ arm }},
        coalesce(sum({{ figure }} ^ 2) filter (where arm = '{{ arm }}'), 0) as {{ figure }}_sumsq_{{ arm }},
        {%- endfor %}
        {%- endfor %}
        count(*) filter (where arm = 'treated') as n_treated,
        count(*) filter (where arm = 'holdout') as n_holdout,
        coalesce(sum(discount_window) filter (where arm = 'treated'), 0) as discount_given

    from member_figures
    group by campaign_id

),

differences as (

    select
        campaign_id,
        n_treated,
        n_holdout,
        discount_given,
        orders_window_sum_treated,
        orders_window_sum_holdout,
        net_window_sum_treated,
        net_window_sum_holdout,
        {{ mean_difference('incremental_orders_per_treated', 'orders_window') }},
        {{ mean_difference('incremental_orders', 'orders_window', 'n_treated') }},
        {{ mean_difference('incremental_net_revenue', 'net_window', 'n_treated') }},
        {{ mean_difference('pull_forward_orders_per_treated_30d', 'orders_30d') }},
        {{ mean_difference('pull_forward_net_revenue_30d', 'net_30d', 'n_treated') }},
        {{ mean_difference('pull_forward_orders_per_treated_60d', 'orders_60d') }},
        {{ mean_difference('pull_forward_net_revenue_60d', 'net_60d', 'n_treated') }}

    from arms

),

final as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.audience,
        campaigns.discount_code,
        campaigns.sent_at,
        campaigns.sent_date,
        {{ run_date() }} as computed_for_date,
        campaigns.sent_at + interval '{{ window_days }} days' <= {{ as_of_ts() }} as is_window_complete,
        campaigns.sent_at + interval '{{ window_days + 30 }} days' <= {{ as_of_ts() }} as is_30d_after_complete,
        campaigns.sent_at + interval '{{ window_days + 60 }} days' <= {{ as_of_ts() }} as is_60d_after_complete,
        coalesce(differences.n_treated, 0) as treated_customers,
        coalesce(differences.n_holdout, 0) as holdout_customers,
        coalesce(differences.orders_window_sum_treated, 0)::bigint as treated_orders,
        coalesce(differences.orders_window_sum_holdout, 0)::bigint as holdout_orders,
        coalesce(differences.net_window_sum_treated, 0)::numeric(14, 2) as treated_net_revenue,
        coalesce(differences.net_window_sum_holdout, 0)::numeric(14, 2) as holdout_net_revenue,
        coalesce(differences.discount_given, 0)::numeric(14, 2) as discount_given,
        {%- for name in ['incremental_orders_per_treated', 'incremental_orders', 'incremental_net_revenue',
                         'pull_forward_orders_per_treated_30d', 'pull_forward_net_revenue_30d',
                         'pull_forward_orders_per_treated_60d', 'pull_forward_net_revenue_60d'] %}
        {{ mean_difference_columns(name, 'differences') }},
        {%- endfor %}
        round(
            differences.incremental_net_revenue / nullif(differences.discount_given, 0), 6
        )::numeric(16, 6) as return_per_discount,
        round(
            (differences.incremental_net_revenue - 1.96 * differences.incremental_net_revenue_se)
            / nullif(differences.discount_given, 0), 6
        )::numeric(16, 6) as return_per_discount_ci_lower,
        round(
            (differences.incremental_net_revenue + 1.96 * differences.incremental_net_revenue_se)
            / nullif(differences.discount_given, 0), 6
        )::numeric(16, 6) as return_per_discount_ci_upper

    from campaigns
    left join differences
        on campaigns.campaign_id = differences.campaign_id

)

select * from final
