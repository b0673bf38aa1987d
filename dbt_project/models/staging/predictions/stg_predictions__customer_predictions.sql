-- The lifetime-value forecast per customer and snapshot date, 1:1 with the table ecrm.predict
-- writes (marts.fct_customer_predictions_daily). Read by dim_customers and the forecast audiences
-- in the build's second dbt invocation, after the forecast of the run date (docs/predictions.md).
with

source as (

    select * from {{ source('predictions', 'fct_customer_predictions_daily') }}

),

renamed as (

    select
        snapshot_date,
        customer_id,
        repeat_purchases,
        p_alive,
        expected_orders_30d,
        expected_orders_90d,
        expected_orders_365d,
        expected_order_value,
        clv_12m,
        churn_risk,
        expected_next_order_date,
        fit_date

    from source

)

select * from renamed
