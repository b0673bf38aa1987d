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


def roomy_statements(conn: psycopg.Connection) -> None:
    """For the rest of the current transaction: memory enough to sort and hash a day's audiences
    (~500k members at 1M customers) without spilling to temporary files, and hash joins instead of
    merge joins, which the planner picks on its (poor) estimates of the diff's CTEs and which sort
    every member several times. `set local`: the connection's own settings are back at commit."""
    conn.execute("set local work_mem = '128MB'")
    conn.execute("set local enable_mergejoin = off")


def _relation_exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]


# Why a published member may not be sent, compliance reasons first (a member both held out and
# unsubscribed is recorded as suppressed). {r}: the member (audience, customer_id, email, email_hash,
# is_later_duplicate); {d}: its row in marts.dim_customers. The look-ups of small sets are `in (subquery)`,
# which PostgreSQL answers from one hash table per statement without joining (and re-hashing) the members.
_BLOCKED_REASON = """case
            when {d}.is_suppressed or {r}.email in (select email from suppressed_emails) then 'suppressed'
            when not {d}.accepts_marketing then 'no_consent'
            when {r}.email_hash in (select email_hash from mailer.esp_suppressions where target = %(target)s)
                then 'esp_suppressed'
            when {d}.customer_id is null then 'unknown_customer'
            when not {d}.is_valid_email or {r}.email !~ %(email_re)s then 'invalid_email'
            when {d}.is_holdout or ({r}.audience, {r}.customer_id) in (select audience, customer_id from holdout)
                then 'holdout'
            when {r}.is_later_duplicate then 'duplicate_email'
        end"""
# An address published more than once in an audience: only its first customer (by id) may be sent.
_LATER_DUPLICATE = """(({r}.audience, {r}.email) in (select audience, email from dups)
         and ({r}.audience, {r}.email, {r}.customer_id) not in (select audience, email, first_customer_id from dups))"""


def _checks(r: str, d: str) -> str:
    return _BLOCKED_REASON.format(r=r, d=d)


def plan_sql(conn: psycopg.Connection) -> str:
    """The diff as one query (parameters: day, target, email_re: ecrm.email_rule.EMAIL_PATTERN). Every
    published member is checked again here, at push time, against suppression, consent, address validity
    (the warehouse's one e-mail rule) and the holdout, even
    though dbt already excluded them: the mailer is the last line before an address leaves the house.

    Rows: (action, audience, customer_id, email, first_name, segment, email_hash, attrs_hash, reason,
    esp_id); action `add`, `update`, `remove` or `blocked` (a published member not sent, with its reason;
    if the ESP has it, it is removed too).

    Set-wise, in one pass: the published members are fully joined with what the ESP has
    (mailer.audience_state) on audience and address, checked, and only the rows where something happens
    are kept; the removal reasons are then looked up for those few. A member whose address the state
    holds takes the state's email_hash (the sha256 of that same address) and, when its customer id, first
    name and segment are the state's too, its attrs_hash (the md5 of those): every writer of the state
    stores exactly these hashes of its row, and hashing ~500k unchanged members a day cost more than the
    rest of the diff. tests/test_mailer_setwise.py holds it to the per-member formulation it replaced."""
    if not _relation_exists(conn, "marts.dim_customers"):
        raise MailerError("marts.dim_customers is missing: cannot check suppression, refusing to push anything")
    holdout = ("select distinct audience, customer_id from sync.sync_holdout_members"
               if _relation_exists(conn, "sync.sync_holdout_members")
               else "select null::text as audience, null::text as customer_id where false")
    blocked, blocked_elsewhere = _checks("pr", "d"), _checks("e", "d")
    return f"""
with published_members as not materialized (
    select audience, customer_id, lower(btrim(email)) as email, nullif(btrim(first_name), '') as first_name, segment
    from published.audience_members
    where as_of_date = %(day)s
),
state as not materialized (
    select * from mailer.audience_state where target = %(target)s and is_member
),
suppressed_emails as (
    select distinct lower(btrim(email)) as email from marts.dim_customers where is_suppressed
),
holdout as ({holdout}),
dups as (  -- an address published more than once in an audience: only its first customer may be sent
    select audience, email, min(customer_id) as first_customer_id
    from published_members
    group by audience, email
    having count(*) > 1
),
paired as (  -- each published member beside the ESP's row of its address in its audience, and the ESP's rows no one has
    select
        p.audience, p.customer_id, p.email, p.first_name, p.segment,
        case when p.email is not null
             then coalesce(s.email_hash, encode(sha256(convert_to(p.email, 'UTF8')), 'hex')) end as email_hash,
        p.email is not null and {_LATER_DUPLICATE.format(r="p")} as is_later_duplicate,
        case when p.email is null then null
             when s.customer_id = p.customer_id and s.first_name is not distinct from p.first_name
                  and s.segment = p.segment then s.attrs_hash
             else md5(concat_ws(chr(31), p.customer_id, coalesce(p.first_name, ''), p.segment)) end as attrs_hash,
        s.audience as s_audience, s.customer_id as s_customer_id, s.email as s_email, s.first_name as s_first_name,
        s.segment as s_segment, s.email_hash as s_email_hash, s.attrs_hash as s_attrs_hash, s.esp_id as s_esp_id
    from published_members as p
    full join state as s on s.audience = p.audience and s.email = p.email
    offset 0  -- a fence: each row's hashes and checks are computed once, not once per reference
),
checked as (
    select pr.*, case when pr.email is not null then {blocked} end as blocked_reason
    from paired as pr
    left join marts.dim_customers as d on d.customer_id = pr.customer_id
    offset 0
),
changes as materialized (  -- the rows where something happens: a few percent of the members on an ordinary day
    select *
    from (
        select c.*,
            case
                when c.email is not null and c.blocked_reason is null and c.s_email_hash is null then 'add'
                when c.email is not null and c.blocked_reason is null and c.s_attrs_hash <> c.attrs_hash then 'update'
                -- the ESP has it and no one sendable in the audience has that address (a duplicate's first
                -- customer decides: only it could be sent)
                when c.s_email_hash is not null and (c.email is null or (c.blocked_reason is not null and not c.is_later_duplicate))
                    then 'remove'
            end as action
        from checked as c
    ) as a
    where a.action is not null or a.blocked_reason is not null
),
elsewhere as (  -- addresses the ESP loses from an audience that another audience sends (moved_audience)
    select distinct e.email
    from (
        select p.*, encode(sha256(convert_to(p.email, 'UTF8')), 'hex') as email_hash,
               {_LATER_DUPLICATE.format(r="p")} as is_later_duplicate
        from published_members as p
        where p.email in (select s_email from changes where action = 'remove' and email is null)
    ) as e
    left join marts.dim_customers as d on d.customer_id = e.customer_id
    where ({blocked_elsewhere}) is null
),
plan as (
    select c.action, c.audience, c.customer_id, c.email, c.first_name, c.segment, c.email_hash, c.attrs_hash,
           case when c.action = 'update' then 'attributes_changed' end as reason,
           case when c.action = 'update' then c.s_esp_id end as esp_id
    from changes as c
    where c.action in ('add', 'update')

    union all

    select 'remove', c.s_audience, c.s_customer_id, c.s_email, c.s_first_name, c.s_segment, c.s_email_hash,
        c.s_attrs_hash,
        coalesce(
            c.blocked_reason,
            case
                when dc.is_suppressed or se.email is not null then 'suppressed'
                when not dc.accepts_marketing then 'no_consent'
                when x.email_hash is not null then 'esp_suppressed'
                when dc.customer_id is null then 'unknown_customer'
                when lower(btrim(dc.email)) <> c.s_email then 'email_changed'
                when not dc.is_valid_email then 'invalid_email'
                when el.email is not null then 'moved_audience'
                when dc.is_holdout then 'holdout'
                else 'left_segment'
            end), c.s_esp_id
    from changes as c
    left join marts.dim_customers as dc on dc.customer_id = c.s_customer_id
    left join suppressed_emails as se on se.email = c.s_email
    left join mailer.esp_suppressions as x on x.target = %(target)s and x.email_hash = c.s_email_hash
    left join elsewhere as el on el.email = c.s_email
    where c.action = 'remove'

    union all

    select 'blocked', c.audience, c.customer_id, c.email, c.first_name, c.segment, c.email_hash, c.attrs_hash,
           c.blocked_reason, null
    from changes as c
    where c.email is not null and c.blocked_reason is not null
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
