{#- A syntactically plausible, already normalized (lower/trim) e-mail address. -#}
{% macro is_valid_email(email) -%}
    coalesce({{ email }} ~ '^[a-z0-9._%+''-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$', false)
{%- endmacro %}
