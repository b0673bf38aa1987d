with

source as (

    select * from {{ source('web', 'web_requests') }}

),

renamed as (

    select
        _file || ':' || _line::text as request_id,
        requested_at,
        remote_addr as ip_address,
        nullif(remote_user, '-') as remote_user,
        upper(method) as http_method,
        path,
        query_string,
        protocol,
        status as http_status,
        bytes_sent,
        nullif(referrer, '-') as referrer,
        user_agent,
        is_bot,
        is_static,
        lower(utm_source) as utm_source,
        lower(utm_medium) as utm_medium,
        utm_campaign,
        lower(customer_token) as customer_token,
        order_id,
        _file as source_file,
        _line as source_line,
        _load_id as load_id

    from source

)

select * from renamed
