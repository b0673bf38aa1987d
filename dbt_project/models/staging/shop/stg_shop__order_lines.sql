with

source as (

    select * from {{ source('shop', 'order_lines') }}

),

renamed as (

    select
        order_id || ':' || line_number::text as order_line_id,
        order_id,
        line_number,
        product_id,
        product_name,
        category,
        quantity,
        unit_price::numeric(14, 2) as unit_price,
        discount_amount::numeric(14, 2) as discount_amount,
        (quantity * unit_price - discount_amount)::numeric(14, 2) as line_amount,
        updated_at,
        _load_id as load_id

    from source

)

select * from renamed
