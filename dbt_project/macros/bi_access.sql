{#-
    Read-only access for BI tools, two NOLOGIN roles, no password anywhere in code (grant them to
    real logins: `grant ecrm_bi_reader to metabase;`):
    - var bi_reader_role (ecrm_bi_reader): usage on marts and published, and SELECT on every column
      of their tables and views except the direct identifiers in var pii_columns (e-mail, first
      name, ...): column-level grants, so `select email` fails with permission denied;
    - var pii_reader_role (ecrm_marketing_ops): SELECT on every column of marts.* and published.*.
    dbt replaces tables on every run, so each marts model grants in its post-hook (inside the
    transaction that swaps the table in: the new table is never visible without, or with wider,
    grants) and on-run-end grants again on everything, published.* included (created by the publish
    step; its tables persist, so their grants do). No default privileges: they can only grant whole
    tables, which would hand BI the identifiers of every new table; earlier ones are revoked here.
-#}
{% macro ensure_bi_reader_role() -%}
    {%- if var('manage_bi_role') -%}
        {%- for role in [var('bi_reader_role'), var('pii_reader_role')] %}
do $ensure_role$
begin
    if not exists (select 1 from pg_roles where rolname = '{{ role }}') then
        create role {{ adapter.quote(role) }} nologin;
    end if;
exception
    when insufficient_privilege then
        raise notice 'cannot create role {{ role }} (needs CREATEROLE); its grants are skipped';
    when duplicate_object or unique_violation then
        null;  -- created concurrently by another run on the same server
end
$ensure_role$;
        {%- endfor %}
    {%- else -%}
select 1;
    {%- endif -%}
{%- endmacro %}

{#- relation: grant on that one (a model's post-hook); none: on all of marts and published. -#}
{% macro grant_bi_reader(relation=none) -%}
    {%- set bi_role = var('bi_reader_role') -%}
    {%- set pii_role = var('pii_reader_role') -%}
    {%- set pii = var('pii_columns') -%}
do $grant_bi$
declare
    target_schema text;
    rel record;
    allowed text;
    has_bi boolean := exists (select 1 from pg_roles where rolname = '{{ bi_role }}');
    has_pii boolean := exists (select 1 from pg_roles where rolname = '{{ pii_role }}');
begin
    if not has_bi then
        raise notice 'role {{ bi_role }} does not exist; BI grants skipped';
    end if;
    if not has_pii then
        raise notice 'role {{ pii_role }} does not exist; its grants are skipped';
    end if;
    foreach target_schema in array array['{{ target.schema }}', 'published'] loop
        continue when not exists (select 1 from pg_namespace where nspname = target_schema);
        {%- if relation is none %}
        if has_bi then
            execute format('grant usage on schema %I to %I', target_schema, '{{ bi_role }}');
            execute format('alter default privileges in schema %I revoke select on tables from %I',
                           target_schema, '{{ bi_role }}');
        end if;
        if has_pii then
            execute format('grant usage on schema %I to %I', target_schema, '{{ pii_role }}');
        end if;
        {%- endif %}
        for rel in
            select c.oid, c.relname
            from pg_class as c
            inner join pg_namespace as n on c.relnamespace = n.oid
            where
                n.nspname = target_schema
                and c.relkind in ('r', 'v', 'm', 'p', 'f')
                {%- if relation is not none %}
                and n.nspname = '{{ relation.schema }}' and c.relname = '{{ relation.identifier }}'
                {%- endif %}
        loop
            if has_bi then
                -- revoking the table privilege drops its column privileges too: then grant afresh
                execute format('revoke all on %I.%I from %I', target_schema, rel.relname, '{{ bi_role }}');
                select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into allowed
                from pg_attribute as a
                where
                    a.attrelid = rel.oid and a.attnum > 0 and not a.attisdropped
                    and a.attname <> all(array[{% for c in pii %}'{{ c }}'{{ ', ' if not loop.last }}{% endfor %}]::text[]);
                if allowed is not null then
                    execute format('grant select (%s) on %I.%I to %I', allowed, target_schema, rel.relname,
                                   '{{ bi_role }}');
                end if;
            end if;
            if has_pii then
                execute format('grant select on %I.%I to %I', target_schema, rel.relname, '{{ pii_role }}');
            end if;
        end loop;
    end loop;
end
$grant_bi$;
{%- endmacro %}
