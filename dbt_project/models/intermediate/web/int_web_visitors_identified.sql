{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='visitor_id',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['visitor_id'], 'unique': true}, {'columns': ['customer_id']}]
    )
}}
-- Visitor -> customer stitching. A page view identifies its visitor when it carries the e-mail
-- click token `ct` of a known customer (first 16 hex of sha256('ecrm-token:' || customer_id)) or
-- is the confirmation page /checkout/complete?order=<order_id> of a known order. The first
-- identifying page view wins (ties: customer_id), so a visitor's customer never changes once set
-- and identified_at says since when we know it. Incremental: visitors with an identifying page view
-- in the lookback window are re-derived from their whole page-view history.
with

page_views as (

    select * from {{ ref('int_web_page_views') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

recently_identifying as (

    -- visitors with an identifying page view in the window (all of them on a full build)
    select distinct visitor_id from page_views
    where
        (customer_token is not null or order_id is not null)
        and view_date between {{ incremental_since() }} and {{ run_date() }}

),

identifying_views as (

    select page_views.* from page_views
    inner join recently_identifying
        on page_views.visitor_id = recently_identifying.visitor_id
    where
        (page_views.customer_token is not null or page_views.order_id is not null)
        and page_views.view_date <= {{ run_date() }}

),

customer_tokens as (

    select
        customer_id,
        substr(encode(sha256(convert_to('ecrm-token:' || customer_id, 'UTF8')), 'hex'), 1, 16)
            as customer_token

    from customers

),

by_token as (

    select
        identifying_views.visitor_id,
        identifying_views.viewed_at,
        customer_tokens.customer_id,
        'email_click_token' as identified_by

    from identifying_views
    inner join customer_tokens
        on identifying_views.customer_token = customer_tokens.customer_token

),

by_order as (

    select
        identifying_views.visitor_id,
        identifying_views.viewed_at,
        orders.customer_id,
        'order_confirmation' as identified_by

    from identifying_views
    inner join orders
        on identifying_views.order_id = orders.order_id

),

identifications as (

    select * from by_token
    union all
    select * from by_order

),

ranked as (

    select
        *,
        row_number() over (
            partition by visitor_id
            order by viewed_at asc, customer_id asc, identified_by asc
        ) as identification_rank

    from identifications

),

final as (

    select
        visitor_id,
        customer_id,
        viewed_at as identified_at,
        identified_by

    from ranked
    where identification_rank = 1

)

select * from final
