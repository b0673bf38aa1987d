{#-
    `is_page_view()`: a request of stg_web__requests is a human page view when it is a GET answered
    2xx/3xx that is neither a bot nor a static asset (unqualified columns of that relation). int_web_page_views keeps those rows,
    int_web_page_days_to_recompute counts them per day.
-#}
{% macro is_page_view() -%}
    (not is_bot and not is_static and http_method = 'GET' and http_status between 200 and 399)
{%- endmacro %}
