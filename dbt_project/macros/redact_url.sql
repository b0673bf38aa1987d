{#-
    Identifiers never leave raw (docs/formats.md, "Redaction"): stg_web__requests, the only model that
    reads raw.web_requests, passes its path, query string and referrer through redact_url, so
    intermediate, marts and the report see only redacted text. raw keeps the line (BI cannot read raw).

    redact_url(text): the values of the query (and `;` matrix) parameters listed in the seed
    url_identifier_params become `[redacted]` (`?email=ann@x.com&utm_source=mail` ->
    `?email=[redacted]&utm_source=mail`; names case-insensitive), then redact_emails.
    redact_emails(text): every e-mail address, also with `@` percent-encoded (`%40`, `%2540`), becomes
    `[email]` (`/account/ann@example.com/orders` -> `/account/[email]/orders`, one page for all).
    The parameter list is data: the model reads the seed and passes `params_pattern`, the SQL
    expression of its names joined by `|` (one row cross-joined: one regular expression per statement).
-#}
{% macro redact_emails(text) -%}
    regexp_replace(
        {{ text }},
        '[a-z0-9._%+-]+(@|%(25)*40)[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}',
        '[email]',
        'gi'
    )
{%- endmacro %}

{% macro redact_url(text, params_pattern) -%}
    {{ redact_emails(
        "regexp_replace(" ~ text ~ ", '(^|[?&;])(' || " ~ params_pattern ~ " || ')=[^&;#]*', '\\1\\2=[redacted]', 'gi')"
    ) }}
{%- endmacro %}
