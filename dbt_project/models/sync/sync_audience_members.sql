-- What the mailer push sends for run_date: one row per audience and customer. Holdout,
-- suppressed (unsubscribed, hard-bounced, complained), non-consenting and invalid addresses are
-- excluded upstream through is_contactable / is_holdout, for every audience alike.
with

candidates as (

    select * from {{ ref('sync_audience_candidates') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

final as (

    select
        candidates.audience,
        candidates.customer_id,
        customers.email,
        customers.first_name,
        candidates.segment,
        candidates.snapshot_date

    from candidates
    inner join customers
        on candidates.customer_id = customers.customer_id
    where
        candidates.is_contactable
        and not candidates.is_holdout

)

select * from final
