-- One row per web session (the rule and its incremental upkeep: int_web_sessions, where the table
-- and its indexes live) and how it arrived. Published as a view: BI's and the mailer's contract, no
-- second copy.
with

sessions as (

    select * from {{ ref('int_web_sessions') }}

),

final as (

    select
        *,
        {{ arrival_channel('utm_medium', 'referrer_host') }} as arrival_channel

    from sessions

)

select * from final
