with

source as (

    select * from {{ source('shop', 'order_status_history') }}

),

renamed as (

    select
        md5(order_id || '|' || updated_at::text || '|' || status) as order_status_id,
        order_id,
        lower(trim(status)) as status,
        updated_at as status_changed_at,
        _load_id as load_id

    from source

)

select * from renamed
