{#-
    Read-only access for BI tools: one NOLOGIN role (var bi_reader_role, default ecrm_bi_reader)
    that may read marts.* and, when it exists, published.*, and nothing else. No password lives
    here: grant the role to your BI login (`grant ecrm_bi_reader to metabase;`).
    dbt replaces tables on every run, so the grants are applied again in on-run-end, and default
    privileges cover tables created later by the same owner (the publish step).
-#}
{% macro ensure_bi_reader_role() -%}
    {%- set role = var('bi_reader_role') -%}
    {%- if var('manage_bi_role') -%}
do $ensure_role$
begin
    if not exists (select 1 from pg_roles where rolname = '{{ role }}') then
        create role {{ adapter.quote(role) }} nologin;
    end if;
exception
    when insufficient_privilege then
        raise notice 'cannot create role {{ role }} (needs CREATEROLE); BI grants skipped';
    when duplicate_object or unique_violation then
        null;  -- created concurrently by another run on the same server
end
$ensure_role$;
    {%- else -%}
select 1;
    {%- endif -%}
{%- endmacro %}

{% macro grant_bi_reader() -%}
    {%- set role = var('bi_reader_role') -%}
do $grant_bi$
declare
    target_schema text;
begin
    if not exists (select 1 from pg_roles where rolname = '{{ role }}') then
        raise notice 'role {{ role }} does not exist; BI grants skipped';
        return;
    end if;
    foreach target_schema in array array['{{ target.schema }}', 'published'] loop
        if exists (select 1 from pg_namespace where nspname = target_schema) then
            execute format('grant usage on schema %I to %I', target_schema, '{{ role }}');
            execute format('grant select on all tables in schema %I to %I', target_schema, '{{ role }}');
            execute format(
                'alter default privileges in schema %I grant select on tables to %I',
                target_schema, '{{ role }}'
            );
        end if;
    end loop;
end
$grant_bi$;
{%- endmacro %}
