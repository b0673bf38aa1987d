-- One row per web session (the rule and its incremental upkeep: int_web_sessions, where the table
-- and its indexes live). Published as a view: BI's and the mailer's contract, no second copy.
with

sessions as (

    select * from {{ ref('int_web_sessions') }}

),

final as (

    select * from sessions

)

select * from final
