{#- How a web session arrived, from its landing page's utm_medium and referrer host (docs/marts.md
    "Arrival channels"): e-mail, paid, social, search, campaign (another utm_medium), referral (any
    other site) or direct (no referrer). utm_medium wins over the referrer (a tagged Instagram ad is
    paid, not social); hosts are matched on their registrable name, so google.de and l.facebook.com
    count like google.com and facebook.com. -#}
{% macro arrival_channel(utm_medium, referrer_host) -%}
    case
        when lower({{ utm_medium }}) in ('email', 'e-mail', 'newsletter') then 'email'
        when lower({{ utm_medium }}) ~ '^(cpc|ppc|cpm|cpv|display|paid|paid[-_ ]?(search|social)|retargeting)$'
            then 'paid'
        when lower({{ utm_medium }}) in ('social', 'social-network', 'social_network', 'social-media', 'sm')
            then 'social'
        when {{ utm_medium }} is null
            and {{ referrer_host }} ~ '(^|\.)(facebook|instagram|pinterest|linkedin|tiktok|youtube|reddit|twitter|x)\.[a-z.]+$|^t\.co$'
            then 'social'
        when {{ utm_medium }} is null
            and {{ referrer_host }} ~ '(^|\.)(google|bing|duckduckgo|yahoo|ecosia|yandex|baidu|qwant|startpage)\.[a-z.]+$'
            then 'search'
        when {{ utm_medium }} is not null then 'campaign'
        when {{ referrer_host }} is not null then 'referral'
        else 'direct'
    end
{%- endmacro %}
