-- Who qualifies for which enabled flow on run_date, and why: one row per customer and flow whose
-- trigger (seeds/flows.csv) fired today, before the entry rules (contactable, cooldown, frequency
-- cap, priority, holdout: fct_flow_entrants). Reads run_date's and the day before's snapshots (the
-- daily marts), so rebuilding a past day gives the same rows; the churn trigger reads the day
-- before's forecast (docs/flows.md). Why over 150 lines: one short CTE per trigger type, unioned;
-- five models would spread one table of rules (seeds/flows.csv) over five files.
with

flows as (

    select * from {{ ref('flows') }}
    where enabled

),

transitions as (

    select * from {{ ref('fct_segment_transitions') }}
    where transition_date = {{ run_date() }}

),

today as (

    select * from {{ ref('fct_customer_rfm_daily') }}
    where snapshot_date = {{ run_date() }}

),

yesterday as (

    select * from {{ ref('fct_customer_rfm_daily') }}
    where snapshot_date = {{ run_date() }} - 1

),

customers as (

    select * from {{ ref('dim_customers') }}

),

predictions as (

    select * from {{ ref('stg_predictions__customer_predictions') }}
    where snapshot_date between {{ run_date() }} - 2 and {{ run_date() }} - 1

),

churn_risk_changes as (

    select
        latest.customer_id,
        coalesce(earlier.churn_risk, 'none') as from_value,
        latest.churn_risk as to_value,
        latest.snapshot_date

    from predictions as latest
    left join predictions as earlier
        on
            latest.customer_id = earlier.customer_id
            and latest.snapshot_date - 1 = earlier.snapshot_date
    where
        latest.snapshot_date = {{ run_date() }} - 1
        and latest.churn_risk is distinct from earlier.churn_risk

),

segment_transition as (

    select
        flows.flow,
        transitions.customer_id,
        'segment ' || transitions.from_segment || ' -> ' || transitions.to_segment as reason

    from flows
    inner join transitions
        on
            {{ flow_value_matches('flows.trigger_from', 'transitions.from_segment') }}
            and {{ flow_value_matches('flows.trigger_to', 'transitions.to_segment') }}
    where flows.trigger_type = 'segment_transition'

),

lifecycle_entered as (

    select
        flows.flow,
        today.customer_id,
        'lifecycle ' || yesterday.lifecycle_stage || ' -> ' || today.lifecycle_stage as reason

    from flows
    inner join today
        on {{ flow_value_matches('flows.trigger_to', 'today.lifecycle_stage') }}
    inner join yesterday
        on
            today.customer_id = yesterday.customer_id
            and today.lifecycle_stage <> yesterday.lifecycle_stage
            and {{ flow_value_matches('flows.trigger_from', 'yesterday.lifecycle_stage') }}
    where flows.trigger_type = 'lifecycle_entered'

),

first_order as (

    select
        flows.flow,
        customers.customer_id,
        'first order on ' || cast({{ utc_date('customers.first_order_at') }} as text) as reason

    from flows
    inner join customers
        on {{ run_date() }} - {{ utc_date('customers.first_order_at') }} between 0 and flows.trigger_days
    where flows.trigger_type = 'first_order'

),

days_since_last_order as (

    select
        flows.flow,
        customers.customer_id,
        cast(customers.days_since_last_order as text) || ' days since the last order' as reason

    from flows
    inner join customers
        on flows.trigger_days = customers.days_since_last_order
    where flows.trigger_type = 'days_since_last_order'

),

churn_risk_high as (

    select
        flows.flow,
        churn_risk_changes.customer_id,
        'churn risk ' || churn_risk_changes.from_value || ' -> ' || churn_risk_changes.to_value
        || ' on ' || cast(churn_risk_changes.snapshot_date as text) as reason

    from flows
    inner join churn_risk_changes
        on
            {{ flow_value_matches('flows.trigger_from', 'churn_risk_changes.from_value') }}
            and {{ flow_value_matches('flows.trigger_to', 'churn_risk_changes.to_value') }}
    where flows.trigger_type = 'churn_risk_high'

),

fired as (

    select * from segment_transition
    union all
    select * from lifecycle_entered
    union all
    select * from first_order
    union all
    select * from days_since_last_order
    union all
    select * from churn_risk_high

),

final as (

    select
        {{ run_date() }} as candidate_date,
        fired.flow,
        fired.customer_id,
        fired.reason

    from fired

)

select * from final
