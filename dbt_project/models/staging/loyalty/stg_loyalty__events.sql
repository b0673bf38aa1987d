-- The loyalty program's points ledger, 1:1 with raw.loyalty_events (docs/formats.md "Loyalty ledger"):
-- points signed (earned > 0, redeemed and expired < 0), identifiers trimmed, e-mail lower-cased.
-- Empty for a shop without a loyalty program.
with

source as (

    select * from {{ source('loyalty', 'loyalty_events') }}

),

renamed as (

    select
        event_id,
        trim(member_id) as member_id,
        nullif(trim(customer_id), '') as customer_id,
        lower(nullif(trim(email), '')) as email,
        event_type,
        points,
        nullif(trim(order_id), '') as order_id,
        nullif(trim(tier), '') as tier,
        occurred_at,
        {{ utc_date('occurred_at') }} as event_date,
        _load_id as load_id

    from source

)

select * from renamed
