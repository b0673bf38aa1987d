-- Nobody held out, suppressed, without consent or with an invalid address is ever pushed.
with

members as (

    select * from {{ ref('sync_audience_members') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

holdouts as (

    select * from {{ ref('sync_holdout_members') }}

),

final as (

    select
        members.audience,
        members.customer_id

    from members
    inner join customers
        on members.customer_id = customers.customer_id
    left join holdouts
        on members.customer_id = holdouts.customer_id
    where
        customers.is_holdout
        or customers.is_suppressed
        or not customers.accepts_marketing
        or not customers.is_valid_email
        or holdouts.customer_id is not null

)

select * from final
