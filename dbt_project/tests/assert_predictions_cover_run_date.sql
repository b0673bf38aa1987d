-- Every customer with a valid order by the end of run_date has the run date's forecast (the
-- forecast scores exactly them): dim_customers and the forecast audiences read that day only, so
-- a missing or partial day would leave p_alive empty without an error. Warns in dbt (a dbt-only
-- development build has no forecast); the gate's `predictions` suite blocks such a day.
{{ config(severity='warn') }}

with

buyers as (

    select distinct customer_id
    from {{ ref('int_orders_as_of') }}
    where is_valid_order

),

predictions as (

    select customer_id
    from {{ ref('stg_predictions__customer_predictions') }}
    where snapshot_date = {{ run_date() }}

)

select buyers.customer_id
from buyers
left join predictions
    on buyers.customer_id = predictions.customer_id
where predictions.customer_id is null
