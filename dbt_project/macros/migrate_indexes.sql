{#-
    Pre-hook for incremental tables whose `indexes` config changed: dbt applies that config only when
    it creates a table, so a table built by an earlier version keeps its old indexes. This creates
    each of `wanted` (dicts like the config's: columns, unique) that no index has exactly, and
    drops the indexes on exactly the columns of `unwanted` that no constraint owns (a primary key
    stays). A catalog lookup on later runs. Nothing on a full build (the config creates them).
-#}
{% macro migrate_indexes(wanted, unwanted) -%}
    {%- if is_incremental() -%}
do $migrate$
declare
    redundant record;
begin
    {%- for index in wanted %}
    {%- set definition = ("UNIQUE INDEX " if index.get('unique') else "INDEX ") ~ "%USING btree (" ~ (index['columns'] | join(', ')) ~ ")" %}
    if not exists (
        select from pg_indexes
        where
            schemaname = '{{ this.schema }}' and tablename = '{{ this.identifier }}'
            and indexdef like 'CREATE {{ definition }}'
    ) then
        create {{ "unique " if index.get('unique') }}index on {{ this }} ({{ index['columns'] | join(', ') }});
    end if;
    {%- endfor %}
    for redundant in
        select indexname from pg_indexes
        where
            schemaname = '{{ this.schema }}' and tablename = '{{ this.identifier }}'
            and (
                {%- for columns in unwanted %}
                indexdef like '%USING btree ({{ columns | join(", ") }})'{{ " or" if not loop.last }}
                {%- endfor %}
            )
            and indexname not in (select conname from pg_constraint where conrelid = '{{ this }}'::regclass)
    loop
        execute format('drop index %I.%I', '{{ this.schema }}', redundant.indexname);
    end loop;
end
$migrate$
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}
