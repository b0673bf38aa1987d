{{
    config(
        materialized='incremental',
        incremental_strategy='delete_insert_by_index',
        unique_key='visitor_id',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['visitor_id'], 'unique': true}, {'columns': ['customer_id']}]
    )
}}
-- Visitor -> customer stitching. A page view identifies its visitor when it carries the e-mail
-- click token `ct` of a known customer (first 16 hex of sha256('ecrm-token:' || customer_id)) or
-- is the confirmation page /checkout/complete?order=<order_id> of a known order. The first
-- identifying page view wins (ties: customer_id), so a visitor's customer never changes once set
-- and identified_at says since when we know it. Incremental: a run reads only the identifying page
-- views of [run_date - web_lookback_days, run_date] and, for their visitors, compares them with the
-- stored identification when that is older than the window (page views before the window do not
-- change, so the first identification among them is the stored one; a stored one from the window
-- on, e.g. after run_date when a past day is rebuilt, is re-derived).
with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

identifying_views as (

    -- identifying page views in the window (all of them on a full build; index on view_date)
    select * from {{ ref('int_web_page_views') }}
    where
        (customer_token is not null or order_id is not null)
        and view_date between {{ incremental_since() }} and {{ run_date() }}

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

    -- per order through the primary key; offset 0 keeps the planner from hash-joining the whole
    -- order table (it cannot estimate how few confirmation pages the window holds)
    select
        identifying_views.visitor_id,
        identifying_views.viewed_at,
        confirmed_orders.customer_id,
        'order_confirmation' as identified_by

    from identifying_views
    cross join lateral (
        select orders.customer_id from orders
        where
            orders.order_id = identifying_views.order_id
        offset 0  -- noqa: AM09
    ) as confirmed_orders

),

previous as (

    -- the stored identification of those visitors, if it is older than the window
    {%- if is_incremental() %}
    select
        visitor_id,
        identified_at as viewed_at,
        customer_id,
        identified_by

    from {{ this }}
    where
        visitor_id in (select identifying_views.visitor_id from identifying_views)
        and identified_at < {{ incremental_since() }}::timestamp at time zone 'UTC'
    {%- else %}
    select * from by_token
    where false
    {%- endif %}

),

identifications as (

    select * from by_token
    union all
    select * from by_order
    union all
    select * from previous

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
