"""What the ESP has (mailer.audience_state), the audit (mailer.sync_runs, mailer.sync_changes), and
the diff between the published audiences and that state, computed in SQL.

State is keyed by (target, audience, email_hash): ``target`` names the ESP account/list the rows
describe (``outbox``, ``listmonk:<host>``, ``mailchimp:<list id>``), so switching adapters starts a
fresh state instead of trusting another ESP's. Removed members are kept with ``is_member = false``
and ``removed_day`` so "when did this person leave the list, and why" stays answerable.
"""

from __future__ import annotations

import psycopg

from .http import MailerError

# Removal reasons that are compliance: the person may not be mailed (suppressed = unsubscribed, hard bounce
# or spam complaint, by customer or by address; consent withdrawn; the ESP reports a compliance state).
# They always go out, first, and never count towards the circuit breaker. Every other reason
# (left_segment, moved_audience, email_changed, holdout, invalid_email, unknown_customer,
# duplicate_email) is ordinary membership churn, which a broken upstream model produces en masse: the
# breaker guards those, per audience.
COMPLIANCE_REASONS = frozenset({"suppressed", "no_consent", "esp_suppressed"})


def _relation_exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]


def plan_sql(conn: psycopg.Connection) -> str:
    """The diff as one query (parameters: day, target, email_re: ecrm.email_rule.EMAIL_PATTERN). Every
    published member is checked again here, at push time, against suppression, consent, address validity
    (the warehouse's one e-mail rule) and the holdout, even
    though dbt already excluded them: the mailer is the last line before an address leaves the house."""
    if not _relation_exists(conn, "marts.dim_customers"):
        raise MailerError("marts.dim_customers is missing: cannot check suppression, refusing to push anything")
    holdout = ("select distinct audience, customer_id from sync.sync_holdout_members"
               if _relation_exists(conn, "sync.sync_holdout_members")
               else "select null::text as audience, null::text as customer_id where false")
    return f"""
with published_members as (
    select audience, customer_id, lower(btrim(email)) as email, nullif(btrim(first_name), '') as first_name, segment
    from published.audience_members
    where as_of_date = %(day)s
),
suppressed_emails as (
    select distinct lower(btrim(email)) as email from marts.dim_customers where is_suppressed
),
holdout as ({holdout}),
hashed as (
    select
        p.*,
        encode(sha256(convert_to(p.email, 'UTF8')), 'hex') as email_hash,
        md5(concat_ws(chr(31), p.customer_id, coalesce(p.first_name, ''), p.segment)) as attrs_hash
    from published_members as p
),
checked as (
    select
        h.*,
        case  -- compliance reasons first: a member both held out and unsubscribed is recorded as suppressed
            when d.is_suppressed or se.email is not null then 'suppressed'
            when not d.accepts_marketing then 'no_consent'
            when x.email_hash is not null then 'esp_suppressed'
            when d.customer_id is null then 'unknown_customer'
            when not d.is_valid_email or h.email !~ %(email_re)s then 'invalid_email'
            when d.is_holdout or ho.customer_id is not null then 'holdout'
            when row_number() over (partition by h.audience, h.email_hash order by h.customer_id) > 1
                then 'duplicate_email'
        end as blocked_reason
    from hashed as h
    left join marts.dim_customers as d on d.customer_id = h.customer_id
    left join suppressed_emails as se on se.email = h.email
    left join holdout as ho on ho.audience = h.audience and ho.customer_id = h.customer_id
    left join mailer.esp_suppressions as x on x.target = %(target)s and x.email_hash = h.email_hash
),
desired as (
    select * from checked where blocked_reason is null
),
state as (
    select * from mailer.audience_state where target = %(target)s and is_member
),
plan as (
    select 'add' as action, d.audience, d.customer_id, d.email, d.first_name, d.segment, d.email_hash,
           d.attrs_hash, null::text as reason, null::text as esp_id
    from desired as d
    left join state as s on s.audience = d.audience and s.email_hash = d.email_hash
    where s.email_hash is null

    union all

    select 'update', d.audience, d.customer_id, d.email, d.first_name, d.segment, d.email_hash,
           d.attrs_hash, 'attributes_changed', s.esp_id
    from desired as d
    inner join state as s on s.audience = d.audience and s.email_hash = d.email_hash
    where s.attrs_hash <> d.attrs_hash

    union all

    select 'remove', s.audience, s.customer_id, s.email, s.first_name, s.segment, s.email_hash, s.attrs_hash,
        coalesce(
            (select c.blocked_reason from checked as c
             where c.audience = s.audience and c.email_hash = s.email_hash and c.blocked_reason is not null
             order by c.customer_id limit 1),
            case
                when dc.is_suppressed or exists (select 1 from suppressed_emails as se where se.email = s.email)
                    then 'suppressed'
                when not dc.accepts_marketing then 'no_consent'
                when exists (select 1 from mailer.esp_suppressions as x
                             where x.target = %(target)s and x.email_hash = s.email_hash) then 'esp_suppressed'
                when dc.customer_id is null then 'unknown_customer'
                when lower(btrim(dc.email)) <> s.email then 'email_changed'
                when not dc.is_valid_email then 'invalid_email'
                when exists (select 1 from desired as o where o.email_hash = s.email_hash) then 'moved_audience'
                when dc.is_holdout then 'holdout'
                else 'left_segment'
            end), s.esp_id
    from state as s
    left join desired as d on d.audience = s.audience and d.email_hash = s.email_hash
    left join marts.dim_customers as dc on dc.customer_id = s.customer_id
    where d.email_hash is null

    union all

    select 'blocked', c.audience, c.customer_id, c.email, c.first_name, c.segment, c.email_hash, c.attrs_hash,
           c.blocked_reason, null
    from checked as c
    where c.blocked_reason is not null
)
select * from plan
"""


# The compliance-only push (a day whose gate blocked the publish) decides from what was loaded, not
# from the marts the gate refused: the ESP events and the shop's customers in raw.*, which exist from
# the warehouse's first migration on. The rules are dbt's (stg_esp__email_events,
# int_customer_email_flags, dim_customers.is_suppressed / accepts_marketing): an unsubscribe, a spam
# complaint or a hard bounce, by address or by customer id, up to the end of the day; consent withdrawn
# (raw.customers.accepts_marketing false, its latest version); or an ESP compliance state already
# recorded. tests/reliability/test_compliance_push.py holds the two rules to the same customers.
COMPLIANCE_PLAN_SQL = """
with state as (
    select * from mailer.audience_state where target = %(target)s and is_member
),
suppression_events as (
    select lower(btrim(email)) as email, nullif(btrim(customer_id), '') as customer_id
    from raw.email_events
    where occurred_at < %(day_end)s
        and (lower(btrim(event)) in ('unsubscribe', 'spamreport')
             or (lower(btrim(event)) = 'bounce' and lower(bounce_type) in ('hard', 'bounce')))
),
suppressed as (
    select s.audience, s.email_hash from state as s inner join suppression_events as e on e.email = s.email
    union
    select s.audience, s.email_hash from state as s inner join suppression_events as e on e.customer_id = s.customer_id
),
no_consent as (
    select s.audience, s.email_hash
    from state as s inner join raw.customers as c on c.customer_id = s.customer_id
    where not c.accepts_marketing
),
esp_suppressed as (
    select s.audience, s.email_hash
    from state as s inner join mailer.esp_suppressions as x on x.target = s.target and x.email_hash = s.email_hash
)
select
    'remove' as action, s.audience, s.customer_id, s.email, s.first_name, s.segment, s.email_hash, s.attrs_hash,
    case
        when sp.email_hash is not null then 'suppressed'
        when nc.email_hash is not null then 'no_consent'
        else 'esp_suppressed'
    end as reason,
    s.esp_id
from state as s
left join suppressed as sp on sp.audience = s.audience and sp.email_hash = s.email_hash
left join no_consent as nc on nc.audience = s.audience and nc.email_hash = s.email_hash
left join esp_suppressed as x on x.audience = s.audience and x.email_hash = s.email_hash
where sp.email_hash is not null or nc.email_hash is not null or x.email_hash is not null
"""
