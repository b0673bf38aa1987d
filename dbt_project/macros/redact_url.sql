{#-
    Identifiers never leave raw (docs/formats.md, "Redaction"): stg_web__requests, the only model that
    reads raw.web_requests, passes its path, query string and referrer through redact_url, so
    intermediate, marts and the report see only redacted text. raw keeps the line (BI cannot read raw).

    redact_url(text): the values of the query (and `;` matrix) parameters listed in var
    url_identifier_params (dbt_project.yml) become `[redacted]` (`?email=ann@x.com&utm_source=mail` ->
    `?email=[redacted]&utm_source=mail`; names case-insensitive), then redact_emails.
    redact_emails(text): every e-mail address, also with `@` percent-encoded (`%40`, `%2540`), becomes
    `[email]` (`/account/ann@example.com/orders` -> `/account/[email]/orders`, one page for all).
    The parameter list is data in one place, the var (name: what its value holds); it is compiled
    into the SQL, so no run-time table is needed (`dbt run` of the web models works without seeds).
-#}
{% macro redact_emails(text) -%}
    regexp_replace(
        {{ text }},
        '[a-z0-9._%+-]+(@|%(25)*40)[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}',
        '[email]',
        'gi'
    )
{%- endmacro %}

{% macro redact_url(text) -%}
    {%- set names = var('url_identifier_params', {}).keys() | map('string') | sort -%}
    {%- for name in names if not modules.re.match('^[a-z0-9_]+$', name) -%}
        {{ exceptions.raise_compiler_error("var url_identifier_params: '" ~ name
            ~ "' must be lower-case letters, digits and underscores (a parameter name)") }}
    {%- endfor -%}
    {%- if names -%}
        {{ redact_emails(
            "regexp_replace(" ~ text ~ ", '(^|[?&;])(" ~ names | join('|') ~ ")=[^&;#]*', '\\1\\2=[redacted]', 'gi')"
        ) }}
    {%- else -%}
        {{ redact_emails(text) }}
    {%- endif -%}
{%- endmacro %}
