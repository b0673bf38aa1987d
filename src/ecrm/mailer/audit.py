"""Answering marketing's question: "was this person in that day's audience, and if not, why not?"

``mailer.member_history`` (a view over the mailer's own tables, so dbt rebuilds never drop it; created by
the warehouse's migrations, src/ecrm/warehouse/migrations/) lists
every change the mailer planned or made per member; ``WHY_NOT_SQL`` combines it with the day's RFM
snapshot and the customer's flags. docs/mailer.md shows the same query for psql.
"""

from __future__ import annotations

from datetime import date

import psycopg

# %(who)s: an e-mail address or a customer id; %(day)s: the day in question.
WHY_NOT_SQL = """
with person as (
    select customer_id, is_suppressed, has_unsubscribed, has_hard_bounced, has_complained, accepts_marketing,
           is_valid_email, encode(sha256(convert_to(lower(btrim(email)), 'UTF8')), 'hex') as email_hash
    from marts.dim_customers
    where customer_id = %(who)s or lower(btrim(email)) = lower(btrim(%(who)s))
),
membership as (  -- last add/remove the ESP confirmed on or before the day, per target and audience
    select distinct on (h.target, h.audience) h.target, h.audience, h.action, h.day
    from mailer.member_history as h
    inner join person as p on h.email_hash = p.email_hash
    where h.result in ('sent', 'skipped') and h.action in ('add', 'remove') and h.day <= %(day)s
    order by h.target, h.audience, h.day desc, h.run_id desc
),
that_day as (  -- what the mailer did or refused that day
    select string_agg(h.target || ' ' || h.audience || ': ' || h.action || ' -> ' || h.result
                      || coalesce(' (' || h.reason || ')', '') || coalesce(' ' || h.error, ''), '; '
                      order by h.target, h.audience, h.action) as changes
    from mailer.member_history as h
    inner join person as p on h.email_hash = p.email_hash or h.customer_id = p.customer_id
    where h.day = %(day)s and not h.dry_run
)
select
    p.customer_id,
    rfm.segment as segment_that_day,
    (select string_agg(m.target || ' ' || m.audience, ', ') from membership as m where m.action = 'add')
        as in_esp_audiences,
    (select changes from that_day) as mailer_changes_that_day,
    case
        when rfm.customer_id is null then 'no RFM snapshot for this customer on that day'
        when rfm.is_holdout then 'holdout: kept out of every audience to measure lift'
        when not rfm.is_contactable then
            case
                when p.has_unsubscribed then 'suppressed: unsubscribed'
                when p.has_hard_bounced then 'suppressed: hard bounce'
                when p.has_complained then 'suppressed: spam complaint'
                when not p.accepts_marketing then 'no marketing consent'
                when not p.is_valid_email then 'invalid e-mail address'
                else 'not contactable'
            end
        when exists (select 1 from membership as m where m.action = 'add') then 'in the audience'
        else 'segment ' || rfm.segment || ' is in no audience, or the push was blocked (see mailer_changes_that_day)'
    end as verdict
from person as p
left join marts.fct_customer_rfm_daily as rfm on rfm.customer_id = p.customer_id and rfm.snapshot_date = %(day)s
"""


def why_not(conn: psycopg.Connection, who: str, day: date) -> list[dict]:
    """One row per matching customer: segment that day, ESP audiences, the mailer's changes, a verdict."""
    cur = conn.execute(WHY_NOT_SQL, {"who": who, "day": day})
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
