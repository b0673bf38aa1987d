-- The only model that reads raw.web_requests: identifiers in URLs stop here (macros/redact_url.sql,
-- docs/formats.md "Redaction"). Path, query string and referrer are redacted (e-mail addresses and
-- the values of the parameters in var url_identifier_params); e-mail addresses also in the user
-- name and the utm values. The click token and order id come from ingest in their own columns.
with

source as (

    select * from {{ source('web', 'web_requests') }}

),

renamed as (

    select
        source._file || ':' || source._line::text as request_id,
        source.requested_at,
        source.remote_addr as ip_address,
        {{ redact_emails("nullif(source.remote_user, '-')") }} as remote_user,
        upper(source.method) as http_method,
        {{ redact_url('source.path') }} as path,  -- noqa: RF04
        {{ redact_url('source.query_string') }} as query_string,
        source.protocol,
        source.status as http_status,
        source.bytes_sent,
        {{ redact_url("nullif(source.referrer, '-')") }} as referrer,
        source.user_agent,
        source.is_bot,
        source.is_static,
        lower({{ redact_emails('source.utm_source') }}) as utm_source,
        lower({{ redact_emails('source.utm_medium') }}) as utm_medium,
        {{ redact_emails('source.utm_campaign') }} as utm_campaign,
        lower(source.customer_token) as customer_token,
        source.order_id,
        source._file as source_file,
        source._line as source_line,
        source._load_id as load_id

    from source

)

select * from renamed
