{#-
    Discounts (issue 29, docs/marts.md "Discounts").

    order_has_discount: whether an order used any discount, three-valued: true with a discount
    amount above 0, a coupon code or any discount code (free shipping counts); false when the shop
    said so (discount_amount 0 and no code); null when unknown (an export without discount columns).
-#}
{% macro order_has_discount(discount_amount, coupon_code, discount_codes) -%}
    case
        when
            {{ discount_amount }} > 0
            or {{ coupon_code }} is not null
            or coalesce(jsonb_array_length({{ discount_codes }}), 0) > 0
            then true
        when {{ discount_amount }} is not null or {{ discount_codes }} is not null then false
    end
{%- endmacro %}

{#-
    mean_difference: the treated group's mean of a per-customer figure minus the holdout's, with the
    standard error of the difference from the two groups' pooled variance, sqrt(s2 (1/n_t + 1/n_h)),
    and its normal-approximation 95% interval (mean_difference_columns). Pooled, not each group's
    own: a 30-customer holdout with two buyers says little about its own spread, and its own
    variance made the interval cover the truth only 84-86% of the time at the demo's sizes
    (tests/test_lift_calibration.py; pooled: see docs/marts.md "Calibration"). A code that adds
    orders widens the treated group's spread, so pooling errs on the wide side. Expects per group
    n, sum and sum of squares as <prefix>_n_treated, <prefix>_sum_treated, <prefix>_sumsq_treated
    and the same for _holdout. Columns <name> and <name>_se, scaled by `scale` (e.g. the treated
    count, for totals).
-#}
{% macro mean_difference(name, prefix, scale='1') -%}
    (
        {{ prefix }}_sum_treated::numeric / nullif(n_treated, 0)
        - {{ prefix }}_sum_holdout::numeric / nullif(n_holdout, 0)
    ) * {{ scale }} as {{ name }},
    sqrt(
        greatest(
            {{ prefix }}_sumsq_treated - {{ prefix }}_sum_treated ^ 2 / nullif(n_treated, 0)
            + {{ prefix }}_sumsq_holdout - {{ prefix }}_sum_holdout ^ 2 / nullif(n_holdout, 0), 0
        ) / nullif(n_treated + n_holdout - 2, 0)
        * (1.0 / nullif(n_treated, 0) + 1.0 / nullif(n_holdout, 0))
    )::numeric * {{ scale }} as {{ name }}_se
{%- endmacro %}

{#-
    mean_difference_columns: a mean_difference's published columns from `relation`, rounded to 6
    places: <name> and its 95% interval <name>_ci_lower / _upper (1.96 standard errors).
-#}
{% macro mean_difference_columns(name, relation) -%}
    round({{ relation }}.{{ name }}, 6)::numeric(16, 6) as {{ name }},
    round({{ relation }}.{{ name }} - 1.96 * {{ relation }}.{{ name }}_se, 6)::numeric(16, 6) as {{ name }}_ci_lower,
    round({{ relation }}.{{ name }} + 1.96 * {{ relation }}.{{ name }}_se, 6)::numeric(16, 6) as {{ name }}_ci_upper
{%- endmacro %}

{#-
    leaves_out_full_price_buyer: true when the audience (a left-joined row of seed audience_offers,
    alias `offers`) offers a discount, keeps full-price buyers out (the default), and the customer
    (alias `customer`, with is_full_price_buyer) is one. Null flags count as false.
-#}
{% macro leaves_out_full_price_buyer(offers, customer) -%}
    coalesce(
        {{ offers }}.offers_discount
        and {{ offers }}.full_price_buyers = 'exclude'
        and {{ customer }}.is_full_price_buyer,
        false
    )
{%- endmacro %}

{#-
    delete_discount_campaigns_to_recompute: fct_discount_campaigns' pre-hook on an incremental run:
    delete the campaigns whose figures can still change (sent within 2 attribution windows + 60 days
    before the end of run_date) and any sent after it (a rebuilt past day).
-#}
{% macro delete_discount_campaigns_to_recompute() -%}
    {%- if is_incremental() -%}
delete from {{ this }}
where sent_date > {{ run_date() }} - {{ 2 * (var("attribution_window_days") | int) + 60 }}
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}
