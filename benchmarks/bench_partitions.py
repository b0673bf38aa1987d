"""The daily dbt build on a partitioned vs an unpartitioned raw history (issue 27: no regression > 5%).

One warehouse, one generated history (bench_dbt.py's generator: 1M customers, 365 days by default),
two databases that differ only in migration 0006:

1. `part_before` is migrated with 0001-0005 (raw.web_requests and raw.email_events as single tables)
   plus the SQL of the migrations after 0006 (0007's discount columns, which today's models read;
   idempotent, so the upgraded copy applies them again as recorded migrations), filled, seeded, built from scratch as of five days before the timed day and run day by day
   up to the day before (bench_dbt.py's warm-up);
2. `part_after` is a copy of it (`create database ... template`) upgraded in place by
   `ecrm.warehouse.migrate` (0006 rewrites the two tables into day partitions; timed: what an
   existing warehouse's upgrade costs);
3. the daily `dbt build` of the timed day runs alternately on both (`--repeat N`, default 3), so a
   shift in the machine's load hits both alike; the fastest wall time and summed node time of each
   are reported, with the after/before ratio and the nodes whose time changed most.

    .venv/bin/python benchmarks/bench_partitions.py                          # 1M customers, 365 days
    .venv/bin/python benchmarks/bench_partitions.py --customers 100000 --days 90
    .venv/bin/python benchmarks/bench_partitions.py --keep /data/bench-part  # reuse the databases
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_dbt import RUN_DAY, WARM_UP_DAYS, dbt, dbt_timed, fastest_per_node, fill  # noqa: E402

PARTITIONING = 6  # the migration that partitions the raw history


def migrations_before(folder: Path) -> Path:
    """A folder with the migrations before 0006 (symlinks), for the unpartitioned database."""
    from ecrm.warehouse.migrate import MIGRATIONS_DIR, migrations

    folder.mkdir(parents=True, exist_ok=True)
    for m in migrations():
        if m.version < PARTITIONING and not (folder / m.file).exists():
            (folder / m.file).symlink_to(MIGRATIONS_DIR / m.file)
    return folder


def later_migrations(url: str) -> list[str]:
    """Run the SQL of the migrations after 0006 (each idempotent: `if not exists`, `drop not null`)
    without recording them, so the unpartitioned database has today's columns and `migrate` can still
    apply 0006 and then them on its copy (the runner refuses a gap in the recorded versions)."""
    from ecrm.warehouse.migrate import migrations

    later = [m for m in migrations() if m.version > PARTITIONING]
    with psycopg.connect(url, autocommit=True) as conn:
        for m in later:
            conn.execute(m.sql)
    return [m.file for m in later]


def prepare_before(warehouse, customers: int, days: int, scratch: Path) -> tuple[str, dict]:
    url = warehouse.create_database("part_before")
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("select to_regclass('public.bench_prepared') is not null").fetchone()[0]:
            return url, {"reused": True}
    timings = {}
    started = time.perf_counter()
    fill(url, customers, days, migrations_before(scratch / "migrations-0001-0005"))
    timings["also_applied"] = later_migrations(url)
    timings["generate_s"] = time.perf_counter() - started
    first_daily = RUN_DAY - timedelta(days=WARM_UP_DAYS)
    dbt("seed", RUN_DAY, url)
    timings["initial_run_s"] = dbt("run", first_daily - timedelta(days=1), url)
    started = time.perf_counter()
    for day in range(WARM_UP_DAYS):
        dbt("run", first_daily + timedelta(days=day), url)
    timings["warm_up_s"] = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table public.bench_prepared as select now() as prepared_at")
    return url, timings


def prepare_after(warehouse, before_url: str) -> tuple[str, dict]:
    """The same database upgraded in place by 0006 (a copy first, so both keep the same history)."""
    from ecrm.warehouse.migrate import applied, migrate

    with psycopg.connect(warehouse.url("postgres"), autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = 'part_after'").fetchone()
    url = warehouse.url("part_after")
    if exists:
        with psycopg.connect(url, autocommit=True) as conn:
            if PARTITIONING in applied(conn):
                return url, {"reused": True}
        with psycopg.connect(warehouse.url("postgres"), autocommit=True) as conn:
            conn.execute("drop database part_after")
    started = time.perf_counter()
    with psycopg.connect(warehouse.url("postgres"), autocommit=True) as conn:
        conn.execute("create database part_after template part_before")
    timings = {"copy_s": time.perf_counter() - started}
    started = time.perf_counter()
    migrate(url)
    timings["migrate_0006_s"] = time.perf_counter() - started
    return url, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365, help="days of history before the timed day")
    parser.add_argument("--repeat", type=int, default=3, help="daily builds per database, alternating")
    parser.add_argument("--nodes", type=int, default=8, help="print the N nodes whose time changed most")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the warehouse in DIR and reuse it")
    args = parser.parse_args()

    from ecrm.warehouse.embedded import EmbeddedWarehouse

    folder = args.keep or Path(tempfile.mkdtemp(prefix="ecrm-bench-part-"))
    warehouse = EmbeddedWarehouse(folder / "pg")
    warehouse.start()
    try:
        before_url, t_before = prepare_before(warehouse, args.customers, args.days, folder)
        print(f"before (0001-0005 and the SQL of the later ones): {t_before}", flush=True)
        after_url, t_after = prepare_after(warehouse, before_url)
        print(f"after (0006 applied in place): {t_after}", flush=True)
        with psycopg.connect(after_url, autocommit=True) as conn:
            parts = conn.execute("select count(*) from pg_inherits where inhparent = 'raw.web_requests'::regclass"
                                 ).fetchone()[0]
        print(f"raw.web_requests partitions after: {parts}", flush=True)
        runs: dict[str, list] = {"before": [], "after": []}
        for i in range(args.repeat):
            for name, url in (("before", before_url), ("after", after_url)):
                runs[name].append(dbt_timed("build", RUN_DAY, url))
                wall, nodes, _ = runs[name][-1]
                print(f"  repeat {i + 1} {name:>6}: daily dbt build {wall:.1f} s, summed node time {nodes:.1f} s",
                      flush=True)
        best = {name: (min(w for w, _, _ in r), min(n for _, n, _ in r), fastest_per_node(r))
                for name, r in runs.items()}
        (bw, bn, bp), (aw, an, ap) = best["before"], best["after"]
        print(f"{args.customers:,} customers, {args.days} days, fastest of {args.repeat}: daily dbt build "
              f"{bw:.1f} -> {aw:.1f} s ({aw / bw:.3f}x), summed node time {bn:.1f} -> {an:.1f} s ({an / bn:.3f}x)")
        changed = sorted(((ap.get(n, 0.0) - bp.get(n, 0.0), n) for n in bp.keys() | ap.keys()),
                         key=lambda x: -abs(x[0]))[:args.nodes]
        print("nodes changed most (fastest node time, before -> after):")
        for delta, n in changed:
            print(f"    {delta:+6.2f} s  {bp.get(n, 0.0):6.2f} -> {ap.get(n, 0.0):6.2f} s  {n}")
    finally:
        warehouse.stop() if args.keep else warehouse.destroy()


if __name__ == "__main__":
    main()
