-- One row per flow and period (last_30d, last_90d: entry dates in (run_date - N, run_date]): the
-- cohorts of fct_flow_kpis summed (numerators and denominators, never averaged rates) and the lift
-- recomputed from the sums with the same formula. Cohorts whose window is still open are included
-- (their orders so far) and counted in open_window_cohorts / open_window_entrants.
with

kpis as (

    select * from {{ ref('fct_flow_kpis') }}

),

periods as (

    select
        'last_30d' as period,
        30 as period_days
    union all
    select
        'last_90d' as period,
        90 as period_days

),

summed as (

    select
        kpis.flow,
        periods.period,
        min(periods.period_days) as period_days,
        min(kpis.entry_date) as first_entry_date,
        max(kpis.entry_date) as last_entry_date,
        count(*) as cohorts,
        count(*) filter (where kpis.is_window_open) as open_window_cohorts,
        coalesce(sum(kpis.treated_entrants + kpis.holdout_entrants) filter (where kpis.is_window_open), 0)
            as open_window_entrants,
        sum(kpis.treated_entrants) as treated_entrants,
        sum(kpis.holdout_entrants) as holdout_entrants,
        sum(kpis.treated_converters) as treated_converters,
        sum(kpis.holdout_converters) as holdout_converters,
        sum(kpis.treated_orders) as treated_orders,
        sum(kpis.holdout_orders) as holdout_orders,
        sum(kpis.treated_revenue) as treated_revenue,
        sum(kpis.holdout_revenue) as holdout_revenue

    from kpis
    inner join periods
        on kpis.entry_date > {{ run_date() }} - periods.period_days
    group by kpis.flow, periods.period

),

proportions as (

    select
        *,
        treated_converters::numeric / nullif(treated_entrants, 0) as p_treated,
        holdout_converters::numeric / nullif(holdout_entrants, 0) as p_holdout

    from summed

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
        period,
        {{ run_date() }} as as_of_date,
        period_days,
        first_entry_date,
        last_entry_date,
        cohorts::integer as cohorts,
        open_window_cohorts::integer as open_window_cohorts,
        open_window_entrants::bigint as open_window_entrants,
        treated_entrants::bigint as treated_entrants,
        holdout_entrants::bigint as holdout_entrants,
        treated_converters::bigint as treated_converters,
        holdout_converters::bigint as holdout_converters,
        treated_orders::bigint as treated_orders,
        holdout_orders::bigint as holdout_orders,
        treated_revenue::numeric(14, 2) as treated_revenue,
        holdout_revenue::numeric(14, 2) as holdout_revenue,
        {{ proportion_lift_columns() }},
        {{ detectable_lift_columns('treated_entrants', 'holdout_entrants') }}

    from lift

)

select * from final
