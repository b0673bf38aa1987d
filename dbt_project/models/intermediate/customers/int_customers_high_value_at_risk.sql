-- The forecast audience "high value at risk" for run_date: among the day's buyers whose churn risk
-- is high (the model thinks they are probably gone), the top high_value_top_pct (20) % by 12-month
-- lifetime value: the slipping customers most worth a win-back. Ranked within the high-risk
-- customers because a low p_alive lowers clv_12m itself: the top 20% of all buyers by clv_12m
-- almost never has a high churn risk (none of 1,058 simulated buyers; 82 were at high risk).
-- Before any compliance filter: consent, suppression and holdout are applied to this audience
-- exactly as to the others (sync_audience_candidates, sync_audience_members).
with

predictions as (

    select * from {{ ref('stg_predictions__customer_predictions') }}
    where snapshot_date = {{ run_date() }}

),

at_risk as (

    select
        customer_id,
        snapshot_date,
        clv_12m,
        -- share of the high-risk buyers with a clv_12m at least this high (ties: all in or all out)
        cume_dist() over (order by clv_12m desc) as clv_top_share

    from predictions
    where churn_risk = 'high'

),

final as (

    select
        customer_id,
        snapshot_date,
        clv_12m,
        clv_top_share

    from at_risk
    where clv_top_share <= {{ var('high_value_top_pct') }} / 100.0

)

select * from final
