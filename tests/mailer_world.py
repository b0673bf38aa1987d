"""A tiny warehouse for mailer tests: marts.dim_customers, sync.sync_holdout_members and
published.audience_members created directly with SQL (no dbt), so each test states its own facts."""

from __future__ import annotations

from datetime import date

import psycopg

SETUP = """
create schema if not exists ops;
create schema if not exists marts;
create schema if not exists sync;
create table marts.dim_customers (
    customer_id text primary key, email text not null, first_name text, accepts_marketing boolean not null,
    is_valid_email boolean not null, is_suppressed boolean not null, is_holdout boolean not null,
    has_unsubscribed boolean not null default false, has_hard_bounced boolean not null default false,
    has_complained boolean not null default false
);
create table marts.fct_customer_rfm_daily (
    snapshot_date date, customer_id text, segment text, is_holdout boolean, is_contactable boolean
);
create table sync.sync_holdout_members (audience text, customer_id text, segment text, snapshot_date date);
"""


class World:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        conn.execute(SETUP)  # on a migrated database: published.* and the mailer's tables exist

    def customers(self, n: int, start: int = 0, domain: str = "example.com") -> list[str]:
        ids = [f"c-{i:06d}" for i in range(start, start + n)]
        with self.conn.cursor() as cur:
            cur.executemany("insert into marts.dim_customers (customer_id, email, first_name, accepts_marketing, is_valid_email, "
                            "is_suppressed, is_holdout) values (%s, %s, %s, true, true, false, false)",
                            [(cid, f"{cid}@{domain}", f"Name{cid[-4:]}") for cid in ids])
        return ids

    def set(self, customer_id: str, **flags) -> None:
        for column, value in flags.items():
            self.conn.execute(f"update marts.dim_customers set {column} = %s where customer_id = %s",
                              (value, customer_id))

    def email(self, customer_id: str) -> str:
        return self.conn.execute("select email from marts.dim_customers where customer_id = %s",
                                 (customer_id,)).fetchone()[0]

    def publish(self, day: date, audiences: dict[str, list[str]], segment: str = "Champions") -> None:
        """What publish() leaves behind: the day's audiences (straight from dim_customers, no checks)."""
        with self.conn.transaction():
            self.conn.execute("delete from published.audience_members")
            with self.conn.cursor() as cur:
                for audience, ids in audiences.items():
                    cur.executemany(
                        "insert into published.audience_members (audience, customer_id, email, first_name, segment, "
                        "as_of_date) select %s, customer_id, email, first_name, %s, %s from marts.dim_customers "
                        "where customer_id = %s", [(audience, segment, day, cid) for cid in ids])
            self.conn.execute(
                "insert into ops.publish_runs (as_of_date, audiences, members) values (%s, %s, %s) "
                "on conflict (as_of_date) do update set members = excluded.members",
                (day, len(audiences), sum(map(len, audiences.values()))))

    def state(self, target: str) -> dict[tuple[str, str], str]:
        return {(a, c): s for a, c, s in self.conn.execute(
            "select audience, customer_id, first_name from mailer.audience_state where target = %s and is_member",
            (target,))}

    def changes(self, run_id: int | None = None) -> list[tuple]:
        sql = "select action, audience, customer_id, reason, result from mailer.sync_changes"
        if run_id is None:
            return self.conn.execute(sql + " order by 1, 2, 3").fetchall()
        return self.conn.execute(sql + " where run_id = %s order by 1, 2, 3", (run_id,)).fetchall()
