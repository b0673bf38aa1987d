{#- Rows whose float or numeric column lies outside [min_value, max_value] (either bound optional), or is not a
    number (NaN or infinite: PostgreSQL orders 'NaN' above every number). -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}

select {{ column_name }}
from {{ model }}
where
    {{ column_name }} is not null
    and (
        {{ column_name }}::float8 in ('NaN', 'Infinity', '-Infinity')
        {%- if min_value is not none %}
            or {{ column_name }} < {{ min_value }}
        {%- endif %}
        {%- if max_value is not none %}
            or {{ column_name }} > {{ max_value }}
        {%- endif %}
    )

{% endtest %}
