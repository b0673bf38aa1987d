with

source as (

    select * from {{ source('esp', 'email_campaigns') }}

),

renamed as (

    select
        campaign_id,
        name as campaign_name,
        sent_at,
        {{ utc_date('sent_at') }} as sent_date,
        lower(trim(audience)) as audience,
        nullif(trim(variant), '') as variant,
        nullif(trim(discount_code), '') as discount_code,
        _load_id as load_id

    from source

)

select * from renamed
