"""Daily incremental dbt run vs history length: does the daily build grow with history?

For each shop size (customers) it fills raw.* directly with SQL (generate_series) at the SAME daily
volume with 30 and with 365 days of history (the web log a day per statement, in the order the days
arrive, as the DAG appends it), builds everything once from scratch as of five days before (the
initial, full build), runs the four daily runs up to the day before, then times the daily run of the
last day: `dbt run` (models) and `dbt build` (models + data tests + unit tests, what the pipeline
runs). Prints seconds and the 365/30 ratio. The issue's target: ratio <= 1.5. On a shared machine
single timings are noisy: the daily run and build are repeated (`--repeat`, default 3; a rerun of
the day does the same work, every incremental model replaces its day), alternating between the two
histories so that shifts in background load hit both, and the fastest of them is reported, as wall
time and as the summed execution time of the dbt nodes (the database work, without dbt's start-up
and parsing). It then lists the nodes of the daily build whose execution time grows most from the
short to the long history (`--nodes N`, default 8; what dbt writes to target/run_results.json per
node), which is where to look when the ratio is over budget.

    .venv/bin/python benchmarks/bench_dbt.py                       # 10k and 100k customers
    .venv/bin/python benchmarks/bench_dbt.py --customers 1000000   # 1M (tens of minutes on 2 cores)
    .venv/bin/python benchmarks/bench_dbt.py --customers 1000000 --keep /data/bench   # reuse it later,
        # after changing models: --keep /data/bench --refresh 'dim_customers+' (rebuilt from scratch)

Daily volume per customer (fixed, whatever the history): 0.6% place an order (2 lines each; the
orders come from a buying process with per-customer rates, dropout and spend, see fill()),
2% start a web session of 5 page views + 1 static request, a weekly campaign reaches 10% of the
customers (delivered; 25% open, 4% click). It runs its own embedded PostgreSQL in a temp folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg

RUN_DAY = date(2026, 10, 1)
# The buying process (fill): first purchases spread over the history and this many days before it, and
# the mean purchase rate per day before the thinning to the daily volume.
BIRTH_HORIZON = 730
MEAN_RATE = 0.03
# daily runs before the timed day: the web models' lookback (web_lookback_days 3) plus the day
# itself, so every row a timed run rewrites was last written by a daily run
WARM_UP_DAYS = 4


def fill(url: str, customers: int, history_days: int, migrations_dir: Path | None = None) -> dict[str, int]:
    """raw.* with `history_days` days before RUN_DAY and RUN_DAY itself, at a fixed daily volume
    (on a warehouse migrated with `migrations_dir`'s migrations, default all of them)."""
    from ecrm.warehouse.migrate import migrate

    orders_per_day = max(1, customers * 6 // 1000)
    sessions_per_day = max(1, customers * 2 // 100)
    recipients = max(1, customers // 10)
    first = RUN_DAY - timedelta(days=history_days)
    params = {"n": customers, "first": first, "days": history_days, "opd": orders_per_day,
              "spd": sessions_per_day, "rcp": recipients}
    migrate(url, migrations_dir)
    with psycopg.connect(url, autocommit=True) as conn:
        # the days' partitions, as the loader creates them before a load (else the default one takes all)
        from ecrm.warehouse.retention import PARTITIONED, ensure_partitions

        if conn.execute("select to_regprocedure('ops.ensure_day_partitions(regclass, date, date)')").fetchone()[0]:
            for table in PARTITIONED:
                ensure_partitions(conn, table, first, RUN_DAY + timedelta(days=1))
        conn.execute("""
            insert into raw.customers
            select 'c-' || lpad(i::text, 7, '0'), 'u' || i || '@example.com', 'N' || i, 'DE',
                   (%(first)s::date - 30)::timestamp at time zone 'UTC' + (i %% 1440) * interval '1 minute',
                   (%(first)s::date - 30)::timestamp at time zone 'UTC' + (i %% 1440) * interval '1 minute',
                   i %% 10 <> 0, 'bench', i, 0
            from generate_series(1, %(n)s) as i""", params)
        # Orders come from a buying process, as BG/NBD assumes (issue 30 item 4): each customer has a
        # gamma-distributed purchase rate (shape 0.5), drops out after any purchase with a
        # beta-distributed probability (Beta(1, 3)) and made a first purchase at a uniform time over
        # the history and the BIRTH_HORIZON days before it; the purchases inside the history are then
        # thinned to `opd` a day on average, so every history length has the same daily volume; each
        # customer's orders vary around their own mean value. Seeded (setseed): the same shop every run. The k-th order of day d (by time) is
        # 'o-d-k', so session k < opd of day d still ends on that order's confirmation page.
        conn.execute("select setseed(0.29)")
        conn.execute("""
            create temporary table bench_buyers as
            select i,
                   random() * (%(days)s + 1 + %(horizon)s) - %(horizon)s as birth,
                   %(rate)s * power(sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()), 2) + 1e-9 as rate,
                   least(greatest(1 - power(1 - random(), 1.0 / 3), 1e-3), 0.999) as p
            from generate_series(1, %(n)s) as i""", {**params, "horizon": BIRTH_HORIZON, "rate": MEAN_RATE})
        conn.execute("""
            create temporary table bench_purchases as
            select i, birth + sum(gap) over (partition by i order by j) as t
            from bench_buyers as b,
                 lateral (select j, case when j = 0 then 0 else -ln(1 - random()) / b.rate end as gap
                          from generate_series(0, least(60, floor(ln(1 - random()) / ln(1 - b.p)))::int) as j) as g""")
        in_window = conn.execute("select count(*) from bench_purchases where t >= 0 and t < %(days)s + 1",
                                 params).fetchone()[0]
        keep = min(1.0, params["opd"] * (params["days"] + 1) / max(1, in_window))
        conn.execute("""
            create temporary table bench_orders as
            select 'o-' || d || '-' || (row_number() over (partition by d order by t, i) - 1) as order_id,
                   'c-' || lpad(i::text, 7, '0') as customer_id,
                   (%(first)s::date)::timestamp at time zone 'UTC' + t * interval '1 day' as created_at,
                   case when k %% 5 = 0 then 5.00 else 0 end::numeric(12, 2) as discount_amount,
                   case when k %% 7 = 0 then 'WELCOME10' end as coupon_code,
                   -- each customer spends around their own mean (10-160), as Gamma-Gamma assumes
                   (10 + (abs(hashint4(i)) %% 151) * (0.7 + 0.6 * random()))::numeric(12, 2) as total_amount
            from (select i, t, floor(t)::int as d, (hashint4(i) # floor(t * 1440)::int) & 65535 as k
                  from bench_purchases where t >= 0 and t < %(days)s + 1 and random() < %(keep)s) as kept""",
                     {**params, "keep": keep})
        conn.execute("""
            insert into raw.orders
            select order_id, customer_id, replace(customer_id, 'c-', 'u') || '@example.com', created_at,
                   created_at, 'paid', 'EUR', total_amount, discount_amount, coupon_code, 'bench', 0, 0
            from bench_orders""")
        conn.execute("insert into raw.order_status_history select order_id, 'paid', created_at, 0 from bench_orders")
        conn.execute("""
            insert into raw.order_lines
            select o.order_id, l, 'p-' || (l * 13 % 100), 'Product', (array['tea', 'coffee', 'toys'])[l],
                   1, (o.total_amount + o.discount_amount) / 2, o.discount_amount / 2, o.created_at,
                   'bench', 0, 0
            from bench_orders as o, generate_series(1, 2) as l""")
        # one load (log file) per day, in the order the days arrive: a table filled in one statement
        # interleaves the days on every page (the planner's loop order), so that a day's rows were
        # spread over the whole table and every daily range scan grew with history
        for day in range(history_days + 1):
            conn.execute("""
            insert into raw.web_requests
            select (%(first)s::date + d)::timestamp at time zone 'UTC'
                       + (s * 86400 / %(spd)s) * interval '1 second' + p * interval '1 minute',
                   '10.' || (c %% 250) || '.' || (c / 250 %% 250) || '.' || (c / 62500), null, 'GET',
                   case when p = 0 then '/static/app.css'
                        when p = 5 and s < %(opd)s then '/checkout/complete'
                        else '/product/p-' || ((s + p) %% 100) end,
                   case when p = 5 and s < %(opd)s then 'order=o-' || d || '-' || s end,
                   'HTTP/1.1', 200, 1000, null, 'Mozilla/5.0 bench', false, p = 0, null, null, null, null,
                   case when p = 5 and s < %(opd)s then 'o-' || d || '-' || s end,
                   'bench-' || d, s * 10 + p, d  -- one load (file) per day: key (_load_id, _line)
            from (select %(day)s::integer as d) as today, generate_series(0, %(spd)s - 1) as s,
                 lateral (select ((d::bigint * 7919 + s::bigint * 104729) %% %(n)s) + 1 as c) as visitor,
                 generate_series(0, 5) as p
            order by s, p""", {**params, "day": day})
        conn.execute("""
            insert into raw.email_campaigns
            select 'cmp-' || d, 'Weekly ' || d, (%(first)s::date + d)::timestamp at time zone 'UTC' + interval '8 hours',
                   'vip', 'A', 'bench', d, 0
            from generate_series(0, %(days)s) as d where d %% 7 = 1""", params)
        conn.execute("""
            insert into raw.email_events
            select 'ev-' || d || '-' || r || '-' || e.event, e.event, 'u' || c || '@example.com',
                   (%(first)s::date + d)::timestamp at time zone 'UTC' + interval '8 hours'
                       + e.delay * interval '1 minute',
                   'cmp-' || d, 'c-' || lpad(c::text, 7, '0'), false, null, null, null, 'bench', 0, 0
            from generate_series(0, %(days)s) as d, generate_series(0, %(rcp)s - 1) as r,
                 lateral (select ((d::bigint * 15485863 + r::bigint * 32452843) %% %(n)s) + 1 as c) as who,
                 (values ('delivered', 1, 100), ('open', 60, 25), ('click', 90, 4)) as e (event, delay, pct)
            where d %% 7 = 1 and r %% 100 < e.pct""", params)
        conn.execute("analyze")
        counts = {t: conn.execute(f"select count(*) from raw.{t}").fetchone()[0]
                  for t in ("customers", "orders", "web_requests", "email_events")}
    return counts


def dbt(command: str, day: date, url: str) -> float:
    return dbt_timed(command, day, url)[0]


def fastest_per_node(timings: list[tuple[float, float, dict[str, float]]]) -> dict[str, float]:
    """Each node's fastest execution time over the repeats."""
    nodes: dict[str, float] = {}
    for _, _, per_node in timings:
        for node, seconds in per_node.items():
            nodes[node] = min(seconds, nodes.get(node, seconds))
    return nodes


def growers(short: dict, long: dict, top: int) -> list[str]:
    """The `top` nodes of the daily build whose time grows most from the short to the long history."""
    a, b = short["daily_build_per_node"], long["daily_build_per_node"]
    grown = sorted(((b.get(n, 0.0) - a.get(n, 0.0), n) for n in a.keys() | b.keys()), reverse=True)[:top]
    return [f"    {delta:+6.2f} s  {a.get(n, 0.0):6.2f} -> {b.get(n, 0.0):6.2f} s  {n}" for delta, n in grown]


def dbt_timed(command: str, day: date, url: str, extra: list[str] | None = None) -> tuple[float, float, dict[str, float]]:
    """(wall seconds, summed node execution seconds, execution seconds per node): the second leaves
    out dbt's fixed start-up and parsing and shows the database work, the part that could grow with
    history; the third (what target/run_results.json holds) shows where it grows."""
    from ecrm.transform import run_dbt

    started = time.perf_counter()
    result = run_dbt([command, "--vars", json.dumps({"run_date": day.isoformat()}), "--quiet", *(extra or [])], url)
    wall = time.perf_counter() - started
    nodes = {node.node.unique_id: node.execution_time for node in result.result.results}
    return wall, sum(nodes.values()), nodes


def prepare(warehouse, customers: int, history_days: int, refresh: str | None = None,
            warm_up_days: int = WARM_UP_DAYS) -> dict:
    """A database with the history filled, seeded, built once from scratch as of `warm_up_days`
    before the day before and then run day by day up to the day before, as production gets there:
    the full build lays tables out its own way (sessions grouped by visitor, not by day), and the
    daily runs leave the last days' rows where a daily run leaves them. Timing the first run after a
    full build instead would time that layout, which grows with history and no later run sees.

    In a kept warehouse (`--keep`) a database prepared by an earlier run is reused as it is, or with
    the models of `refresh` (a dbt selector) rebuilt from scratch and then run day by day as above:
    for timing a model change at 1M customers without spending half an hour on generating and
    building the history again."""
    from ecrm.warehouse.migrate import migrate

    url = warehouse.create_database(f"bench_{customers}_{history_days}")
    first_daily = RUN_DAY - timedelta(days=warm_up_days)
    with psycopg.connect(url, autocommit=True) as conn:
        prepared = conn.execute("select to_regclass('public.bench_prepared') is not null").fetchone()[0]
        if prepared:
            migrate(url)  # raw indexes added since the database was prepared
            counts = {t: conn.execute(f"select count(*) from raw.{t}").fetchone()[0]
                      for t in ("customers", "orders", "web_requests", "email_events")}
    result = {"url": url, "customers": customers, "history_days": history_days, "generate_s": 0.0,
              "initial_run_s": 0.0, "warm_up_s": 0.0, "runs": [], "builds": []}
    if prepared and not refresh:
        return {**result, "rows": counts}
    if prepared:
        dbt("seed", RUN_DAY, url)
        result["initial_run_s"] = dbt_timed("run", first_daily - timedelta(days=1), url,
                                            ["--full-refresh", "--select", refresh])[0]
    else:
        started = time.perf_counter()
        counts = fill(url, customers, history_days)
        result["generate_s"] = time.perf_counter() - started
        dbt("seed", RUN_DAY, url)
        result["initial_run_s"] = dbt("run", first_daily - timedelta(days=1), url)  # the full build
    started = time.perf_counter()
    for day in range(warm_up_days):
        dbt("run", first_daily + timedelta(days=day), url)
    result["warm_up_s"] = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table if not exists public.bench_prepared as select now() as prepared_at")
    return {**result, "rows": counts}


def measure(warehouse, customers: int, histories: list[int], repeat: int = 3,
            refresh: str | None = None) -> list[dict]:
    """Daily run and build of RUN_DAY, alternating between the histories so that a change in the
    machine's background load hits both alike; the fastest of `repeat` of each is kept."""
    dbs = [prepare(warehouse, customers, days, refresh) for days in histories]
    for _ in range(repeat):
        for db in dbs:
            db["runs"].append(dbt_timed("run", RUN_DAY, db["url"]))
        for db in dbs:
            db["builds"].append(dbt_timed("build", RUN_DAY, db["url"]))
    for db in dbs:
        db.update(daily_run_s=min(w for w, _, _ in db["runs"]), daily_build_s=min(w for w, _, _ in db["builds"]),
                  daily_run_nodes_s=min(n for _, n, _ in db["runs"]),
                  daily_build_nodes_s=min(n for _, n, _ in db["builds"]),
                  daily_build_per_node=fastest_per_node(db["builds"]))
    return dbs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--history", type=int, nargs=2, default=[30, 365], metavar=("SHORT", "LONG"))
    parser.add_argument("--repeat", type=int, default=3, help="time the daily run/build N times, report the fastest")
    parser.add_argument("--nodes", type=int, default=8, metavar="N",
                        help="print the N nodes of the daily build that grow most with history (0: none)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the warehouse in DIR and reuse the databases an earlier run prepared there")
    parser.add_argument("--refresh", metavar="SELECTOR",
                        help="with --keep: rebuild these models (dbt selector, e.g. 'dim_customers+') "
                             "from scratch as of the day before, after changing them")
    args = parser.parse_args()

    from ecrm.warehouse.embedded import EmbeddedWarehouse

    warehouse = EmbeddedWarehouse(args.keep or Path(tempfile.mkdtemp(prefix="ecrm-bench-")))
    warehouse.start()
    results = []
    try:
        for customers in args.customers:
            short, long = measure(warehouse, customers, args.history, args.repeat, args.refresh)
            results.append((short, long))
            for r in (short, long):
                print(f"{r['customers']:>9,} customers {r['history_days']:>4} days history: "
                      f"raw rows {r['rows']}, generate {r['generate_s']:.1f} s, initial run "
                      f"{r['initial_run_s']:.1f} s, {WARM_UP_DAYS} daily runs up to the day before {r['warm_up_s']:.1f} s, daily dbt run {r['daily_run_s']:.1f} s, "
                      f"daily dbt build {r['daily_build_s']:.1f} s (fastest of {args.repeat}; summed node "
                      f"times run {r['daily_run_nodes_s']:.1f} s, build {r['daily_build_nodes_s']:.1f} s)", flush=True)
            print(f"{customers:>9,} customers: {args.history[1]}/{args.history[0]} days ratio "
                  f"run {long['daily_run_s'] / short['daily_run_s']:.2f}x, "
                  f"build {long['daily_build_s'] / short['daily_build_s']:.2f}x; summed node times run "
                  f"{long['daily_run_nodes_s'] / short['daily_run_nodes_s']:.2f}x, "
                  f"build {long['daily_build_nodes_s'] / short['daily_build_nodes_s']:.2f}x", flush=True)
            if args.nodes:
                print(f"{customers:>9,} customers: top {args.nodes} growers of the daily build "
                      f"(node time, fastest of {args.repeat}, {args.history[0]} -> {args.history[1]} days):")
                print("\n".join(growers(short, long, args.nodes)), flush=True)
    finally:
        warehouse.stop() if args.keep else warehouse.destroy()


if __name__ == "__main__":
    main()
