{#- A valid, already normalized (lower/trim) e-mail address: the one rule of ecrm.email_rule, where
    it is explained (docs/formats.md). The same pattern, built the same way as EMAIL_PATTERN there;
    tests/test_email_rule.py checks the two are equal and runs the shared corpus through this macro. -#}
{% macro is_valid_email(email) -%}
    {%- set atom = "[a-z0-9_%+''-]+" -%}  {#- '' : a quote inside the SQL literal -#}
    {%- set label = "[a-z0-9]([a-z0-9-]*[a-z0-9])?" -%}
    coalesce({{ email }} ~ '^{{ atom }}(\.{{ atom }})*@{{ label }}(\.{{ label }})*\.[a-z]{2,}$', false)
{%- endmacro %}
