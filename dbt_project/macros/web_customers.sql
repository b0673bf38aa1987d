{#-
    Customers whose web sessions can have changed since run_date - web_lookback_days: identified
    customers of visitors with a page view since then (re-sessionized by fct_web_sessions) or
    identified since then (also later: a rebuilt past day drops them). All identified customers on
    a full build.
-#}
{% macro customers_with_changed_sessions(page_views, visitors_identified) -%}
    select customer_id from {{ visitors_identified }}
    where visitor_id in (
        select visitor_id from {{ page_views }}
        where view_date >= {{ incremental_since() }}
    )
    union
    select customer_id from {{ visitors_identified }}
    where identified_at >= {{ incremental_since_ts() }}
{%- endmacro %}

{#-
    Customers of int_customer_web_activity to recompute: those whose sessions can have changed
    since run_date - web_lookback_days, and those with a session that left the 30- or 90-day window
    after the day the table was last computed for (last_computed_for_date; a window as of day d
    holds the sessions started on d - 29 or later, so those of [last day - 29, run_date - 30] left
    the 30-day one; whole session dates, index on session_date). One day of each window on a daily
    run, none on a rerun of the day. Only used when recompute_all_customers is false, so the last
    day is in [run_date - web_lookback_days - 1, run_date].
-#}
{% macro web_activity_to_recompute() -%}
    {#- run_date when there is no last day: rendered for a full build's pre-hook, never run -#}
    {%- set last_day = last_computed_for_date() or run_date_str() -%}
    {{ customers_with_changed_sessions(ref('int_web_page_views'), ref('int_web_visitors_identified')) }}
    union
    select customer_id from {{ ref('fct_web_sessions') }}
    where
        customer_id is not null
        and (
            session_date between cast('{{ last_day }}' as date) - 29 and {{ run_date() }} - 30
            or session_date between cast('{{ last_day }}' as date) - 89 and {{ run_date() }} - 90
        )
{%- endmacro %}

{#-
    Pre-hook of fct_web_sessions: delete the sessions of visitors with a page view in
    [run_date - web_lookback_days, run_date] that a page view of that window can change, i.e. that
    end less than (or exactly) web_session_timeout_minutes before it, or later. Nothing on a full
    build.
-#}
{% macro delete_sessions_to_resessionize() -%}
    {%- if is_incremental() -%}
delete from {{ this }}
where
    visitor_id in (
        select visitor_id from {{ ref('int_web_page_views') }}
        where view_date between {{ incremental_since() }} and {{ run_date() }}
    )
    -- a constant range on the index on ended_at: the few sessions of the last days, whatever the
    -- history (= any(array(...)) over the visitors degrades to a linear search per row at 1M)
    and ended_at >= {{ incremental_since() }}::timestamp at time zone 'UTC'
    - interval '{{ var("web_session_timeout_minutes") | int }} minutes'
    {%- else -%}
select 1
    {%- endif -%}
{%- endmacro %}
