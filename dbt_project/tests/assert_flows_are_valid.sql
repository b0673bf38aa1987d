{#-
    seeds/flows.csv must make sense, column by column (docs/flows.md, "Validation"): a wrong value
    fails the build with one message naming each flow, column and value, before any flow model runs.
    The rows returned are the problems; when there are any, the test raises with them so the message
    a user reads (dbt's log, `ecrm build`, the Airflow task) says what to fix, not "got 2 results".
-#}
{%- set problems -%}
with

flows as (

    select * from {{ ref('flows') }}

),

segment_map as (

    select distinct segment from {{ ref('rfm_segment_map') }}

),

taken_audiences as (

    -- the RFM audiences, and the forecast's (models/sync/sync_audience_candidates.sql)
    select distinct
        audience,
        'the RFM audience' as owner
    from {{ ref('audiences') }}
    union all
    select
        'high_value_at_risk' as audience,
        'the forecast audience' as owner

),

trigger_values as (

    -- every `|`-separated value of trigger_from and trigger_to
    select
        flows.flow,
        flows.trigger_type,
        sides.column_name,
        sides.column_order,
        sides.trigger_value
    from flows
    cross join lateral (
        select
            'trigger_from' as column_name,
            4 as column_order,
            unnest(string_to_array(flows.trigger_from, '|')) as trigger_value
        union all
        select
            'trigger_to' as column_name,
            5 as column_order,
            unnest(string_to_array(flows.trigger_to, '|')) as trigger_value
    ) as sides

),

bad_trigger_values as (

    select
        flow,
        column_name,
        trigger_value as bad_value,
        case trigger_type
            when 'segment_transition' then 'not a segment of seeds/rfm_segment_map.csv, nor any'
            when 'lifecycle_entered' then 'not a lifecycle stage: prospect, new, active, at_risk, lapsed, lost, any'
            when 'churn_risk_high' then 'not a churn risk: low, medium, high (trigger_from also none), any'
            else 'must be any: ' || trigger_type || ' does not use it'
        end as problem,
        column_order
    from trigger_values
    where
        trigger_type in ('segment_transition', 'lifecycle_entered', 'churn_risk_high',
            'first_order', 'days_since_last_order')
        and trigger_value <> 'any'
        and not (
            (trigger_type = 'segment_transition' and trigger_value in (select segment from segment_map))
            or (trigger_type = 'lifecycle_entered'
                and trigger_value in ('prospect', 'new', 'active', 'at_risk', 'lapsed', 'lost'))
            or (trigger_type = 'churn_risk_high' and trigger_value in ('low', 'medium', 'high'))
            or (trigger_type = 'churn_risk_high' and column_name = 'trigger_from' and trigger_value = 'none')
        )

),

found as (

    select
        flow,
        'flow' as column_name,
        flow as bad_value,
        'must be lower-case letters, digits and underscores' as problem,
        1 as column_order
    from flows where flow is null or flow !~ '^[a-z][a-z0-9_]*$'
    union all
    select
        flow,
        'flow',
        flow,
        'appears more than once',
        1
    from flows group by flow having count(*) > 1
    union all
    select
        flow,
        'enabled',
        null,
        'must be true or false',
        2
    from flows where enabled is null
    union all
    select
        flow,
        'trigger_type',
        trigger_type,
        'must be segment_transition, lifecycle_entered, first_order, days_since_last_order or churn_risk_high',
        3
    from flows
    where
        trigger_type is null
        or trigger_type not in (
            'segment_transition', 'lifecycle_entered', 'first_order', 'days_since_last_order', 'churn_risk_high'
        )
    union all
    select
        flow,
        'trigger_from',
        null,
        'must not be empty (any: whatever it was)',
        4
    from flows where coalesce(trigger_from, '') = ''
    union all
    select
        flow,
        'trigger_to',
        null,
        'must not be empty (any: unused)',
        5
    from flows where coalesce(trigger_to, '') = ''
    union all
    select * from bad_trigger_values
    union all
    select
        flow,
        'trigger_days',
        trigger_days::text,
        case
            when trigger_type = 'days_since_last_order' then 'must be at least 1 for days_since_last_order'
            else 'must be 0 or more'
        end,
        6
    from flows
    where
        trigger_days is null
        or trigger_days < 0
        or (trigger_type = 'days_since_last_order' and trigger_days < 1)
    union all
    select
        flow,
        'exit_on_order',
        null,
        'must be true or false',
        7
    from flows where exit_on_order is null
    union all
    select
        flow,
        'exit_on_segment_leave',
        null,
        'must be true or false',
        8
    from flows where exit_on_segment_leave is null
    union all
    select
        flow,
        'cooldown_days',
        cooldown_days::text,
        'must be at least 1 (days between two entries of a customer)',
        9
    from flows where cooldown_days is null or cooldown_days < 1
    union all
    select
        flow,
        'priority',
        priority::text,
        'must be at least 1 (1 = highest)',
        10
    from flows where priority is null or priority < 1
    union all
    select
        flow,
        'holdout_pct',
        holdout_pct::text,
        'must be between 0 and 100 (percent)',
        11
    from flows where holdout_pct is null or holdout_pct not between 0 and 100
    union all
    select
        flow,
        'window_days',
        window_days::text,
        'must be at least 1 (days in the audience)',
        12
    from flows where window_days is null or window_days < 1
    union all
    select
        flow,
        'measure_days',
        measure_days::text,
        'must be at least 1 (days measured after the entry)',
        13
    from flows where measure_days is null or measure_days < 1
    union all
    select
        flow,
        'audience',
        audience,
        'must be lower-case letters, digits and underscores',
        14
    from flows where audience is null or audience !~ '^[a-z][a-z0-9_]*$'
    union all
    select
        flows.flow,
        'audience',
        flows.audience,
        'collides with ' || taken_audiences.owner || ' of that name: a flow needs an audience of its own',
        14
    from flows
    inner join taken_audiences on flows.audience = taken_audiences.audience
    union all
    select
        min(flow),
        'audience',
        audience,
        'is the audience of several flows: ' || string_agg(flow, ', ' order by flow),
        14
    from flows group by audience having count(*) > 1

),

final as (

    select
        coalesce(flow, '(no name)') as flow,
        column_name,
        bad_value,
        problem,
        column_order
    from found

)
{%- endset -%}

{%- if execute and load_relation(ref('flows')) is not none and load_relation(ref('rfm_segment_map')) is not none
    and load_relation(ref('audiences')) is not none -%}
    {%- set rows = run_query(problems ~ "\nselect * from final order by flow, column_order, bad_value") -%}
    {%- if rows | length > 0 -%}
        {%- set lines = [] -%}
        {%- for row in rows -%}
            {%- do lines.append("flow " ~ row['flow'] ~ ": " ~ row['column_name']
                ~ (" = " ~ row['bad_value'] if row['bad_value'] is not none else "") ~ " " ~ row['problem']) -%}
        {%- endfor -%}
        {{ exceptions.raise_compiler_error("seeds/flows.csv refused: " ~ lines | join("; ")) }}
    {%- endif -%}
{%- endif %}

{{ problems }}

select * from final
