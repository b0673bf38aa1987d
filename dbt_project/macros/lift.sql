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
