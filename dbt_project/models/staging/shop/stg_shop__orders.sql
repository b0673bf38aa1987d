with

source as (

    select * from {{ source('shop', 'orders') }}

),

renamed as (

    select
        order_id,
        customer_id,
        lower(trim(email)) as email,
        created_at as ordered_at,
        {{ utc_date('created_at') }} as order_date,
        updated_at,
        lower(trim(status)) as status,
        upper(currency) as currency,
        total_amount::numeric(14, 2) as total_amount,
        discount_amount::numeric(14, 2) as discount_amount,
        nullif(trim(coupon_code), '') as coupon_code,
        discount_codes,
        _load_id as load_id

    from source

)

select * from renamed
