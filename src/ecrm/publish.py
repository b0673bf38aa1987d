"""Publish: make the audited day's segments visible to marketing, BI and the mailer, in one transaction.

Write, audit, publish: dbt builds `sync.*` and `marts.*`; the quality gate audits them for the
run date; only then does `publish` replace the published tables with the day's rows:

- published.audience_members   what the mailer pushes (from sync.sync_audience_members)
- published.customer_segments  each customer's RFM segment of the day (from marts.fct_customer_rfm_daily)
- published.segment_summary    customers and revenue per segment of the day (from marts.fct_segment_summary_daily)

All three change in one transaction, so readers see yesterday's tables or today's, never a mix,
and a failed gate (which raises before publish is called) leaves yesterday's tables in place.
It stands between the quality gate (ecrm.quality), which audits first, and the mailer (ecrm.mailer),
which pushes what is published; neither of the two imports the other.

A forecast the gate could not trust (`withheld` = {"forecast": ...}: its fits did not converge, left
their bounds, or put everyone in one churn band) withholds only what is built from it: the forecast's
audiences (FORECAST_AUDIENCE and any enabled flow triggered by the churn risk) keep their last published
members -- frozen, minus anyone no longer contactable or now held out -- instead of the day's; everything
else is published. ops.publish_runs.withheld says what was withheld, why, and how many stayed.
"""

from __future__ import annotations

from datetime import date

import psycopg
from psycopg.types.json import Jsonb

from .warehouse.migrate import require_migrated

FORECAST_AUDIENCE = "high_value_at_risk"  # int_customers_high_value_at_risk: ranked by the forecast
FORECAST_FLOW_TRIGGERS = ("churn_risk_high",)  # seeds/flows.csv trigger types that read the forecast


class PublishRefused(RuntimeError):
    """The built tables are not the run date's: publishing them would show another day's segments."""


def forecast_audiences(conn: psycopg.Connection) -> list[str]:
    """The audiences built from the forecast: high_value_at_risk and the enabled flows whose trigger is
    the forecast's churn risk (seeds.flows, when dbt has loaded it)."""
    audiences = {FORECAST_AUDIENCE}
    if conn.execute("select to_regclass('seeds.flows') is not null").fetchone()[0]:
        audiences |= {a for (a,) in conn.execute("select audience from seeds.flows where enabled "
                                                 "and trigger_type = any(%s)", (list(FORECAST_FLOW_TRIGGERS),))}
    return sorted(audiences)


def _freeze(conn: psycopg.Connection, day: date, audiences: list[str]) -> dict[str, int]:
    """Keep `audiences` at their last published members (re-dated to `day`), dropping anyone the day's
    dim_customers (audited by the gate) says is no longer contactable or is held out; returns members kept.
    Call inside publish's transaction, before the day's rows go in."""
    conn.execute("delete from published.audience_members where audience <> all(%s)", (audiences,))
    conn.execute("delete from published.audience_members as p where not exists (select 1 from marts.dim_customers "
                 "as d where d.customer_id = p.customer_id and d.is_contactable and not d.is_holdout)")
    if conn.execute("select to_regclass('sync.sync_holdout_members') is not null").fetchone()[0]:  # a flow's own
        conn.execute("delete from published.audience_members as p using sync.sync_holdout_members as h "
                     "where h.audience = p.audience and h.customer_id = p.customer_id")
    conn.execute("update published.audience_members set as_of_date = %s", (day,))
    return dict(conn.execute("select audience, count(*) from published.audience_members group by 1").fetchall())


def publish(conn: psycopg.Connection, day: date, withheld: dict | None = None) -> dict[str, int]:
    """Replace the published tables with the day's audited rows; returns members per audience.

    `withheld`: what the gate withheld (ecrm.quality.gate.withheld); {"forecast": {"reason", "checks"}}
    freezes the forecast's audiences at their last published members instead of publishing the day's."""
    from . import lineage

    with lineage.job("ecrm.publish", "publish the audited audiences and segments (write-audit-publish)") as run:
        counts = _publish(conn, day, withheld or {})
        if run:  # OpenLineage (ecrm.lineage): the audited sync and marts tables in, published.* out
            url = lineage.conn_url(conn)
            run.read(*(lineage.table(url, t) for t in PUBLISH_INPUTS))
            run.wrote(*(lineage.table(url, t) for t in PUBLISHED))
    return counts


PUBLISH_INPUTS = ("sync.sync_audience_members", "sync.sync_holdout_members", "marts.dim_customers",
                  "marts.fct_customer_rfm_daily", "marts.fct_segment_summary_daily")
PUBLISHED = ("published.audience_members", "published.customer_segments", "published.segment_summary")


def _publish(conn: psycopg.Connection, day: date, withheld: dict) -> dict[str, int]:
    require_migrated(conn)
    with conn.transaction():
        # Readers keep seeing the previous tables until commit (MVCC); writers wait for us.
        conn.execute("lock table published.audience_members, published.customer_segments, "
                     "published.segment_summary in exclusive mode")
        stale = conn.execute(
            "select (select count(*) from sync.sync_audience_members where snapshot_date is distinct from %(d)s), "
            "(select count(*) from marts.fct_customer_rfm_daily where snapshot_date = %(d)s)", {"d": day}).fetchone()
        if stale[0] or not stale[1]:
            raise PublishRefused(f"refusing to publish {day}: sync.sync_audience_members holds {stale[0]} rows of "
                                 f"another day, marts.fct_customer_rfm_daily {stale[1]} rows of {day}")
        frozen: list[str] = forecast_audiences(conn) if "forecast" in withheld else []
        kept = _freeze(conn, day, frozen) if frozen else {}
        if not frozen:
            conn.execute("delete from published.audience_members")
        conn.execute(
            "insert into published.audience_members (audience, customer_id, email, first_name, segment, as_of_date) "
            "select audience, customer_id, email, first_name, segment, %s from sync.sync_audience_members "
            "where audience <> all(%s)", (day, frozen))
        conn.execute("delete from published.customer_segments")
        segment_customers = conn.execute(
            "insert into published.customer_segments (snapshot_date, customer_id, segment, rfm_cell, r_score, f_score, "
            "m_score, recency_days, frequency, monetary, is_holdout, is_contactable) "
            "select snapshot_date, customer_id, segment, rfm_cell, r_score, f_score, m_score, recency_days, frequency, "
            "monetary, is_holdout, is_contactable from marts.fct_customer_rfm_daily where snapshot_date = %s",
            (day,)).rowcount
        conn.execute("delete from published.segment_summary")
        conn.execute(
            "insert into published.segment_summary (snapshot_date, segment, customers, contactable_customers, "
            "holdout_customers, revenue, total_customers, total_revenue, customer_share, revenue_share) "
            "select snapshot_date, segment, customers, contactable_customers, holdout_customers, revenue, "
            "total_customers, total_revenue, customer_share, revenue_share "
            "from marts.fct_segment_summary_daily where snapshot_date = %s", (day,))
        counts = dict(conn.execute(
            "select audience, count(*) from published.audience_members group by audience order by audience"
        ).fetchall())
        record = {part: {**why, "audiences": {a: kept.get(a, 0) for a in frozen} if part == "forecast" else {}}
                  for part, why in withheld.items()}
        conn.execute(
            "insert into ops.publish_runs (as_of_date, audiences, members, segment_customers, withheld) "
            "values (%s, %s, %s, %s, %s) on conflict (as_of_date) do update set audiences = excluded.audiences, "
            "members = excluded.members, segment_customers = excluded.segment_customers, "
            "withheld = excluded.withheld, published_at = now()",
            (day, len(counts), sum(counts.values()), segment_customers, Jsonb(record) if record else None))
    return counts
