-- Issue 29: the discount marts' arithmetic holds on the rows a run can have changed. Every
-- interval contains its estimate; a code's customers split into new and returning; gross revenue
-- is net revenue plus discounts. Returns the offending rows.
select
    'fct_discount_campaigns' as model_name,
    campaign_id as offending_row
from {{ ref('fct_discount_campaigns') }}
where
    computed_for_date = {{ run_date() }}
    and (
        incremental_orders not between incremental_orders_ci_lower and incremental_orders_ci_upper
        or incremental_net_revenue not between incremental_net_revenue_ci_lower and incremental_net_revenue_ci_upper
        or return_per_discount not between return_per_discount_ci_lower and return_per_discount_ci_upper
        or pull_forward_orders_per_treated_30d
        not between pull_forward_orders_per_treated_30d_ci_lower and pull_forward_orders_per_treated_30d_ci_upper
        or discount_given < 0
    )

union all

select
    'fct_discount_performance_daily' as model_name,
    order_date::text || ' ' || discount_code as offending_row
from {{ ref('fct_discount_performance_daily') }}
where
    order_date >= {{ run_date() }} - {{ var('attribution_window_days') | int }}
    and (
        customers <> new_customers + returning_customers
        or gross_revenue < net_revenue
        or orders < customers
    )
