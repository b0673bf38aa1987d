{#-
    Lifecycle flows (docs/flows.md).

    flow_holdout_bucket: deterministic bucket 0..99 of a (customer, flow) pair, the first 32 bits of
    md5('flow:' || flow || ':' || customer_id) modulo 100. The same pair always lands in the same
    bucket, whatever the day; a different flow hashes independently of the campaign holdout
    (macros/holdout.sql) and of the other flows.
-#}
{% macro flow_holdout_bucket(flow, customer_id) -%}
    (('x' || substr(md5('flow:' || {{ flow }} || ':' || {{ customer_id }}), 1, 8))::bit(32)::bigint % 100)
{%- endmacro %}

{#- Does `value` match a flow's trigger_from / trigger_to: 'any', or one of its `|`-separated values. -#}
{% macro flow_value_matches(pattern, value) -%}
    ({{ pattern }} = 'any' or {{ value }} = any(string_to_array({{ pattern }}, '|')))
{%- endmacro %}

{#-
    The lift of a treated group over its holdout, as fct_campaign_kpis computes it: difference of
    the two conversion proportions, unpooled standard error, 95% interval from the normal
    approximation. Columns absolute_lift, relative_lift, absolute_lift_se; the interval is
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
