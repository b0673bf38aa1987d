"""Retention of the raw history: dropping a day's partition vs delete + vacuum of the same day.

Fills raw.web_requests (partitioned by day, migration 0006) with `--days` days of `--rows-per-day`
log rows, and an unpartitioned copy of the same rows with the table's shape before 0006 (primary
key (_load_id, _line), index on requested_at) in the same database. Then removes the oldest day
from both, in the same run: `ecrm.warehouse.retention.retention` (detach + drop of that day's
partition, what `ecrm warehouse retention --keep-days N` does) against `delete ... where
requested_at < end of day` + `vacuum` of the copy (what retention cost before). Prints both times
and their ratio; the ratio is what to compare across machines (absolute times on a shared 2-core
machine move by +-30%). It runs its own embedded PostgreSQL in a temp folder.

    .venv/bin/python benchmarks/bench_retention.py --days 30 --rows-per-day 200000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg

FIRST_DAY = date(2026, 9, 1)
FLAT = "public.web_requests_unpartitioned"


def fill(conn: psycopg.Connection, days: int, rows_per_day: int) -> None:
    """The same rows in raw.web_requests (day partitions) and in the unpartitioned copy."""
    from ecrm.warehouse.retention import ensure_partitions

    ensure_partitions(conn, "raw.web_requests", FIRST_DAY, FIRST_DAY + timedelta(days=days - 1))
    conn.execute(f"create table {FLAT} (like raw.web_requests including defaults)")
    for day in range(days):
        for table in ("raw.web_requests", FLAT):
            conn.execute(f"""
                insert into {table} (requested_at, remote_addr, method, path, protocol, status, bytes_sent,
                                     user_agent, is_bot, is_static, _file, _line, _load_id)
                select %(first)s::timestamptz + %(day)s * interval '1 day' + n * (86400.0 / %(rows)s) * interval '1 second',
                       '10.' || (n %% 250) || '.' || (n / 250 %% 250) || '.1', 'GET', '/product/p-' || (n %% 100),
                       'HTTP/1.1', 200, 1000, 'Mozilla/5.0 bench', false, n %% 6 = 0, 'bench-' || %(day)s, n, %(day)s
                from generate_series(0, %(rows)s - 1) as n""",
                         {"first": f"{FIRST_DAY} 00:00+00", "day": day, "rows": rows_per_day})
    conn.execute(f"alter table {FLAT} add primary key (_load_id, _line)")
    conn.execute(f"create index on {FLAT} (requested_at)")
    conn.execute("vacuum analyze raw.web_requests")
    conn.execute(f"vacuum analyze {FLAT}")


def drop_oldest_day(conn: psycopg.Connection) -> tuple[float, int]:
    """The oldest day's partition detached and dropped by retention; (seconds, partitions dropped)."""
    from ecrm.warehouse.retention import min_keep_days, retention

    keep = min_keep_days()
    began = time.perf_counter()
    # as of the day that leaves exactly FIRST_DAY outside the kept days
    dropped = [p for p in retention(conn, keep, FIRST_DAY + timedelta(days=keep)) if p.table == "raw.web_requests"]
    return time.perf_counter() - began, len(dropped)


def delete_oldest_day(conn: psycopg.Connection) -> tuple[float, float, int]:
    """The same day deleted from the unpartitioned copy, then vacuumed; (delete s, vacuum s, rows)."""
    began = time.perf_counter()
    rows = conn.execute(f"delete from {FLAT} where requested_at < %s",
                        (f"{FIRST_DAY + timedelta(days=1)} 00:00+00",)).rowcount
    deleted = time.perf_counter()
    conn.execute(f"vacuum {FLAT}")
    return deleted - began, time.perf_counter() - deleted, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows-per-day", type=int, default=200_000)
    args = parser.parse_args()

    from ecrm.warehouse.embedded import EmbeddedWarehouse
    from ecrm.warehouse.migrate import migrate

    warehouse = EmbeddedWarehouse(Path(tempfile.mkdtemp(prefix="ecrm-bench-retention-")))
    warehouse.start()
    try:
        url = warehouse.create_database("bench_retention")
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            began = time.perf_counter()
            fill(conn, args.days, args.rows_per_day)
            print(f"filled {args.days} days x {args.rows_per_day:,} web rows, twice, in "
                  f"{time.perf_counter() - began:.1f} s", flush=True)
            drop_s, dropped = drop_oldest_day(conn)
            delete_s, vacuum_s, rows = delete_oldest_day(conn)
            left = [conn.execute(f"select count(*) from {t}").fetchone()[0] for t in ("raw.web_requests", FLAT)]
        assert dropped == 1 and rows == args.rows_per_day and left[0] == left[1], (dropped, rows, left)
        print(f"oldest day ({rows:,} rows of {args.days * args.rows_per_day:,}): drop partition {drop_s:.3f} s; "
              f"delete {delete_s:.2f} s + vacuum {vacuum_s:.2f} s = {delete_s + vacuum_s:.2f} s; "
              f"delete + vacuum / drop = {(delete_s + vacuum_s) / drop_s:.0f}x", flush=True)
    finally:
        warehouse.destroy()


if __name__ == "__main__":
    main()
