"""Publish: make the audited day's audiences visible to marketing and the mailer, in one transaction.

dbt builds `sync.audience_members` where nobody reads it; only after the quality gate passes does
`publish` swap the day's rows into `published.audience_members`. A failed gate never reaches here,
so yesterday's published audiences stay in place.
"""

from __future__ import annotations

from datetime import date

import psycopg

PUBLISHED_DDL = """
create schema if not exists published;
create table if not exists published.audience_members (
    audience      text not null,
    customer_id   text not null,
    email         text not null,
    first_name    text,
    segment       text not null,
    as_of_date    date not null,
    primary key (audience, customer_id)
);
create table if not exists ops.publish_runs (
    as_of_date    date primary key,
    audiences     integer not null,
    members       integer not null,
    published_at  timestamptz not null default now()
);
"""


def publish(conn: psycopg.Connection, day: date) -> dict[str, int]:
    """Replace the published audiences with the day's audited ones; returns members per audience."""
    with conn.transaction():
        conn.execute(PUBLISHED_DDL)
        conn.execute("lock table published.audience_members in exclusive mode")
        conn.execute("delete from published.audience_members")
        conn.execute(
            "insert into published.audience_members (audience, customer_id, email, first_name, segment, as_of_date) "
            "select audience, customer_id, email, first_name, segment, %s from sync.sync_audience_members", (day,))
        counts = dict(conn.execute(
            "select audience, count(*) from published.audience_members group by audience order by audience"
        ).fetchall())
        conn.execute(
            "insert into ops.publish_runs (as_of_date, audiences, members) values (%s, %s, %s) "
            "on conflict (as_of_date) do update set audiences = excluded.audiences, members = excluded.members, "
            "published_at = now()", (day, len(counts), sum(counts.values())))
    return counts
