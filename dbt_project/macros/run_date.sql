{#-
    The day being processed: the var run_date when given (`--vars '{run_date: 2026-10-01}'`, unit
    tests), else the environment variable ECRM_RUN_DATE (how ecrm.transform.build passes it).
    Never use current_date / now() in a model: every result is a function of run_date.

    The environment variable is read only while executing, never while parsing (execute is false
    then and this returns a placeholder), so dbt records no dependency on it and a new run date
    keeps the partial parse. A var that changes per day would not: dbt hashes the CLI vars and
    re-parses the whole project when they change ("Unable to do partial parsing because config
    vars, config profile, or config target have changed").
-#}
{% macro run_date_str() -%}
    {%- set value = var('run_date', none) -%}
    {%- if execute -%}
        {%- if value is none or value == '' -%}
            {%- set value = env_var('ECRM_RUN_DATE', '') -%}
        {%- endif -%}
        {%- if value is none or value == '' -%}
            {{ exceptions.raise_compiler_error("the run date is required: set ECRM_RUN_DATE=YYYY-MM-DD or pass --vars '{run_date: 2026-10-01}'") }}
        {%- endif -%}
        {%- set value = value | string | trim -%}
        {%- if modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) is none -%}
            {{ exceptions.raise_compiler_error("var 'run_date' must be YYYY-MM-DD, got '" ~ value ~ "'") }}
        {%- endif -%}
        {{ return(value) }}
    {%- else -%}
        {{ return('1970-01-01') }}
    {%- endif -%}
{%- endmacro %}

{#- run_date as a SQL date literal. -#}
{% macro run_date() -%}
    cast('{{ run_date_str() }}' as date)
{%- endmacro %}

{#- End of run_date (exclusive), 00:00 UTC of the next day, as timestamptz: use `< as_of_ts()`. -#}
{% macro as_of_ts() -%}
    (cast('{{ run_date_str() }}' as date) + 1)::timestamp at time zone 'UTC'
{%- endmacro %}

{#- The UTC calendar date of a timestamptz expression. -#}
{% macro utc_date(expr) -%}
    cast(({{ expr }}) at time zone 'UTC' as date)
{%- endmacro %}
