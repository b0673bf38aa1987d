"""Load throughput: ecrm's loader vs raw COPY (the physical limit) vs pandas.to_sql, in one run.

    .venv/bin/python benchmarks/bench_load.py [--rows 1000000] [--logs tidy,realistic]

For 1M order lines and 1M combined-format log lines (two logs: "tidy", 4 user agents and plain
paths, and "realistic", from the simulator's generator `ecrm.simulate.weblogs.realistic_lines`:
hundreds of user agents with a Zipf distribution, long search/social/webmail referrers, %- and
+-encoded queries, utm parameters, ad click ids, IPv6, ~10% bots) it prints rows/s and peak RSS of:
- raw COPY: psycopg `COPY ... FROM STDIN (FORMAT csv)` of the same prepared rows (no validation);
- ecrm: the production loader (parse + validate + quarantine + COPY + merge + ledger, one txn);
- pandas: `read_csv` + `DataFrame.to_sql` (default method, SQLAlchemy + psycopg), what many teams use.
Each variant runs in its own subprocess so peak memory is its own. For the logs it also prints the
parse alone on one core: `ecrm.sources.weblogs.parse_access_log` over the file, consumed, timed with
process CPU time (lines/s per core). Nothing here is a timed test.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

DAY = date(2026, 10, 1)
LINES_HEADER = "order_id,line_number,product_id,product_name,category,quantity,unit_price,discount_amount,updated_at"
AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1",
          "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15"]


def make_order_lines(path: Path, rows: int) -> None:
    rng = random.Random(1)
    base = datetime(2026, 10, 1, tzinfo=UTC)
    with path.open("w") as out:
        out.write(LINES_HEADER + "\n")
        for i in range(rows):
            ts = (base + timedelta(seconds=i * 86399 // rows)).isoformat()
            out.write(f"o-{i // 3:08d},{i % 3 + 1},p-{rng.randrange(500)},Product {rng.randrange(500)},"
                      f"Category {rng.randrange(8)},{rng.randrange(1, 4)},{rng.randrange(100, 9999) / 100:.2f},"
                      f"0.00,{ts}\n")


def make_access_log(path: Path, rows: int) -> None:
    rng = random.Random(2)
    with path.open("w") as out:
        for i in range(rows):
            sec = i * 86399 // rows
            stamp = f"01/Oct/2026:{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d} +0000"
            query = "?utm_source=email&utm_medium=email&utm_campaign=cmp-1&ct=0123456789abcdef" if i % 50 == 0 else ""
            out.write(f'203.0.{rng.randrange(256)}.{rng.randrange(256)} - - [{stamp}] "GET /product/p-{rng.randrange(900)}'
                      f'{query} HTTP/1.1" 200 {rng.randrange(200, 90000)} "https://www.google.com/" '
                      f'"{AGENTS[i % len(AGENTS)]}"\n')


def make_realistic_log(path: Path, rows: int) -> None:
    from ecrm.simulate.weblogs import realistic_lines

    with path.open("w") as out:
        for start in range(0, rows, 200_000):  # the generator's day split into chunks of lines
            n = min(200_000, rows - start)
            lines = realistic_lines(2 + start, DAY, n)
            out.write("".join(f"{line}\n" for line in _shift(lines, start, rows)))


def _shift(lines: list[str], start: int, rows: int) -> list[str]:
    """Restamp a chunk's lines so the whole file runs through the day in order."""
    out = []
    for i, line in enumerate(lines):
        sec = (start + i) * 86399 // rows
        stamp = f"01/Oct/2026:{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d} +0000"
        head, _, rest = line.partition(" [")
        out.append(f"{head} [{stamp}{rest[rest.index(']'):]}")
    return out


def parse_alone(path: Path) -> dict:
    """parse_access_log over the file on one core: process CPU time, lines consumed."""
    from ecrm.intervals import day_interval
    from ecrm.sources import RowBlock
    from ecrm.sources.weblogs import parse_access_log

    interval = day_interval(DAY)
    cpu0, lines, slow = cpu_seconds(), 0, 0
    for item in parse_access_log(path, interval):
        if isinstance(item, RowBlock):
            lines += len(item)
        else:
            lines, slow = lines + 1, slow + 1
    cpu = cpu_seconds() - cpu0
    return {"variant": "parse", "lines": lines, "slow_path_lines": slow, "cpu_s": round(cpu, 2),
            "lines_per_cpu_s": round(lines / cpu)}


def cpu_seconds() -> float:
    """CPU time of this (client) process: with the server on the other core, what "one core" buys."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- variants (each runs in a child process) -----------------------------------------------------
def run_variant(variant: str, kind: str, folder: Path, url: str) -> dict:
    import psycopg

    from ecrm.intervals import day_interval
    from ecrm.load.ingest import ingest
    from ecrm.warehouse.migrate import migrate

    interval = day_interval(DAY)
    with psycopg.connect(url, autocommit=True) as conn:
        # every schema the migrations made (a partial drop leaves views a fresh 0001 cannot replace)
        for (schema,) in conn.execute("select nspname from pg_namespace where nspname !~ '^pg_' "
                                      "and nspname not in ('information_schema', 'public')").fetchall():
            conn.execute(f'drop schema "{schema}" cascade')
        conn.execute("create schema bench")
        migrate(url)
        if variant == "ecrm":
            source = "shop" if kind == "order_lines" else "weblogs"
            if kind == "order_lines":
                (folder / "customers.csv").write_text(
                    "customer_id,email,first_name,country,signed_up_at,updated_at,accepts_marketing\n")
                (folder / "orders.csv").write_text("order_id,customer_id,email,created_at,updated_at,status,currency,"
                                                   "total_amount,discount_amount,coupon_code\n")
            t0, cpu0 = time.perf_counter(), cpu_seconds()
            results = ingest(conn, source, folder, interval, "bench")
            seconds = time.perf_counter() - t0
            rows = sum(r.rows_loaded for r in results)
        else:
            table = "raw.order_lines" if kind == "order_lines" else "raw.web_requests"
            prepared = folder.parent / f"{folder.name}.prepared.csv"
            columns = prepared.open().readline().strip() if variant == "copy" else None
            t0, cpu0 = time.perf_counter(), cpu_seconds()
            if variant == "copy":
                with conn.cursor().copy(f"copy {table} ({columns}) from stdin (format csv, header)") as copy, \
                        prepared.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk)
                rows = conn.execute(f"select count(*) from {table}").fetchone()[0]
            else:
                import pandas as pd
                from sqlalchemy import create_engine

                engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
                rows = 0
                stamp = "updated_at" if kind == "order_lines" else "requested_at"
                for frame in pd.read_csv(prepared, chunksize=200_000, parse_dates=[stamp], true_values=["t"],
                                         false_values=["f"]):
                    frame.to_sql(table.split(".")[1], engine, schema="raw", if_exists="append", index=False)
                    rows += len(frame)
            seconds = time.perf_counter() - t0
    return {"variant": variant, "kind": kind, "rows": rows, "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds), "peak_rss_mb": round(peak_rss_mb()),
            "client_cpu_s": round(cpu_seconds() - cpu0, 2)}


def prepare_csv(kind: str, folder: Path, url: str) -> None:
    """The 'same prepared rows' for COPY and pandas: what ecrm's loader put into raw.*, as CSV."""
    import psycopg

    table = "raw.order_lines" if kind == "order_lines" else "raw.web_requests"
    with psycopg.connect(url) as conn, (folder.parent / f"{folder.name}.prepared.csv").open("wb") as out:
        with conn.cursor().copy(f"copy (select * from {table}) to stdout (format csv, header)") as copy:
            for chunk in copy:
                out.write(chunk)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of ecrm and COPY each, the fastest is kept")
    parser.add_argument("--logs", default="tidy,realistic", help="which access logs: tidy, realistic")
    parser.add_argument("--skip-orders", action="store_true", help="only the access logs")
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "KIND", "FOLDER", "URL"))
    args = parser.parse_args()
    if args.child:
        variant, kind, folder, url = args.child
        if variant == "parse":
            print(json.dumps(parse_alone(next(Path(folder).glob("access.log")))))
            return
        if variant == "prepare":
            prepare_csv(kind, Path(folder), url)
            return
        print(json.dumps(run_variant(variant, kind, Path(folder), url)))
        return

    from ecrm.warehouse.embedded import EmbeddedWarehouse

    work = Path(tempfile.mkdtemp(prefix="ecrm-bench-load-"))
    url = EmbeddedWarehouse(work / "warehouse").start()
    results, parses = [], []
    kinds = [] if args.skip_orders else [("order_lines", make_order_lines, "order_lines.csv", "order_lines")]
    logs = {"tidy": make_access_log, "realistic": make_realistic_log}
    kinds += [("web_requests", logs[log], "access.log", f"web_{log}") for log in args.logs.split(",")]
    for kind, make, name, label in kinds:
        folder = work / label
        folder.mkdir()
        make(folder / name, args.rows)
        if kind == "web_requests":
            out = subprocess.run([sys.executable, __file__, "--child", "parse", kind, str(folder), url],
                                 check=True, capture_output=True, text=True).stdout.strip()
            parses.append({"kind": label, **json.loads(out.splitlines()[-1])})
            print(parses[-1], flush=True)
        # ecrm and COPY alternate `--repeat` times (the fastest of each is kept) so that a change
        # in the machine's background load hits both alike; pandas runs once (it is 10x slower).
        plan = ["ecrm", "prepare", "copy"] + ["ecrm", "copy"] * (args.repeat - 1) + ["pandas"]
        runs = []
        for variant in plan:
            out = subprocess.run([sys.executable, __file__, "--child", variant, kind, str(folder), url],
                                 check=True, capture_output=True, text=True).stdout.strip()
            if variant != "prepare":
                runs.append({**json.loads(out.splitlines()[-1]), "kind": label})
                print(runs[-1], flush=True)
        for variant in ("ecrm", "copy", "pandas"):
            results.append(max((r for r in runs if r["variant"] == variant), key=lambda r: r["rows_per_s"]))
    print(f"\n{'lines':>9} {'log':<15} {'parse alone (1 core)':>22} {'slow-path lines':>16}")
    for p in parses:
        print(f"{p['lines']:>9} {p['kind']:<15} {p['lines_per_cpu_s']:>14,} lines/s {p['slow_path_lines']:>16,}")
    print(f"\n{'rows':>9} {'kind':<13} {'variant':<7} {'rows/s':>10} {'vs COPY':>8} {'peak RSS':>9} "
          f"{'client CPU':>11}")
    for r in results:
        copy = next(c for c in results if c["kind"] == r["kind"] and c["variant"] == "copy")
        print(f"{r['rows']:>9} {r['kind']:<13} {r['variant']:<7} {r['rows_per_s']:>10,} "
              f"{r['rows_per_s'] / copy['rows_per_s']:>8.2f} {r['peak_rss_mb']:>6} MB {r['client_cpu_s']:>9} s")
    EmbeddedWarehouse(work / "warehouse").destroy()


if __name__ == "__main__":
    main()
