{{ config(materialized='view') }}
-- One row per order (as of run_date) and discount code it used: the codes of discount_codes
-- (Shopify's array, normalised by the loader), or, for rows with only the older single coupon_code
-- column, that code with type 'unknown' and the order's discount_amount (null when unknown). A view
-- over one scan of int_orders_as_of: its readers' filters (order_date, customer_id) reach that
-- table's indexes before anything is unnested.
with

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.ordered_at,
        orders.order_date,
        orders.is_valid_order,
        orders.total_amount,
        orders.discount_amount,
        codes.discount_code,
        codes.discount_type,
        codes.code_discount_amount

    from orders
    cross join lateral (
        select
            code.value ->> 'code' as discount_code,
            code.value ->> 'type' as discount_type,
            (code.value ->> 'amount')::numeric(14, 2) as code_discount_amount
        from
            jsonb_array_elements(
                case when jsonb_typeof(orders.discount_codes) = 'array' then orders.discount_codes else '[]' end
            ) as code (value)

        union all

        select
            orders.coupon_code as discount_code,
            'unknown' as discount_type,
            orders.discount_amount::numeric(14, 2) as code_discount_amount
        where
            orders.discount_codes is null
            and orders.coupon_code is not null
    ) as codes

)

select * from final
