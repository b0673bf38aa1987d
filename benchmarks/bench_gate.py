"""The publish gate on a 1M-customer day, against one hand-written counting query as the floor.

    .venv/bin/python benchmarks/bench_gate.py [--customers 1000000] [--keep] [--profile]
    ECRM_GATE_ENGINE=gx .venv/bin/python benchmarks/bench_gate.py     # GX's own run, check by check

Builds, with generate_series in the embedded warehouse (/tmp/bench-gate), marts as dbt would
leave them for a run date: 1M customers in marts.dim_customers, two daily RFM snapshots of 1M rows
(the day and the day before, for the volume and share-shift checks), the day's segment summary,
the audiences (~50% of customers), the day's forecast and fits, the flows, the intermediate tables
behind the audiences, and a small week of raw orders, lines, web requests and e-mail events, so a
clean day passes all eleven suites. Then times (1) the whole gate as the pipeline runs it
(gate.enforce: the checkpoint, recording; folded unless ECRM_GATE_ENGINE=gx) with its slowest
statements, (2) each suite alone through GX (--profile: every SQL statement GX sends, and how much
of a suite's time is GX's own), (3) the two big suites' checks written by hand as one counting query
each, and (4) bench_day.py's counting query of the gate's rules, the limit issue 30 measures the gate
against. GX's import is timed apart: it is paid once per process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg

DAY = date(2026, 10, 8)
SEGMENTS = ["Champions", "Loyal", "Potential Loyalist", "New", "Promising", "Need Attention", "About to Sleep",
            "At Risk", "Can't Lose Them", "Hibernating", "Lost", "Prospect"]
AUDIENCES = [("winback", "At Risk"), ("winback", "Can't Lose Them"), ("winback", "About to Sleep"),
             ("vip", "Champions"), ("vip", "Loyal"), ("nurture", "New"), ("nurture", "Promising"),
             ("nurture", "Potential Loyalist")]
HOLDOUT = "(('x' || substr(md5('holdout:' || {c}), 1, 8))::bit(32)::bigint % 100) < 10"

SETUP = """
create schema if not exists marts; create schema if not exists sync; create schema if not exists seeds;
drop table if exists seeds.audiences, marts.dim_customers, marts.fct_customer_rfm_daily,
    marts.fct_segment_summary_daily, sync.sync_audience_members, sync.sync_holdout_members;
create table seeds.audiences (audience text, segment text);
insert into seeds.audiences values {audiences};
create table marts.dim_customers as
select 'c' || lpad(g::text, 8, '0') as customer_id, 'user' || g || '@example.com' as email,
       'Name' || (g % 1000) as first_name, 'DE' as country,
       timestamptz '2024-01-01' + (g % 600) * interval '1 day' as signed_up_at,
       g % 10 <> 0 as accepts_marketing, true as is_valid_email,
       (g % 7)::bigint as order_count, ((g % 7) * 31.5)::numeric(14, 2) as net_revenue,
       g % 97 = 0 as is_suppressed, {holdout} as is_holdout,
       case when g % 7 = 0 then 'prospect' when g % 7 < 3 then 'new' else 'active' end as lifecycle_stage,
       {day}::date as as_of_date, (g % 100) / 100.0::float8 as p_alive, ((g % 7) * 12.5)::numeric(14, 2) as clv_12m,
       (array['low', 'medium', 'high'])[1 + g % 3] as churn_risk
from generate_series(1, {n}) g;
alter table marts.dim_customers add column is_contactable boolean;
update marts.dim_customers set is_contactable = accepts_marketing and is_valid_email and not is_suppressed;
alter table marts.dim_customers add primary key (customer_id);
create table marts.fct_customer_rfm_daily as
select d::date as snapshot_date, c.customer_id, (c.order_count * 13)::integer as recency_days,
       c.order_count as frequency, c.net_revenue as monetary,
       1 + (h % 5)::integer as r_score, 1 + ((h / 5) % 5)::integer as f_score, 1 + ((h / 25) % 5)::integer as m_score,
       (1 + (h % 5))::text || (1 + (h / 5) % 5)::text || (1 + (h / 25) % 5)::text as rfm_cell, ({segments}::text[])[1 + (h % 12)::integer] as segment,
       c.is_holdout, c.is_contactable
from marts.dim_customers c
cross join lateral (select abs(hashtext(c.customer_id)) as h) x
cross join generate_series({day}::date - 1, {day}::date, interval '1 day') d;
alter table marts.fct_customer_rfm_daily add primary key (snapshot_date, customer_id);
create table marts.fct_segment_summary_daily as
select snapshot_date, segment, count(*) as customers, count(*) filter (where is_contactable) as contactable_customers,
       count(*) filter (where is_holdout) as holdout_customers, sum(monetary)::numeric(14, 2) as revenue,
       sum(count(*)) over w as total_customers, sum(sum(monetary)) over w as total_revenue,
       round(count(*)::numeric / sum(count(*)) over w, 6) as customer_share,
       round(sum(monetary) / nullif(sum(sum(monetary)) over w, 0), 6) as revenue_share
from marts.fct_customer_rfm_daily group by snapshot_date, segment window w as (partition by snapshot_date);
create table sync.sync_audience_members as
select a.audience, r.customer_id, c.email, c.first_name, r.segment, r.snapshot_date
from marts.fct_customer_rfm_daily r join seeds.audiences a using (segment)
join marts.dim_customers c using (customer_id)
where r.snapshot_date = {day} and r.is_contactable and not r.is_holdout;
alter table sync.sync_audience_members add primary key (audience, customer_id);
create table sync.sync_holdout_members as
select a.audience, r.customer_id, r.segment, r.snapshot_date
from marts.fct_customer_rfm_daily r join seeds.audiences a using (segment)
where r.snapshot_date = {day} and r.is_contactable and r.is_holdout;
alter table sync.sync_holdout_members add primary key (audience, customer_id);
"""

# What the suites added after the first version of this benchmark read (the forecast, the flows, the
# intermediate tables behind the audiences), so that a clean generated day passes the whole gate.
FORECAST_AND_FLOWS = """
create schema if not exists intermediate;
drop table if exists marts.fct_customer_predictions_daily, marts.fct_clv_model_fits, marts.fct_flow_entrants, seeds.flows;
create table marts.fct_customer_predictions_daily as
select {day}::date as snapshot_date, customer_id, {day}::date - 1 as fit_date, p_alive,
       order_count * 0.1 as expected_orders_30d, order_count * 0.3 as expected_orders_90d,
       order_count * 1.2 as expected_orders_365d, 31.5::float8 as expected_order_value, clv_12m, churn_risk,
       greatest(order_count - 1, 0) as repeat_purchases
from marts.dim_customers;
alter table marts.fct_customer_predictions_daily add primary key (snapshot_date, customer_id);
create table marts.fct_clv_model_fits (fit_date date, model text, converged boolean, parameters jsonb);
insert into marts.fct_clv_model_fits values
    ({day}::date - 1, 'bgnbd', true, '{{"r": 0.6, "alpha": 80, "a": 0.7, "b": 3.0}}'),
    ({day}::date - 1, 'gamma_gamma', true, '{{"p": 6.2, "q": 3.7, "gamma": 15.4}}');
create table seeds.flows (flow text, audience text, window_days integer, holdout_pct integer);
insert into seeds.flows values ('winback', 'flow_winback', 21, 20), ('welcome', 'flow_welcome', 14, 20);
create table marts.fct_flow_entrants (customer_id text, flow text, entry_date date, is_flow_holdout boolean,
    flow_holdout_pct integer);
create index on marts.fct_flow_entrants (customer_id, flow);
drop table if exists intermediate.int_orders_as_of, intermediate.int_web_page_views,
    intermediate.int_web_visitors_identified, intermediate.int_customer_web_activity,
    intermediate.int_customer_email_flags, intermediate.int_customer_email_engagement,
    intermediate.int_customer_orders_summarized, intermediate.int_customer_order_windows;
create table intermediate.int_orders_as_of as
select customer_id || '-' || k as order_id, customer_id, true as is_valid_order
from marts.dim_customers, generate_series(1, 2) k where order_count > 0;
create unique index on intermediate.int_orders_as_of (order_id);
create table intermediate.int_web_page_views as
select 'pv' || d || '-' || g as page_view_id, {day}::date - d as view_date
from generate_series(0, 30) d, generate_series(1, {n} / 10) g;
create index on intermediate.int_web_page_views (view_date);
create table intermediate.int_web_visitors_identified as
select 'v' || g as visitor_id from generate_series(1, {n} / 2) g;
create unique index on intermediate.int_web_visitors_identified (visitor_id);
create table intermediate.int_customer_web_activity as select customer_id from marts.dim_customers where order_count > 2;
create unique index on intermediate.int_customer_web_activity (customer_id);
create table intermediate.int_customer_email_flags as select customer_id from marts.dim_customers;
create unique index on intermediate.int_customer_email_flags (customer_id);
create table intermediate.int_customer_email_engagement as select customer_id from marts.dim_customers;
create unique index on intermediate.int_customer_email_engagement (customer_id);
create table intermediate.int_customer_orders_summarized as
select customer_id from marts.dim_customers where order_count > 0;
create unique index on intermediate.int_customer_orders_summarized (customer_id);
create table intermediate.int_customer_order_windows as select customer_id from marts.dim_customers where order_count > 0;
create unique index on intermediate.int_customer_order_windows (customer_id);
"""

RAW = """
truncate raw.orders, raw.order_lines, raw.customers, raw.web_requests, raw.email_events;
insert into raw.customers select customer_id, email, first_name, country, signed_up_at, signed_up_at, accepts_marketing,
    'bench', 1, 0 from marts.dim_customers where customer_id <= 'c00005000';
insert into raw.orders select 'o' || d || '-' || g, 'c' || lpad((g * 7 % 5000 + 1)::text, 8, '0'), 'x@example.com',
    ts, ts, 'paid', 'EUR', 50, 0, null, 'bench', g, 0
from generate_series(0, 7) d, generate_series(1, 200) g,
    lateral (select ({day}::date - d)::timestamp at time zone 'UTC' + g * interval '7 minutes' as ts) t;
insert into raw.order_lines select order_id, 1, 'p1', 'Product', 'misc', 1, 50, 0, updated_at, 'bench', 1, 0
from raw.orders;
insert into raw.web_requests (requested_at, remote_addr, path, status, is_bot, is_static, _file, _line, _load_id,
    method, bytes_sent)
select ({day}::date - d)::timestamp at time zone 'UTC' + g * interval '8 seconds', '10.0.0.1', '/', 200, false,
    false, 'bench-' || d, g, 0, 'GET', 100
from generate_series(0, 7) d, generate_series(1, 10000) g;
insert into raw.email_events (event_id, event, email, occurred_at, customer_id, _file, _line, _load_id)
select 'e' || d || '-' || g, 'delivered', 'user' || g || '@example.com',
    ({day}::date - d)::timestamp at time zone 'UTC' + g * interval '1 second', null, 'bench', g, 0
from generate_series(0, 7) d, generate_series(1, 5000) g;
create table if not exists ops.stage_runs (stage text, run_date date, run_id text, detail jsonb,
    finished_at timestamptz default now(), primary key (stage, run_date));
insert into ops.stage_runs (stage, run_date) select s, {day} from unnest(array['ingest_shop', 'ingest_weblogs',
    'ingest_email', 'build_marts']) s on conflict do nothing;
analyze;
"""

SEGMENTS_FLOOR = """
with day as (select * from marts.fct_customer_rfm_daily where snapshot_date = {day}),
counts as (
    select count(*) as n,
        count(*) filter (where customer_id is null) as null_customer,
        count(*) filter (where segment is null) as null_segment,
        count(*) filter (where segment <> all({segments}::text[])) as bad_segment,
        count(*) filter (where r_score not between 1 and 5 or f_score not between 1 and 5
                         or m_score not between 1 and 5) as bad_score,
        count(*) filter (where recency_days < 0 or frequency < 0 or monetary < 0) as bad_range,
        count(*) - count(distinct customer_id) as duplicates
    from day),
unknown as (select count(*) as n from day left join marts.dim_customers c using (customer_id)
            where c.customer_id is null),
missing as (select count(*) as n from marts.dim_customers c left join day using (customer_id)
            where day.customer_id is null),
shares as (select segment, count(*)::numeric / sum(count(*)) over () as share from day group by segment),
volume as (select count(*) as n from marts.fct_customer_rfm_daily where snapshot_date >= {day}::date - 7
           and snapshot_date < {day} group by snapshot_date)
select counts.*, unknown.n as unknown, missing.n as missing,
    (select max(share) from shares) as max_share, (select avg(n) from volume) as trailing_avg
from counts, unknown, missing
"""

AUDIENCE_FLOOR = """
with m as (select * from sync.sync_audience_members),
counts as (
    select count(*) as n, count(*) filter (where email is null) as null_email,
        count(*) filter (where email !~ '^[a-z0-9._%+''-]+@[a-z0-9-]+(\\.[a-z0-9-]+)*\\.[a-z]{{2,}}$') as bad_email,
        count(*) filter (where customer_id is null) as null_customer,
        count(*) filter (where audience <> all(array['winback', 'vip', 'nurture'])) as bad_audience,
        count(*) filter (where segment <> all({segments}::text[])) as bad_segment,
        count(*) filter (where snapshot_date is distinct from {day}) as stale,
        count(*) - count(distinct (audience, customer_id)) as dup_member,
        count(*) - count(distinct (audience, email)) as dup_email
    from m),
flags as (
    select count(*) filter (where c.customer_id is null) as unknown,
        count(*) filter (where c.is_suppressed) as suppressed,
        count(*) filter (where c.is_holdout or {holdout_m}) as holdout,
        count(*) filter (where not (c.accepts_marketing and c.is_valid_email)) as not_contactable,
        count(*) filter (where a.audience is null or r.segment is distinct from m.segment) as wrong_segment
    from m left join marts.dim_customers c using (customer_id)
    left join seeds.audiences a on a.audience = m.audience and a.segment = m.segment
    left join marts.fct_customer_rfm_daily r on r.snapshot_date = {day} and r.customer_id = m.customer_id),
events as (select count(*) as n from m join raw.email_events e on (e.customer_id = m.customer_id
           or lower(trim(e.email)) = m.email) and e.occurred_at < ({day}::date + 1)::timestamp at time zone 'UTC'
           and (e.event in ('unsubscribe', 'spamreport') or (e.event = 'bounce' and e.bounce_type = 'hard'))),
held as (select count(*) as n from m join sync.sync_holdout_members h using (customer_id))
select counts.*, flags.*, events.n as suppressed_events, held.n as held from counts, flags, events, held
"""

# bench_day.py's limit of the gate stage (the 1.19 s at 1M customers): the gate's main rules as
# one counting statement. The ratio gate.enforce / this is the figure issue 30 item 2 tracks.
GATE_LIMIT = """
select (select count(*) filter (where customer_id is null) + count(*) - count(distinct customer_id)
        from marts.dim_customers),
       (select count(*) filter (where r_score not between 1 and 5 or f_score not between 1 and 5
                                or segment is null) from marts.fct_customer_rfm_daily
        where snapshot_date = %(start)s),
       (select count(*) from sync.sync_audience_members as a join marts.dim_customers as c using (customer_id)
        where not c.is_contactable or c.is_holdout),
       (select count(*) from raw.orders where created_at >= %(start)s::date::timestamp at time zone 'UTC'
          and created_at < %(end)s::date::timestamp at time zone 'UTC'),
       (select count(*) from raw.web_requests where requested_at >= %(start)s::date::timestamp at time zone 'UTC'
          and requested_at < %(end)s::date::timestamp at time zone 'UTC'),
       (select count(*) from raw.email_events where occurred_at >= %(start)s::date::timestamp at time zone 'UTC'
          and occurred_at < %(end)s::date::timestamp at time zone 'UTC')
"""


def timed(label: str, fn, results: dict) -> object:
    t0 = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - t0
    print(f"{label:<58} {results[label]:7.2f} s", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--dir", default="/tmp/bench-gate")
    parser.add_argument("--keep", action="store_true", help="keep the server running afterwards")
    parser.add_argument("--profile", action="store_true",
                        help="time every SQL statement of the per-suite runs (statements, SQL s, GX's own s)")
    args = parser.parse_args()

    from ecrm.warehouse.embedded import EmbeddedWarehouse
    from ecrm.warehouse.migrate import migrate

    wh = EmbeddedWarehouse(Path(args.dir))
    wh.start()
    with psycopg.connect(wh.url("postgres"), autocommit=True) as admin:
        admin.execute("drop database if exists bench_gate with (force)")
    url = wh.create_database("bench_gate")
    results: dict[str, float] = {}
    literals = {"day": f"date '{DAY}'", "n": args.customers,
                "segments": "array[" + ", ".join("'" + x.replace("'", "''") + "'" for x in SEGMENTS) + "]",
                "holdout": HOLDOUT.format(c="'c' || lpad(g::text, 8, '0')"),
                "audiences": ", ".join(f"('{a}', '{g.replace(chr(39), chr(39) * 2)}')" for a, g in AUDIENCES),
                "holdout_m": HOLDOUT.format(c="m.customer_id")}
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        def generate() -> None:
            with conn.transaction():
                for statement in filter(str.strip, SETUP.format(**literals).split(";\n")):
                    conn.execute(statement)
                for statement in filter(str.strip, FORECAST_AND_FLOWS.format(**literals).split(";\n")):
                    conn.execute(statement)
                for statement in filter(str.strip, RAW.format(**literals).split(";\n")):
                    conn.execute(statement)

        timed(f"generate {args.customers:,} customers (generate_series)", generate, results)
        sizes = conn.execute("select (select count(*) from marts.fct_customer_rfm_daily where snapshot_date = %(day)s), "
                             "(select count(*) from sync.sync_audience_members)", {"day": DAY}).fetchone()
        print(f"segment rows of the day: {sizes[0]:,}; audience members: {sizes[1]:,}")

    # A throwaway copy of the GX context: the benchmark's results stay out of the repository.
    root = Path(__file__).resolve().parents[1]
    gx_dir = Path(tempfile.mkdtemp(prefix="bench-gate-gx-"))
    shutil.copytree(root / "expectations", gx_dir / "expectations", ignore=shutil.ignore_patterns("uncommitted"))
    os.environ["ECRM_GX_PROJECT_DIR"] = str(gx_dir / "expectations")

    def import_gx() -> None:
        from ecrm.quality.gate import gx_context

        gx_context()

    timed("import GX + load the file context (once per process)", import_gx, results)
    from ecrm.quality import gate
    from ecrm.quality.config import load_config

    with psycopg.connect(url, autocommit=True) as conn:
        def enforce() -> list:
            try:
                return gate.enforce(conn, url, DAY)
            except gate.QualityGateFailed as exc:
                print("  gate blocked (unexpected):", str(exc)[:400])
                return exc.failed

        rows = timed("gate.enforce: 11 suites, record (1st run)", enforce, results)
        timed("gate.enforce again (warm caches)", enforce, results)
        from ecrm.quality import fold

        if fold.last_timings:
            in_sql = sum(t for _, _, t in fold.last_timings)
            print(f"  folded: {len(fold.last_timings)} statements, {in_sql:.2f} s in SQL; slowest:")
            for suite, what, t in sorted(fold.last_timings, key=lambda x: -x[2])[:12]:
                print(f"    {t:6.2f} s  {suite}.{what}")
        print(f"  {len(rows)} expectations; failed: "
              f"{[f'{r.suite}.{r.expectation}' for r in rows if not r.passed] if isinstance(rows, list) else rows}")

        context = gate.gx_context()
        gate.set_warehouse_url(context, gate.gate_url(url, DAY, load_config()))
        statements: list[tuple[str, str, float]] = []
        if args.profile:
            watch_statements(statements)
        for vd in context.checkpoints.get(gate.CHECKPOINT).validation_definitions:
            before = len(statements)
            label = f"  suite {vd.name} ({len(vd.suite.expectations)} expectations)"
            timed(label, partial_run(vd), results)
            if args.profile:
                mine = statements[before:]
                statements[before:] = [(vd.name, text, t) for _, text, t in mine]
                in_sql = sum(t for _, _, t in mine)
                print(f"      {len(mine)} statements, {in_sql:.2f} s in SQL, {results[label] - in_sql:.2f} s in GX")
        if args.profile:
            print("slowest statements (suite, s, statement):")
            for suite, text, t in sorted(statements, key=lambda x: -x[2])[:25]:
                print(f"  {suite:<18} {t:6.2f}  {' '.join(text.split())[:160]}")
        timed("hand-written floor: customer_segments checks, one query",
              lambda: conn.execute(SEGMENTS_FLOOR.format(**literals)).fetchall(), results)
        timed("hand-written floor: audience_members checks, one query",
              lambda: conn.execute(AUDIENCE_FLOOR.format(**literals)).fetchall(), results)
        timed("limit: bench_day's counting query of the gate's rules",
                      lambda: conn.execute(GATE_LIMIT, {"start": DAY, "end": DAY + timedelta(days=1)}).fetchall(),
                      results)
        limit = results["limit: bench_day's counting query of the gate's rules"]
    whole = results["gate.enforce again (warm caches)"]
    print(f"gate.enforce (warm) {whole:.2f} s / counting query {limit:.2f} s = {whole / limit:.1f}x")
    for suite in ("customer_segments", "audience_members"):
        gx = next((v for k, v in results.items() if k.startswith(f"  suite {suite} ")), 0)
        floor = results[f"hand-written floor: {suite} checks, one query"]
        print(f"{suite}: GX {gx:.1f} s / hand-written {floor:.1f} s = {gx / floor:.1f}x")
    shutil.rmtree(gx_dir, ignore_errors=True)
    if not args.keep:
        wh.stop()


def watch_statements(out: list) -> None:
    """Append (None, statement, seconds) for every statement any SQLAlchemy engine runs from now on."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    @event.listens_for(Engine, "after_cursor_execute")
    def _end(conn, cursor, statement, parameters, context, executemany):
        out.append((None, statement, time.perf_counter() - conn.info["bench_started"].pop()))


def partial_run(vd):
    return lambda: vd.run(result_format="SUMMARY")


if __name__ == "__main__":
    main()
