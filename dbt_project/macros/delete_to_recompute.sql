{#-
    Pre-hook of the tables kept up to date per key: on an incremental run, delete the rows whose
    `key` is listed by `to_recompute` (an `int_*_to_recompute` model, given by its relation); the model
    then appends them again. Through the index on `key`: `= any(array(...))` evaluates the list
    once. Nothing on a full build.
-#}
{% macro delete_to_recompute(key, to_recompute) -%}
    {%- if is_incremental() -%}
delete from {{ this }}
where {{ key }} = any(array(select {{ key }} from {{ to_recompute }}))
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}
