-- What the mailer push sends for run_date: one row per audience and customer. Holdout,
-- suppressed (unsubscribed, hard-bounced, complained), non-consenting and invalid addresses are
-- excluded upstream through is_contactable / is_holdout.
with

rfm as (

    select * from {{ ref('fct_customer_rfm_daily') }}
    where snapshot_date = {{ run_date() }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

audiences as (

    select * from {{ ref('audiences') }}

),

final as (

    select
        audiences.audience,
        rfm.customer_id,
        customers.email,
        customers.first_name,
        rfm.segment,
        rfm.snapshot_date

    from rfm
    inner join audiences
        on rfm.segment = audiences.segment
    inner join customers
        on rfm.customer_id = customers.customer_id
    where
        rfm.is_contactable
        and not rfm.is_holdout

)

select * from final
-- lifecycle flows: their current treated members (models/intermediate/flows, docs/flows.md)
union all
select
    audience,
    customer_id,
    email,
    first_name,
    segment,
    snapshot_date
from {{ ref('int_flow_audience_members') }}
