-- One row per flow and entry date: the flow's treated entrants against its held-out entrants
-- (assigned by a stable hash at entry, so the two groups are comparable), who ordered in the
-- measurement window (measure_days days from the day after the entry: the entry is decided on the
-- data up to the end of its day and pushed after it), their orders and net revenue (valid orders),
-- conversion of both groups with numerators and denominators, and the lift with its 95% interval
-- (the formula of fct_campaign_kpis, macros/flows.sql). Intent to treat: every treated entrant
-- counts, whether or not the push reached them. Windows still open at run_date are marked.
with

entrants as (

    select * from {{ ref('fct_flow_entrants') }}
    where entry_date <= {{ run_date() }}

),

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

entrant_orders as (

    select
        entrants.flow,
        entrants.entry_date,
        entrants.customer_id,
        entrants.is_flow_holdout,
        entrants.measure_days,
        count(orders.order_id) as orders_in_window,
        coalesce(sum(orders.total_amount), 0) as revenue_in_window

    from entrants
    left join orders
        on
            entrants.customer_id = orders.customer_id
            and orders.is_valid_order
            and orders.ordered_at >= (entrants.entry_date + 1)::timestamp at time zone 'UTC'
            and orders.ordered_at < (entrants.entry_date + 1 + entrants.measure_days)::timestamp at time zone 'UTC'
            and orders.ordered_at < {{ as_of_ts() }}
    group by
        entrants.flow, entrants.entry_date, entrants.customer_id, entrants.is_flow_holdout, entrants.measure_days

),

cohorts as (

    select
        flow,
        entry_date,
        max(measure_days) as measure_days,
        count(*) filter (where not is_flow_holdout) as treated_entrants,
        count(*) filter (where is_flow_holdout) as holdout_entrants,
        count(*) filter (where not is_flow_holdout and orders_in_window > 0) as treated_converters,
        count(*) filter (where is_flow_holdout and orders_in_window > 0) as holdout_converters,
        coalesce(sum(orders_in_window) filter (where not is_flow_holdout), 0) as treated_orders,
        coalesce(sum(orders_in_window) filter (where is_flow_holdout), 0) as holdout_orders,
        coalesce(sum(revenue_in_window) filter (where not is_flow_holdout), 0) as treated_revenue,
        coalesce(sum(revenue_in_window) filter (where is_flow_holdout), 0) as holdout_revenue

    from entrant_orders
    group by flow, entry_date

),

proportions as (

    select
        *,
        treated_converters::numeric / nullif(treated_entrants, 0) as p_treated,
        holdout_converters::numeric / nullif(holdout_entrants, 0) as p_holdout

    from cohorts

),

lift as (

    select
        *,
        {{ proportion_lift('p_treated', 'p_holdout', 'treated_entrants', 'holdout_entrants') }}

    from proportions

),

final as (

    select
        flow,
        entry_date,
        {{ run_date() }} as as_of_date,
        measure_days,
        entry_date + measure_days > {{ run_date() }} as is_window_open,
        treated_entrants,
        holdout_entrants,
        treated_converters,
        holdout_converters,
        treated_orders::bigint as treated_orders,
        holdout_orders::bigint as holdout_orders,
        treated_revenue::numeric(14, 2) as treated_revenue,
        holdout_revenue::numeric(14, 2) as holdout_revenue,
        {{ proportion_lift_columns() }},
        {{ detectable_lift_columns('treated_entrants', 'holdout_entrants') }}

    from lift

)

select * from final
