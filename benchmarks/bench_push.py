"""The outbox push of an ordinary day at 1M customers, against one hand-written COPY TO (issue 30, item 1).

    .venv/bin/python benchmarks/bench_push.py [--customers 1000000] [--repeat 2] [--dir /tmp/bench-push]

Builds, with generate_series in its own embedded warehouse, what the push reads: marts.dim_customers
(1M customers: ~10% without consent, ~1% suppressed, ~10% held out), sync.sync_holdout_members, and
two days of published audiences (segments by hash; ~54% of customers in one of four audiences). Day
1 is seeded as already pushed: mailer.audience_state, sync_runs and sync_changes as the push of day
1 leaves them. Day 2 is an ordinary day: 4% of customers change segment (adds, removes, moves and
updates), 0.5% rename, 0.5% of the members unsubscribe and 0.2% withdraw consent (compliance
removals), 0.1% new customers join.

Then, fastest of --repeat (the state restored to day 1 before each):
  - ecrm: `sync_audiences(conn, day 2)` with the outbox adapter (plan, breaker, audit, state, files, manifest);
  - rerun: the same call again (nothing to send; files unchanged);
  - limit: one `COPY (select * from published.audience_members) TO STDOUT` into a file, as bench_day.py.

Before/after on the same harness: run it once with PYTHONPATH=<a checkout of the old code>/src (it
only calls the public `sync_audiences` and `MailerConfig`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import psycopg

D1, D2 = date(2026, 10, 1), date(2026, 10, 2)
SEGMENTS = ["Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention", "About to Sleep",
            "At Risk", "Can't Lose Them", "Hibernating", "Lost", "Prospect"]
AUDIENCES = [("winback", "At Risk"), ("winback", "Can't Lose Them"), ("winback", "About to Sleep"),
             ("vip", "Champions"), ("vip", "Loyal"), ("nurture", "New"), ("nurture", "Promising"),
             ("high_value_at_risk", "Need Attention")]

SETUP = """
create schema if not exists marts; create schema if not exists sync; create schema if not exists bench;
drop table if exists marts.dim_customers, sync.sync_holdout_members, bench.audiences, bench.segments;
create table bench.audiences (audience text, segment text);
insert into bench.audiences values {audiences};
create table marts.dim_customers as
select 'c' || lpad(g::text, 8, '0') as customer_id, 'user' || g || '@example.com' as email,
       'Name' || (g % 1000) as first_name, g % 10 <> 0 as accepts_marketing, true as is_valid_email,
       g % 97 = 0 as is_suppressed, (abs(hashtext('holdout:' || g)) % 100) < 10 as is_holdout,
       g % 97 = 0 as has_unsubscribed, false as has_hard_bounced, false as has_complained
from generate_series(1, {n}) g;
alter table marts.dim_customers add primary key (customer_id);
-- each customer's segment on day 1 and day 2 (4% move)
create table bench.segments as
select customer_id, ({segments}::text[])[1 + abs(hashtext('s1:' || customer_id)) % 12] as s1,
       case when abs(hashtext('move:' || customer_id)) % 100 < 4
            then ({segments}::text[])[1 + abs(hashtext('s2:' || customer_id)) % 12]
            else ({segments}::text[])[1 + abs(hashtext('s1:' || customer_id)) % 12] end as s2
from marts.dim_customers;
create table sync.sync_holdout_members as
select a.audience, s.customer_id, s.s1 as segment, {d1}::date as snapshot_date
from bench.segments s join bench.audiences a on a.segment = s.s1
join marts.dim_customers c using (customer_id) where c.is_holdout;
-- day 1, published and pushed
delete from published.audience_members;
insert into published.audience_members (audience, customer_id, email, first_name, segment, as_of_date)
select a.audience, c.customer_id, c.email, c.first_name, s.s1, {d1}
from marts.dim_customers c join bench.segments s using (customer_id) join bench.audiences a on a.segment = s.s1
where c.accepts_marketing and c.is_valid_email and not c.is_suppressed and not c.is_holdout;
insert into mailer.audience_state (target, audience, email_hash, customer_id, email, first_name, segment, attrs_hash,
    is_member, first_added_day, last_pushed_day, last_run_id)
select 'outbox', audience, encode(sha256(convert_to(lower(btrim(email)), 'UTF8')), 'hex'), customer_id,
       lower(btrim(email)), nullif(btrim(first_name), ''), segment,
       md5(concat_ws(chr(31), customer_id, coalesce(nullif(btrim(first_name), ''), ''), segment)),
       true, {d1}, {d1}, 1
from published.audience_members;
select setval('mailer.sync_run_seq', 1);
insert into mailer.sync_runs (run_id, audience, day, adapter, target, dry_run, status, members_before, members_after,
    adds, updates, removes, excluded, sent, finished_at, duration_s)
select 1, audience, {d1}, 'outbox', 'outbox', false, 'succeeded', 0, count(*), count(*), 0, 0, 0, count(*), now(), 0
from mailer.audience_state group by audience;
insert into mailer.sync_changes (run_id, audience, action, email_hash, customer_id, segment, reason, result, sent_at)
select 1, audience, 'add', email_hash, customer_id, segment, null, 'sent', now() from mailer.audience_state;
insert into ops.publish_runs (as_of_date, audiences, members)
select {d1}, count(distinct audience), count(*) from published.audience_members;
-- day 2: unsubscribes and consent withdrawn (dbt drops them from the audiences), renames, new customers
update marts.dim_customers set is_suppressed = true, has_unsubscribed = true
where abs(hashtext('unsub:' || customer_id)) % 1000 < 5;
update marts.dim_customers set accepts_marketing = false where abs(hashtext('consent:' || customer_id)) % 1000 < 2;
update marts.dim_customers set first_name = first_name || ' Jr' where abs(hashtext('rename:' || customer_id)) % 1000 < 5;
insert into marts.dim_customers
select 'c' || lpad(g::text, 8, '0'), 'user' || g || '@example.com', 'Name' || (g % 1000), true, true, false, false,
       false, false, false
from generate_series({n} + 1, {n} + {n} / 1000) g;
insert into bench.segments
select customer_id, null, ({segments}::text[])[1 + abs(hashtext('s2:' || customer_id)) % 12]
from marts.dim_customers where customer_id > 'c' || lpad({n}::text, 8, '0');
delete from published.audience_members;
insert into published.audience_members (audience, customer_id, email, first_name, segment, as_of_date)
select a.audience, c.customer_id, c.email, c.first_name, s.s2, {d2}
from marts.dim_customers c join bench.segments s using (customer_id) join bench.audiences a on a.segment = s.s2
where c.accepts_marketing and c.is_valid_email and not c.is_suppressed and not c.is_holdout;
insert into ops.publish_runs (as_of_date, audiences, members)
select {d2}, count(distinct audience), count(*) from published.audience_members;
-- day 1's pushed state, to restore before each timed run
drop table if exists bench.state, bench.runs, bench.changes;
create table bench.state as select * from mailer.audience_state;
create table bench.runs as select * from mailer.sync_runs;
create table bench.changes as select * from mailer.sync_changes
"""

RESTORE = """
truncate mailer.audience_state, mailer.sync_runs, mailer.sync_changes, mailer.esp_suppressions;
insert into mailer.audience_state select * from bench.state;
insert into mailer.sync_runs select * from bench.runs;
insert into mailer.sync_changes select * from bench.changes;
select setval('mailer.sync_run_seq', 1)
"""


def _sql(conn: psycopg.Connection, script: str) -> None:
    for statement in filter(str.strip, script.split(";\n")):
        conn.execute(statement)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs (fastest kept), state restored before each")
    parser.add_argument("--dir", type=Path, default=None, help="the embedded warehouse's folder (default: a temp one)")
    args = parser.parse_args()

    import ecrm
    from ecrm.mailer.config import MailerConfig
    from ecrm.mailer.sync import sync_audiences
    from ecrm.warehouse.embedded import EmbeddedWarehouse
    from ecrm.warehouse.migrate import migrate

    print(f"ecrm from {Path(ecrm.__file__).parent}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="ecrm-bench-push-"))
    warehouse = EmbeddedWarehouse(args.dir or work / "warehouse")
    warehouse.start()
    try:
        with psycopg.connect(warehouse.url("postgres"), autocommit=True) as admin:
            admin.execute("drop database if exists bench_push with (force)")
        url = warehouse.create_database("bench_push")
        migrate(url)
        literals = {"n": args.customers, "d1": f"date '{D1}'", "d2": f"date '{D2}'",
                    "segments": "array[" + ", ".join("'" + s.replace("'", "''") + "'" for s in SEGMENTS) + "]",
                    "audiences": ", ".join(f"('{a}', '{s.replace(chr(39), chr(39) * 2)}')" for a, s in AUDIENCES)}
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            with conn.transaction():
                _sql(conn, SETUP.format(**literals))
            conn.execute("vacuum analyze")
            members = conn.execute("select count(*) from published.audience_members").fetchone()[0]
            print(f"generated {args.customers:,} customers, {members:,} published members on {D2} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)

            config = MailerConfig(adapter="outbox", outbox=work / "outbox", max_remove_share=0.2)
            best: dict[str, float] = {}
            report: dict = {}
            for attempt in range(args.repeat):
                with conn.transaction():
                    _sql(conn, RESTORE)
                conn.execute("vacuum analyze mailer.audience_state, mailer.sync_runs, mailer.sync_changes")
                shutil.rmtree(work / "outbox", ignore_errors=True)
                started = time.perf_counter()
                report = sync_audiences(conn, D2, config=config)
                ecrm_s = time.perf_counter() - started
                started = time.perf_counter()
                again = sync_audiences(conn, D2, config=config)
                rerun_s = time.perf_counter() - started
                assert all(s["adds"] == s["updates"] == s["removes"] == 0 for s in again["audiences"].values())
                limit_file = work / "limit.csv"
                started = time.perf_counter()
                with limit_file.open("wb") as f, conn.cursor().copy(
                        "copy (select * from published.audience_members) to stdout with (format csv, header)") as copy:
                    for chunk in copy:
                        f.write(chunk)
                limit_s = time.perf_counter() - started
                print(f"run {attempt + 1}: push {ecrm_s:.2f} s, rerun {rerun_s:.2f} s, COPY TO {limit_s:.2f} s",
                      flush=True)
                for key, value in (("push", ecrm_s), ("rerun", rerun_s), ("limit", limit_s)):
                    best[key] = min(best.get(key, value), value)

            totals = {k: sum(s[k] for s in report["audiences"].values())
                      for k in ("adds", "updates", "removes", "compliance_removes", "excluded", "members_after")}
            print(f"day 2's diff: {json.dumps(totals)}")
            manifest = json.loads((work / "outbox" / D2.isoformat() / "manifest.json").read_text())
            for audience, entry in sorted(manifest["audiences"].items()):
                data = (work / "outbox" / D2.isoformat() / entry["file"]).read_bytes()
                assert hashlib.sha256(data).hexdigest() == entry["sha256"], audience
            print(f"{'':<28}{'seconds':>9}{'ratio to COPY TO':>18}")
            for key, label in (("push", "ecrm push (outbox)"), ("rerun", "ecrm rerun (nothing to send)"),
                               ("limit", "COPY TO of the published rows")):
                print(f"{label:<28}{best[key]:>9.2f}{best[key] / best['limit']:>17.1f}x")
    finally:
        warehouse.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
