{#-
    Incremental strategy 'delete_insert_by_index': dbt's delete+insert, but the delete finds the
    rows to replace through the unique key's index (`key = any(array(select key from new rows))`).
    dbt's own `key in (select key from <temp table>)` is planned as a hash join over the whole
    target table, so the daily run grew with the table (fct_web_sessions: every session ever).
    Single-column unique keys only.
-#}
{% macro get_incremental_delete_insert_by_index_sql(arg_dict) -%}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set unique_key = arg_dict["unique_key"] -%}
    {%- if unique_key is not string -%}
        {{ exceptions.raise_compiler_error("delete_insert_by_index needs a single-column unique_key") }}
    {%- endif -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
delete from {{ target }}
where {{ unique_key }} = any(array(select {{ unique_key }} from {{ source }}));

insert into {{ target }} ({{ columns }})
select {{ columns }} from {{ source }}
{%- endmacro %}
