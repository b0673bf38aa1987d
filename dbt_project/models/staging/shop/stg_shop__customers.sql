with

source as (

    select * from {{ source('shop', 'customers') }}

),

renamed as (

    select
        customer_id,
        lower(trim(email)) as email,
        email as email_raw,
        nullif(trim(first_name), '') as first_name,
        upper(nullif(trim(country), '')) as country,
        signed_up_at,
        updated_at,
        accepts_marketing,
        {{ is_valid_email('lower(trim(email))') }} as is_valid_email,
        _load_id as load_id

    from source

)

select * from renamed
