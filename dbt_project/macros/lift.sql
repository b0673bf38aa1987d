{#- The holdout lift of marts that compare a treated group with its holdout (campaigns, flows). -#}
{#-
    The lift of a treated group over its holdout (fct_campaign_kpis, fct_flow_kpis and
    fct_flow_kpis_periods): absolute_lift, the difference of the two conversion proportions, and
    relative_lift, with Newcombe's hybrid score 95% interval (his method 10: each group's Wilson
    score interval, combined by the square-root rule). The plain Wald interval covered the truth
    only 86-87% of the time at the demo's ~30-customer holdouts and 81-86% for rare conversions;
    Agresti-Caffo 97-99% (too wide); Newcombe's stays within 92-98% in every mix of
    tests/test_lift_calibration.py (docs/marts.md "Calibration"). The interval is not symmetric
    around absolute_lift; absolute_lift_se is its half-width / 1.96. Null when a group is empty.
-#}
{% macro wilson_bound(p, n, sign) -%}
    (({{ p }} + 1.9208 / {{ n }} {{ sign }} 1.96 * sqrt({{ p }} * (1 - {{ p }}) / {{ n }} + 0.9604 / ({{ n }} * {{ n }})))
    / (1 + 3.8416 / {{ n }}))
{%- endmacro %}

{% macro proportion_lift(p_treated, p_holdout, n_treated, n_holdout) -%}
    {{ p_treated }} - {{ p_holdout }} as absolute_lift,
    ({{ p_treated }} - {{ p_holdout }}) / nullif({{ p_holdout }}, 0) as relative_lift,
    {{ p_treated }} - {{ p_holdout }} - sqrt(
        power({{ p_treated }} - {{ wilson_bound(p_treated, 'nullif(' ~ n_treated ~ ', 0)', '-') }}, 2)
        + power({{ wilson_bound(p_holdout, 'nullif(' ~ n_holdout ~ ', 0)', '+') }} - {{ p_holdout }}, 2)
    ) as lift_ci_lower,
    {{ p_treated }} - {{ p_holdout }} + sqrt(
        power({{ wilson_bound(p_treated, 'nullif(' ~ n_treated ~ ', 0)', '+') }} - {{ p_treated }}, 2)
        + power({{ p_holdout }} - {{ wilson_bound(p_holdout, 'nullif(' ~ n_holdout ~ ', 0)', '-') }}, 2)
    ) as lift_ci_upper
{%- endmacro %}

{#-
    The lift's published columns, rounded to 6 places, after a CTE that selected proportion_lift:
    treated_conversion_rate, holdout_conversion_rate, absolute_lift, relative_lift, absolute_lift_se
    (the interval's half-width / 1.96) and the 95% interval absolute_lift_ci_lower / _upper (Newcombe).
-#}
{% macro proportion_lift_columns(p_treated='p_treated', p_holdout='p_holdout') -%}
    round({{ p_treated }}, 6)::numeric(12, 6) as treated_conversion_rate,
    round({{ p_holdout }}, 6)::numeric(12, 6) as holdout_conversion_rate,
    round(absolute_lift, 6)::numeric(12, 6) as absolute_lift,
    round(relative_lift, 6)::numeric(12, 6) as relative_lift,
    round((lift_ci_upper - lift_ci_lower) / 3.92, 6)::numeric(12, 6) as absolute_lift_se,
    round(lift_ci_lower, 6)::numeric(12, 6) as absolute_lift_ci_lower,
    round(lift_ci_upper, 6)::numeric(12, 6) as absolute_lift_ci_upper
{%- endmacro %}

{#-
    What a treated group and its holdout can detect (issue 29): the minimum detectable lift at 80%
    power and a two-sided 5% test, 2.8016 (= 1.96 + 0.8416) standard errors of the difference at the
    pooled conversion rate, and the holdout size that would detect var holdout_target_lift (2 pp)
    with this many treated (null when no holdout can: the treated group alone is too small, or when
    nobody converted, so no rate is known). Appended after proportion_lift_columns' columns.
-#}
{% macro detectable_lift_columns(n_treated, n_holdout, p_treated='p_treated', p_holdout='p_holdout') -%}
    {%- set pooled -%}
        (({{ p_treated }} * {{ n_treated }} + {{ p_holdout }} * {{ n_holdout }})
        / nullif({{ n_treated }} + {{ n_holdout }}, 0))
    {%- endset -%}
    {%- set variance -%}
        nullif({{ pooled }} * (1 - {{ pooled }}), 0)
    {%- endset -%}
    round(
        2.8016 * sqrt({{ variance }} * (1.0 / nullif({{ n_treated }}, 0) + 1.0 / nullif({{ n_holdout }}, 0))), 6
    )::numeric(12, 6) as minimum_detectable_lift,
    case
        when power({{ var('holdout_target_lift') }} / 2.8016, 2) / {{ variance }} - 1.0 / nullif({{ n_treated }}, 0) > 0
            then ceil(
                1 / (power({{ var('holdout_target_lift') }} / 2.8016, 2) / {{ variance }} - 1.0 / nullif({{ n_treated }}, 0))
            )::bigint
    end as holdout_needed_for_target_lift
{%- endmacro %}
