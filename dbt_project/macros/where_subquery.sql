{#-
    The `where` config of data tests, with the run date filled in at run time.

    dbt renders a test's `where` while parsing. The project's where-clauses name the day as
    `cast('{{ var('run_date', '1970-01-01') }}' as date)`: with --vars run_date that is the day
    already; without it (the daily build passes the day as ECRM_RUN_DATE so that partial parsing
    survives a new day, see run_date.sql) it is the parse-time placeholder '1970-01-01', replaced
    here by the run date. dbt documents overriding get_where_subquery for custom `where` logic
    (docs: resource-configs/where, "Custom logic"). Same SQL shape as dbt's default.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- if execute and "'1970-01-01'" in where -%}
            {%- set where = where | replace("'1970-01-01'", "'" ~ run_date_str() ~ "'") -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
