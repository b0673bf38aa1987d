{#- The holdout lift of marts that compare a treated group with its holdout (campaigns, flows). -#}
{#-
    The lift of a treated group over its holdout (fct_campaign_kpis, fct_flow_kpis and
    fct_flow_kpis_periods): difference of the two conversion proportions, unpooled standard error,
    95% interval from the normal approximation. Columns absolute_lift, relative_lift, absolute_lift_se; the interval is
    absolute_lift -/+ 1.96 * absolute_lift_se.
-#}
{% macro proportion_lift(p_treated, p_holdout, n_treated, n_holdout) -%}
    {{ p_treated }} - {{ p_holdout }} as absolute_lift,
    ({{ p_treated }} - {{ p_holdout }}) / nullif({{ p_holdout }}, 0) as relative_lift,
    -- unpooled standard error of the difference of two proportions
    sqrt(
        {{ p_treated }} * (1 - {{ p_treated }}) / nullif({{ n_treated }}, 0)
        + {{ p_holdout }} * (1 - {{ p_holdout }}) / nullif({{ n_holdout }}, 0)
    ) as absolute_lift_se
{%- endmacro %}

{#-
    The lift's published columns, rounded to 6 places, after a CTE that selected proportion_lift:
    treated_conversion_rate, holdout_conversion_rate, absolute_lift, relative_lift, absolute_lift_se
    and the 95% interval absolute_lift_ci_lower / _upper (normal approximation, 1.96 se).
-#}
{% macro proportion_lift_columns(p_treated='p_treated', p_holdout='p_holdout') -%}
    round({{ p_treated }}, 6)::numeric(12, 6) as treated_conversion_rate,
    round({{ p_holdout }}, 6)::numeric(12, 6) as holdout_conversion_rate,
    round(absolute_lift, 6)::numeric(12, 6) as absolute_lift,
    round(relative_lift, 6)::numeric(12, 6) as relative_lift,
    round(absolute_lift_se, 6)::numeric(12, 6) as absolute_lift_se,
    round(absolute_lift - 1.96 * absolute_lift_se, 6)::numeric(12, 6) as absolute_lift_ci_lower,
    round(absolute_lift + 1.96 * absolute_lift_se, 6)::numeric(12, 6) as absolute_lift_ci_upper
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
