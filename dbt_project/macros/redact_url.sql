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
{#- Both macros first test the text with strpos and run no regular expression where none can match
    (an address needs `@` or a `%`-encoding, a parameter a `=`): the same result, and 5.4 -> 1.3 s
    for the 1.7M page views of bench_day's 1M-customer day (benchmarks/README.md). -#}
{% macro redact_emails(text) -%}
    case
        when strpos({{ text }}, '@') > 0 or strpos({{ text }}, '%') > 0 then {{ _redact_emails_always(text) }}
        else {{ text }}
    end
{%- endmacro %}

{% macro _redact_emails_always(text) -%}
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
        case
            when strpos({{ text }}, '=') > 0 or strpos({{ text }}, '@') > 0 or strpos({{ text }}, '%') > 0
                then {{ _redact_emails_always(
                    "regexp_replace(" ~ text ~ ", '(^|[?&;])(" ~ names | join('|') ~ ")=[^&;#]*', '\\1\\2=[redacted]', 'gi')"
                ) }}
            else {{ text }}
        end
    {%- else -%}
        {{ redact_emails(text) }}
    {%- endif -%}
{%- endmacro %}
