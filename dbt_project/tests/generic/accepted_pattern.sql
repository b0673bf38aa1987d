{#- Rows whose text column does not match the PostgreSQL regular expression `pattern` (nulls pass). -#}
{% test accepted_pattern(model, column_name, pattern) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} !~ '{{ pattern }}'

{% endtest %}
