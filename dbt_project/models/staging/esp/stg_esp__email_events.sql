with

source as (

    select * from {{ source('esp', 'email_events') }}

),

renamed as (

    select
        event_id,
        lower(trim(event)) as event_type,
        lower(trim(email)) as email,
        occurred_at,
        nullif(trim(campaign_id), '') as campaign_id,
        nullif(trim(customer_id), '') as customer_id,
        is_machine_open,
        lower(bounce_type) as bounce_type,
        -- SendGrid `type`: bounce = hard, blocked = soft; the loader maps it to hard | soft
        coalesce(
            lower(trim(event)) = 'bounce' and lower(bounce_type) in ('hard', 'bounce'),
            false
        ) as is_hard_bounce,
        reason,
        url,
        _load_id as load_id

    from source

)

select * from renamed
