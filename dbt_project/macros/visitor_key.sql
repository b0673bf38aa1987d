{#-
    visitor_id: HMAC-SHA256 of (remote address || '|' || user agent) under a key the warehouse keeps
    in ops.secrets (name 'visitor_id', 64 bytes, readable by its owner only), so a visitor id cannot
    be matched back to an IP address without the key. The key is ECRM_VISITOR_KEY when set (stored
    by the warehouse schema code, src/ecrm/warehouse/__init__.py, through a bound parameter) or one
    generated once on the server (gen_random_uuid(): pg_strong_random). It never passes through dbt
    vars, compiled SQL or logs: models read it from the table; dbt only compares md5 fingerprints.
    The HMAC is built from sha256() (core PostgreSQL) because pgcrypto's hmac() is not in the
    embedded pgserver build. Rotating the key changes every visitor_id: run a --full-refresh of
    int_web_page_views and its descendants (docs/marts.md).
-#}
{% macro ensure_visitor_key() -%}
    {%- set env_key = env_var('ECRM_VISITOR_KEY', '') -%}
create schema if not exists ops;
create table if not exists ops.secrets (
    name        text primary key,
    value       bytea not null,
    fingerprint text not null,
    origin      text not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
revoke all on ops.secrets from public;
    {%- if env_key %}
do $check_visitor_key$
begin
    if not exists (
        select 1 from ops.secrets
        where name = 'visitor_id' and fingerprint = '{{ local_md5(env_key) }}'
    ) then
        raise exception 'ECRM_VISITOR_KEY is set but ops.secrets holds another visitor key (or none): '
            'the warehouse stores it when its schema is applied (any ecrm ingest); a changed key '
            'needs a --full-refresh of int_web_page_views+ (docs/marts.md)';
    end if;
end
$check_visitor_key$;
    {%- else %}
insert into ops.secrets (name, value, fingerprint, origin)
select 'visitor_id', generated.value, md5(encode(generated.value, 'hex')), 'generated'
from (
    select sha512(convert_to(
        gen_random_uuid()::text || gen_random_uuid()::text
        || gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8'
    )) as value
) as generated
on conflict (name) do nothing;
    {%- endif %}
{%- endmacro %}

{#- One HMAC pad of the 64-byte key: every byte xor 0x36 (inner, 54) or 0x5c (outer, 92), as
    (b | pad) - (b & pad) because sqlfluff cannot lex PostgreSQL's # operator. -#}
{% macro hmac_pad(key, pad) -%}
    (
        select decode(string_agg(lpad(to_hex(
            (get_byte({{ key }}, i) | {{ pad }}) - (get_byte({{ key }}, i) & {{ pad }})
        ), 2, '0'), '' order by i), 'hex')
        from generate_series(0, 63) as i
    )
{%- endmacro %}

{#- HMAC-SHA256(key, message), first 128 bits in hex; `key_cte` has columns inner_pad, outer_pad. -#}
{% macro visitor_hmac(message, key_cte) -%}
    left(encode(sha256(
        (select outer_pad from {{ key_cte }})
        || sha256((select inner_pad from {{ key_cte }}) || convert_to({{ message }}, 'UTF8'))
    ), 'hex'), 32)
{%- endmacro %}
