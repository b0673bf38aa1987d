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
"""

from __future__ import annotations

from datetime import date

import psycopg

from .warehouse.migrate import require_migrated


class PublishRefused(RuntimeError):
    """The built tables are not the run date's: publishing them would show another day's segments."""


def publish(conn: psycopg.Connection, day: date) -> dict[str, int]:
    """Replace the published tables with the day's audited rows; returns members per audience."""
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
        conn.execute("delete from published.audience_members")
        conn.execute(
            "insert into published.audience_members (audience, customer_id, email, first_name, segment, as_of_date) "
            "select audience, customer_id, email, first_name, segment, %s from sync.sync_audience_members", (day,))
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
        conn.execute(
            "insert into ops.publish_runs (as_of_date, audiences, members, segment_customers) "
            "values (%s, %s, %s, %s) on conflict (as_of_date) do update set audiences = excluded.audiences, "
            "members = excluded.members, segment_customers = excluded.segment_customers, published_at = now()",
            (day, len(counts), sum(counts.values()), segment_customers))
    return counts
