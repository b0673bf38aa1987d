{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_days_to_rebuild('entry_date', 0) }}",
        full_refresh=false,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['entry_date', 'flow']},
            {'columns': ['customer_id', 'entry_date']},
        ]
    )
}}
-- Why over 150 lines: one rule per CTE (contactable, cooldown, cap, priority, holdout), each
-- readable on its own with the reason it exists.
-- One row per customer and flow entered on run_date (docs/flows.md). Entrants of earlier days are
-- history: this model only reads them (cooldown, cap), never recomputes them, and a rerun of a day
-- deletes and rebuilds that day only, from inputs that do not change for it (that day's snapshot,
-- earlier entrants, pushes before it), so it yields the same rows. full_refresh=false: a
-- --full-refresh must not wipe the history the rules read (entrants depend on earlier entrants).
-- Rules, in order: only contactable customers outside the campaign holdout; at most once per
-- cooldown per flow; nobody who entered a flow (treated or held out, so both groups are kept out of
-- other flows alike), was pushed a flow message or was sent a campaign e-mail in the last
-- flow_cap_days days (run_date included for campaigns); of several flows the same day, the
-- highest-priority one; then the flow's own holdout by a stable hash of (customer, flow).
with

candidates as (

    select * from {{ ref('fct_flow_candidates') }}

),

flows as (

    select * from {{ ref('flows') }}

),

today as (

    select * from {{ ref('fct_customer_rfm_daily') }}
    where snapshot_date = {{ run_date() }}

),

flow_pushes as (

    -- flow messages the mailer pushed (confirmed adds to a flow audience) on the days before run_date
    select distinct customer_id from {{ source('mailer', 'member_history') }}
    where
        action = 'add'
        and result in ('sent', 'skipped')
        and not dry_run
        and audience like 'flow\_%'
        and day < {{ run_date() }}
        and day > {{ run_date() }} - {{ var('flow_cap_days') | int }}

),

campaign_sends as (

    -- campaign e-mails the ESP processed for the customer in the cap's days up to the end of run_date
    -- (an add to a campaign audience is not a message: the first sync adds everybody at once)
    select distinct customer_id from {{ ref('stg_esp__email_events') }}
    where
        event_type = 'processed'
        and campaign_id is not null
        and customer_id is not null
        and occurred_at >= ({{ run_date() }} - {{ var('flow_cap_days') | int }} + 1)::timestamp at time zone 'UTC'
        and occurred_at < {{ as_of_ts() }}

),

earlier_entrants as (

    {% if is_incremental() -%}
    select
        customer_id,
        flow,
        entry_date
    from {{ this }}
    where entry_date < {{ run_date() }}
    {%- else -%}
    select
        cast(null as text) as customer_id,
        cast(null as text) as flow,
        cast(null as date) as entry_date
    where false
    {%- endif %}

),

contactable as (

    -- suppressed (unsubscribe, hard bounce, complaint), no consent, invalid address and the
    -- campaign holdout never enter
    select
        candidates.*,
        today.segment,
        today.lifecycle_stage

    from candidates
    inner join today
        on candidates.customer_id = today.customer_id
    where
        today.is_contactable
        and not today.is_holdout

),

out_of_cooldown as (

    select contactable.*
    from contactable
    inner join flows
        on contactable.flow = flows.flow
    where not exists (
        select 1 as found from earlier_entrants
        where
            earlier_entrants.customer_id = contactable.customer_id
            and earlier_entrants.flow = contactable.flow
            and earlier_entrants.entry_date > {{ run_date() }} - flows.cooldown_days
    )

),

under_cap as (

    select out_of_cooldown.*
    from out_of_cooldown
    where
        not exists (
            select 1 as found from earlier_entrants
            where
                earlier_entrants.customer_id = out_of_cooldown.customer_id
                and earlier_entrants.entry_date > {{ run_date() }} - {{ var('flow_cap_days') | int }}
        )
        and not exists (
            select 1 as found from flow_pushes
            where flow_pushes.customer_id = out_of_cooldown.customer_id
        )
        and not exists (
            select 1 as found from campaign_sends
            where campaign_sends.customer_id = out_of_cooldown.customer_id
        )

),

ranked as (

    select
        under_cap.*,
        flows.audience,
        flows.trigger_type,
        flows.priority,
        flows.holdout_pct,
        flows.window_days,
        flows.measure_days,
        count(*) over (partition by under_cap.customer_id) as flows_qualified,
        row_number() over (
            partition by under_cap.customer_id
            order by flows.priority, under_cap.flow
        ) as priority_rank

    from under_cap
    inner join flows
        on under_cap.flow = flows.flow

),

entered as (

    select
        *,
        {{ flow_holdout_bucket('flow', 'customer_id') }} as flow_holdout_bucket

    from ranked
    where priority_rank = 1

),

final as (

    select
        candidate_date as entry_date,
        flow,
        customer_id,
        audience,
        trigger_type,
        reason,
        priority,
        cast(flows_qualified as integer) as flows_qualified,
        segment,
        lifecycle_stage,
        cast(flow_holdout_bucket as integer) as flow_holdout_bucket,
        holdout_pct as flow_holdout_pct,
        flow_holdout_bucket < holdout_pct as is_flow_holdout,
        case when flow_holdout_bucket < holdout_pct then 'holdout' else 'treated' end as flow_group,
        window_days,
        measure_days

    from entered

)

select * from final
