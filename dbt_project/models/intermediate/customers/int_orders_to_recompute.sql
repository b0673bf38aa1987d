-- Orders whose facts as of run_date can differ from what the incremental tables hold: placed
-- since run_date - attribution_window_days (also after run_date: a rebuilt past day drops them),
-- or whose status changed or row was reloaded since then. int_orders_as_of and
-- int_order_attribution delete and re-derive exactly these on an incremental run (a full build
-- takes every order). raw.orders and raw.order_status_history are indexed on created_at /
-- updated_at for it.
{%- set since_ts = lookback_since_ts(var('attribution_window_days')) %}
with

-- each branch reads the relation itself (a CTE read twice would be materialized: every order)
orders_placed as (

    select order_id from {{ ref('stg_shop__orders') }}
    where ordered_at >= {{ since_ts }}

),

orders_reloaded as (

    select order_id from {{ ref('stg_shop__orders') }}
    where updated_at >= {{ since_ts }}

),

statuses_changed as (

    select order_id from {{ ref('stg_shop__order_status_history') }}
    where status_changed_at >= {{ since_ts }}

),

final as (

    select order_id from orders_placed
    union
    select order_id from statuses_changed
    union
    select order_id from orders_reloaded

)

select * from final
