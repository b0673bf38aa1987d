-- The only model that reads raw.web_requests: identifiers in URLs stop here (macros/redact_url.sql,
-- docs/formats.md "Redaction"). Path, query string and referrer are redacted (e-mail addresses and
-- the values of the parameters in seed url_identifier_params); e-mail addresses also in the user
-- name and the utm values. The click token and order id come from ingest in their own columns.
with

source as (

    select * from {{ source('web', 'web_requests') }}

),

identifier_params as (

    -- never null: an empty seed redacts no parameter (and no path becomes null)
    select coalesce(string_agg(param, '|' order by param), '(?!x)x') as pattern
    from {{ ref('url_identifier_params') }}

),

renamed as (

    select
        _file || ':' || _line::text as request_id,
        requested_at,
        remote_addr as ip_address,
        {{ redact_emails("nullif(remote_user, '-')") }} as remote_user,
        upper(method) as http_method,
        {{ redact_url('path', 'identifier_params.pattern') }} as path,
        {{ redact_url('query_string', 'identifier_params.pattern') }} as query_string,
        protocol,
        status as http_status,
        bytes_sent,
        {{ redact_url("nullif(referrer, '-')", 'identifier_params.pattern') }} as referrer,
        user_agent,
        is_bot,
        is_static,
        lower({{ redact_emails('utm_source') }}) as utm_source,
        lower({{ redact_emails('utm_medium') }}) as utm_medium,
        {{ redact_emails('utm_campaign') }} as utm_campaign,
        lower(customer_token) as customer_token,
        order_id,
        _file as source_file,
        _line as source_line,
        _load_id as load_id

    from source
    cross join identifier_params

)

select * from renamed
