"""One whole ordinary day end to end, each stage timed beside its hand-written limit (issue 21).

The shop's history comes from bench_dbt.py (same generator, same kept databases with --keep): raw.*
filled with SQL for `--days` of history, built once and then day by day up to RUN_DAY - 1. The
benchmark then builds and publishes RUN_DAY (untimed: the day before), writes the landing files of
the next day (orders, order lines and new customers as the shop's CSV export, the web server's
access log, the ESP's JSON-lines events) and runs that day as production does, timing each stage:

    ingest (one per source) -> build (dbt) -> predict (CLV) -> gate (GX) -> publish -> push (outbox)

Beside each stage, in the same run, the hand-written limit: a raw COPY of the same files' lines
into scratch tables (ingest); one SQL statement each for sessionizing the day's page views, scoring
RFM for every customer and rebuilding the customer facts (build); one counting statement for the
gate's rules (gate); a plain INSERT ... SELECT of the audiences (publish); a COPY TO of the
published rows (push). It prints the build's costliest dbt nodes and the gate's costliest statements,
then a table (stage, ecrm s, limit s, ratio), the day's total as a ratio of the sum of the limits (the
issue's goal: <= 3x) and the stage furthest from its limit.

Daily volume per 1M customers (the issue's): 50k orders, 2M web log lines, 500k e-mail events;
`--orders-per-1k`, `--lines-per-customer`, `--events-per-customer` change it. The gate's volume
tolerance is widened for the run (the generated history has bench_dbt's lighter daily volume); every
other check runs as in production: the history's orders come from a buying process (bench_dbt.fill),
so the forecast's fits have something to fit.

    .venv/bin/python benchmarks/bench_day.py                                   # 1M customers, 365 days
    .venv/bin/python benchmarks/bench_day.py --customers 50000 --days 30       # minutes, not an hour
    .venv/bin/python benchmarks/bench_day.py --keep /data/bench                # reuse bench_dbt's databases
    .venv/bin/python benchmarks/bench_day.py --save day.json                   # + every build node's seconds
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_dbt import RUN_DAY, prepare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DAY = RUN_DAY + timedelta(days=1)  # the timed day
def write_day_files(url: str, landing: Path, day: date, customers: int, orders: int, lines: int,
                    events: int) -> dict[str, int]:
    """The day's landing files, written by PostgreSQL (COPY TO) from generate_series."""
    p = {"day": day, "n": customers, "orders": orders, "lines": lines, "events": events,
         "new": max(1, customers // 1000)}
    counts = {}
    with psycopg.connect(url, autocommit=True) as conn:
        campaign = conn.execute("select campaign_id from raw.email_campaigns order by sent_at desc limit 1").fetchone()
        p["campaign"] = campaign[0] if campaign else None

        def copy_to(path: Path, query: str) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as f, conn.cursor().copy(query, p) as copy:
                for chunk in copy:
                    f.write(chunk)

        shop = landing / "shop" / day.isoformat()
        copy_to(shop / "customers.csv", """copy (
            select 'c-' || lpad((%(n)s + i)::text, 7, '0') as customer_id, 'u' || (%(n)s + i) || '@example.com' as email,
                   'N' || i as first_name, 'DE' as country,
                   to_char(%(day)s::date + (i * 60) * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"') as signed_up_at,
                   to_char(%(day)s::date + (i * 60) * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"') as updated_at,
                   'true' as accepts_marketing
            from generate_series(1, %(new)s) as i) to stdout with (format csv, header)""")
        order_rows = """select 'n-' || k as order_id, 'c-' || lpad((((k::bigint * 104729) %% %(n)s) + 1)::text, 7, '0') as c,
                   %(day)s::date + (k::bigint * 86000 / %(orders)s) * interval '1 second' as at,
                   (((k * 17) %% 10000) * 2 / 100.0 + 10)::numeric(12, 2) as total from generate_series(0, %(orders)s - 1) as k"""
        ts = """'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'"""
        copy_to(shop / "orders.csv", f"""copy (
            select order_id, c as customer_id, replace(c, 'c-', 'u') || '@example.com' as email,
                   to_char(at, {ts}) as created_at, to_char(at, {ts}) as updated_at, 'paid' as status,
                   'EUR' as currency, total as total_amount, '0.00' as discount_amount, null as coupon_code
            from ({order_rows}) as o) to stdout with (format csv, header)""")
        copy_to(shop / "order_lines.csv", f"""copy (
            select order_id, l as line_number, 'p-' || (l * 13) as product_id, 'Product' as product_name,
                   'tea' as category, 1 as quantity, total / 2 as unit_price, '0.00' as discount_amount,
                   to_char(at, {ts}) as updated_at
            from ({order_rows}) as o, generate_series(1, 2) as l) to stdout with (format csv, header)""")
        # sessions of 6 requests (the last of the first `orders` sessions confirms an order), 2 s apart
        copy_to(landing / "weblogs" / day.isoformat() / "access.log", """copy (
            select '10.' || (c %% 250) || '.' || (c / 250 %% 250) || '.' || (c / 62500) || ' - - ['
                   || to_char(%(day)s::date + (s::bigint * 86000 / greatest(1, %(lines)s / 6)) * interval '1 second'
                              + p * interval '2 seconds', 'DD/Mon/YYYY:HH24:MI:SS') || ' +0000] "GET '
                   || case when p = 0 then '/static/app.css' when p = 5 and s < %(orders)s then '/checkout/complete?order=n-' || s
                           else '/product/p-' || ((s + p) %% 100) end
                   || ' HTTP/1.1" 200 1000 "-" "Mozilla/5.0 bench"'
            from generate_series(0, greatest(1, %(lines)s / 6) - 1) as s,
                 lateral (select ((s::bigint * 104729) %% %(n)s) + 1 as c) as visitor, generate_series(0, 5) as p
            order by s, p) to stdout""")
        copy_to(landing / "email" / day.isoformat() / "events.jsonl", """copy (
            select json_build_object('sg_event_id', 'bd-' || i, 'event', (array['delivered', 'open', 'click'])[1 + i %% 3],
                   'email', 'u' || c || '@example.com',
                   'timestamp', extract(epoch from %(day)s::date + (i::bigint * 86000 / %(events)s) * interval '1 second')::bigint,
                   'campaign_id', %(campaign)s, 'customer_id', 'c-' || lpad(c::text, 7, '0'),
                   'sg_message_id', 'm-' || i, 'sg_machine_open', false)::text
            from generate_series(0, %(events)s - 1) as i,
                 lateral (select ((i::bigint * 32452843) %% %(n)s) + 1 as c) as who) to stdout""")
    for name, path in {"orders": shop / "orders.csv", "order_lines": shop / "order_lines.csv",
                       "customers": shop / "customers.csv",
                       "web_lines": landing / "weblogs" / day.isoformat() / "access.log",
                       "email_events": landing / "email" / day.isoformat() / "events.jsonl"}.items():
        with path.open("rb") as f:
            counts[name] = sum(1 for _ in f) - (1 if path.suffix == ".csv" else 0)
    return counts


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


def run_ecrm_day(url: str, day: date) -> dict[str, float]:
    from ecrm import pipeline
    from ecrm.intervals import day_interval
    from ecrm.quality.gate import QualityGateFailed

    start, end = day_interval(day)
    seconds = {}
    for source in pipeline.SOURCES:
        seconds[f"ingest {source}"], _ = _timed(pipeline.ingest_interval, source, start, end, url=url)
    seconds["build"], result = _timed(pipeline.build_marts, start, end, url=url)
    # the build runs the forecast between its two dbt invocations: its own seconds are the predict stage
    seconds["predict"] = result["seconds"].get("predict", 0.0)
    seconds["build"] -= seconds["predict"]
    print_build_top()
    try:
        total, detail = _timed(pipeline.publish_segments, start, end, url=url)
        for part in ("gate", "publish", "push"):
            seconds[part] = detail["seconds"].get(part, 0.0)
    except QualityGateFailed as exc:  # still a measurement of the gate; nothing was published
        print(f"gate blocked the day (publish and push not timed): {str(exc)[:400]}", flush=True)
        with psycopg.connect(url) as conn:
            seconds["gate"] = float(conn.execute(
                "select extract(epoch from max(checked_at) - min(started_at)) from ops.quality_results, "
                "(select started_at from ops.build_runs where action = 'gate' order by build_id desc limit 1) b "
                "where run_date = %s", (day,)).fetchone()[0] or 0)
    print_gate_top()
    return seconds


def print_build_top(n: int = 8) -> None:
    """The build's costliest dbt nodes of the run just timed (issue 30 item 6), with their seconds
    (ecrm.transform.last_node_seconds, both invocations)."""
    from ecrm import transform

    nodes = transform.last_node_seconds
    kinds: dict[str, list[float]] = {}
    for node, t in nodes.items():
        kinds.setdefault(node.split(".")[0], []).append(t)
    per_kind = ", ".join(f"{kind} {len(ts)} / {sum(ts):.2f} s" for kind, ts in sorted(kinds.items()))
    walls = " + ".join(f"{step['seconds']:.2f}" for step in transform.last_build if step["command"] == "build")
    print(f"build: dbt invocations {walls} s wall; {len(nodes)} nodes, {sum(nodes.values()):.2f} s of node time "
          f"({per_kind}); top {n}:")
    for node, t in sorted(nodes.items(), key=lambda x: -x[1])[:n]:
        print(f"  {t:7.2f} s  {node}")


def print_gate_top(n: int = 8) -> None:
    """The gate's costliest statements of the run just timed (issue 30 item 6): a suite's folded scan or
    one check's own query, with its seconds (ecrm.quality.fold.last_timings)."""
    from ecrm.quality import fold

    if not fold.last_timings:
        return
    total = sum(t for _, _, t in fold.last_timings)
    print(f"gate: {len(fold.last_timings)} statements, {total:.2f} s in SQL; top {n}:")
    for suite, what, t in sorted(fold.last_timings, key=lambda x: -x[2])[:n]:
        print(f"  {t:7.2f} s  {suite}.{what}")


def run_limits(url: str, landing: Path, day: date, outbox: Path) -> dict[str, float]:
    """The hand-written limit of each stage, against the same database and files."""
    d = {"start": day, "end": day + timedelta(days=1)}
    seconds: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        def sql(query: str) -> float:
            return _timed(conn.execute, query, d)[0]

        def copy_file(table: str, columns: str, path: Path, options: str) -> float:
            conn.execute(f"drop table if exists {table}")
            conn.execute(f"create unlogged table {table} ({columns})")
            started = time.perf_counter()
            with path.open("rb") as f, conn.cursor().copy(f"copy {table} from stdin {options}") as copy:
                while data := f.read(1 << 20):
                    copy.write(data)
            return time.perf_counter() - started

        shop = landing / "shop" / day.isoformat()
        text = lambda n: ", ".join(f"c{i} text" for i in range(n))  # noqa: E731
        seconds["ingest shop"] = (copy_file("bench_lim_customers", text(7), shop / "customers.csv", "with (format csv, header)")
                                  + copy_file("bench_lim_orders", text(10), shop / "orders.csv", "with (format csv, header)")
                                  + copy_file("bench_lim_lines", text(9), shop / "order_lines.csv", "with (format csv, header)"))
        seconds["ingest weblogs"] = copy_file("bench_lim_web", "line text", landing / "weblogs" / day.isoformat() / "access.log",
                                              "with (format text, delimiter e'\\x01')")
        seconds["ingest email"] = copy_file("bench_lim_events", "doc text", landing / "email" / day.isoformat() / "events.jsonl",
                                            "with (format text, delimiter e'\\x01')")
        conn.execute("drop table if exists bench_lim_sessions, bench_lim_rfm, bench_lim_facts, bench_lim_published")
        seconds["build"] = sql("""
            create unlogged table bench_lim_sessions as
            select remote_addr, user_agent, session_no, min(requested_at) as started_at, max(requested_at) as ended_at,
                   count(*) as page_views
            from (select *, sum(new) over (partition by remote_addr, user_agent order by requested_at) as session_no
                  from (select remote_addr, user_agent, requested_at,
                               (coalesce(requested_at - lag(requested_at) over w > interval '30 minutes', true))::int as new
                        from raw.web_requests
                        where requested_at >= %(start)s::date::timestamp at time zone 'UTC'
                          and requested_at < %(end)s::date::timestamp at time zone 'UTC' and not is_static and not is_bot
                        window w as (partition by remote_addr, user_agent order by requested_at)) as marked) as numbered
            group by 1, 2, 3""") + sql("""
            create unlogged table bench_lim_rfm as
            select customer_id, ntile(5) over (order by max(created_at)) as r, ntile(5) over (order by count(*)) as f,
                   ntile(5) over (order by sum(total_amount)) as m
            from raw.orders
            where created_at >= (%(end)s::date - 365)::timestamp at time zone 'UTC'
              and created_at < %(end)s::date::timestamp at time zone 'UTC' and status not in ('cancelled', 'refunded')
            group by customer_id""") + sql("""
            create unlogged table bench_lim_facts as
            select c.customer_id, c.email, c.accepts_marketing, count(o.order_id) as orders,
                   coalesce(sum(o.total_amount), 0) as revenue, min(o.created_at) as first_order_at,
                   max(o.created_at) as last_order_at
            from raw.customers as c left join raw.orders as o
              on o.customer_id = c.customer_id and o.created_at < %(end)s::date::timestamp at time zone 'UTC'
            group by c.customer_id, c.email, c.accepts_marketing""")
        # predict: the limit is reading the customers' purchase summary (x, t_x, T, mean value) in one
        # statement; the fit and the scoring themselves have no SQL equivalent, so they count as overhead.
        seconds["predict"] = sql("""
            select count(*), sum(x), sum(t_x) from (
                select customer_id, count(distinct (created_at at time zone 'UTC')::date) - 1 as x,
                       max((created_at at time zone 'UTC')::date) - min((created_at at time zone 'UTC')::date) as t_x
                from raw.orders
                where created_at < %(end)s::date::timestamp at time zone 'UTC' and status not in ('cancelled', 'refunded')
                group by customer_id) as summary""")
        seconds["gate"] = sql("""
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
                      and occurred_at < %(end)s::date::timestamp at time zone 'UTC')""")
        seconds["publish"] = sql("create unlogged table bench_lim_published as select * from sync.sync_audience_members "
                                 "with no data") + sql("insert into bench_lim_published select * from sync.sync_audience_members")
        outbox.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with (outbox / "limit.csv").open("wb") as f, conn.cursor().copy(
                "copy (select * from bench_lim_published) to stdout with (format csv, header)") as copy:
            for chunk in copy:
                f.write(chunk)
        seconds["push"] = time.perf_counter() - started
        conn.execute("drop table if exists bench_lim_customers, bench_lim_orders, bench_lim_lines, bench_lim_web, "
                     "bench_lim_events, bench_lim_sessions, bench_lim_rfm, bench_lim_facts, bench_lim_published")
    return seconds


def report(ecrm: dict[str, float], limit: dict[str, float]) -> None:
    print(f"{'stage':<16}{'ecrm s':>10}{'limit s':>10}{'ratio':>9}")
    ratios = {}
    for stage in limit:
        ratio = ecrm.get(stage, 0.0) / limit[stage] if limit[stage] > 0 else float("inf")
        ratios[stage] = ratio
        print(f"{stage:<16}{ecrm.get(stage, 0.0):>10.2f}{limit[stage]:>10.2f}{ratio:>8.1f}x")
    total, total_limit = sum(ecrm.values()), sum(limit.values())
    print(f"{'day':<16}{total:>10.2f}{total_limit:>10.2f}{total / total_limit:>8.1f}x   (goal <= 3x)")
    worst = max(ratios, key=ratios.get)
    print(f"furthest from its limit: {worst} ({ratios[worst]:.1f}x); "
          f"most seconds over its limit: {max(limit, key=lambda s: ecrm.get(s, 0.0) - limit[s])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365, help="days of history before the timed day")
    parser.add_argument("--orders-per-1k", type=float, default=50.0, help="orders a day per 1,000 customers")
    parser.add_argument("--lines-per-customer", type=float, default=2.0, help="web log lines a day per customer")
    parser.add_argument("--events-per-customer", type=float, default=0.5, help="e-mail events a day per customer")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="bench_dbt.py's kept warehouse (reused; the "
                        "timed day is loaded into it, so a second run needs a fresh copy)")
    parser.add_argument("--save", type=Path, metavar="FILE", help="write the stages' seconds, the limits and every "
                        "build node's seconds as JSON (to compare two runs node by node)")
    args = parser.parse_args()

    from ecrm.warehouse.embedded import EmbeddedWarehouse

    work = Path(tempfile.mkdtemp(prefix="ecrm-bench-day-"))
    gx_dir = work / "expectations"  # GX results and Data Docs stay out of the repository
    shutil.copytree(ROOT / "expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    os.environ.update({"ECRM_DATA_DIR": str(work), "ECRM_LANDING": str(work / "landing"),
                       "ECRM_OUTBOX": str(work / "outbox"), "ECRM_GX_PROJECT_DIR": str(gx_dir),
                       "ECRM_GATE_VOLUME_TOLERANCE": "1000", "ECRM_GATE_SEGMENTS_VOLUME_TOLERANCE": "1000"})
    warehouse = EmbeddedWarehouse(args.keep or work / "warehouse")
    warehouse.start()
    try:
        elapsed, db = _timed(prepare, warehouse, args.customers, args.days)
        url = db["url"]
        with psycopg.connect(url, autocommit=True) as conn:  # the generator numbered its loads 0..days
            conn.execute("select setval(pg_get_serial_sequence('ops.load_ledger', 'load_id'), greatest(%s, "
                         "(select coalesce(max(load_id), 0) from ops.load_ledger)))", (args.days + 10_000,))
        print(f"history: {args.customers:,} customers, {args.days} days, raw rows {db['rows']} ({elapsed:.0f} s)",
              flush=True)
        from ecrm import pipeline
        from ecrm.intervals import day_interval

        elapsed, _ = _timed(pipeline.build_marts, *day_interval(RUN_DAY), url=url)  # the day before, untimed
        try:
            pipeline.publish_segments(*day_interval(RUN_DAY), url=url)
        except Exception as exc:  # noqa: BLE001 - the day before only gives the timed day a predecessor
            print(f"(the day before was not published: {str(exc)[:300]})", flush=True)
        print(f"the day before built ({elapsed:.0f} s)", flush=True)
        files = write_day_files(url, work / "landing", DAY, args.customers,
                                orders=int(args.customers * args.orders_per_1k / 1000),
                                lines=int(args.customers * args.lines_per_customer),
                                events=int(args.customers * args.events_per_customer))
        print(f"the day {DAY}: {files}", flush=True)
        ecrm = run_ecrm_day(url, DAY)
        limits = run_limits(url, work / "landing", DAY, work / "outbox-limit")
        report(ecrm, limits)
        if args.save:
            from ecrm import transform

            args.save.write_text(json.dumps({"customers": args.customers, "days": args.days, "ecrm": ecrm,
                                             "limits": limits, "build_nodes": transform.last_node_seconds}, indent=1))
    finally:
        warehouse.stop() if args.keep else warehouse.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
