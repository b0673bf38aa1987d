{#-
    Deterministic holdout bucket 0..99 of a customer id: the first 32 bits of
    md5('holdout:' || customer_id) modulo 100. The same customer is always in the same bucket,
    whatever the day, so a customer is either always or never held out for a given holdout_pct.
-#}
{% macro holdout_bucket(customer_id) -%}
    (('x' || substr(md5('holdout:' || {{ customer_id }}), 1, 8))::bit(32)::bigint % 100)
{%- endmacro %}

{% macro is_holdout(customer_id) -%}
    ({{ holdout_bucket(customer_id) }} < {{ var('holdout_pct') | int }})
{%- endmacro %}
