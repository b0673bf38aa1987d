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
