"""The e-mail ingest of an ordinary day at 1M customers, against a raw COPY of the same file (issue 30).

    .venv/bin/python benchmarks/bench_email.py [--events 500000] [--history 6800000] [--repeat 2] [--dir DIR]

Builds in its own embedded warehouse `raw.email_events` holding --history events over the 365 days
before the day (one partition a day, as the loader keeps them), and writes the day's export as the
ESP writes it (SendGrid event-webhook JSON lines, the shape bench_day.py writes). Then, fastest of
--repeat (the day's load deleted and the table vacuumed before each):
  - ecrm: `ingest(conn, "email", folder, day)`: parse, checks, quarantine, event ids against the whole
    history (`duplicate_event`), insert, ledger; one transaction;
  - parse: the parser alone over the file, process CPU seconds, column-wise and line by line;
  - limit: a COPY of the file's lines into a one-column unlogged table (bench_day.py's limit).
With --keep DIR the warehouse is kept, and a second run reuses it. Before/after on the same harness:
run it with PYTHONPATH=<a checkout of the old code>/src (it calls `ingest` and `parse_events` only).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg

DAY = date(2026, 10, 1)


def prepare(url: str, events: int, history: int, landing: Path) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select ops.ensure_day_partitions('raw.email_events', %s, %s)",
                     (DAY - timedelta(days=366), DAY + timedelta(days=1)))
        conn.execute("""insert into raw.email_events (event_id, event, email, occurred_at, campaign_id, customer_id,
                                                       _file, _line, _load_id)
            select md5('h' || i), (array['delivered', 'open', 'click'])[1 + i %% 3], 'u' || (i %% 1000000) || '@example.com',
                   %(day)s::date - 365 + (i::bigint * 365 * 86000 / %(n)s) * interval '1 second', 'cmp-' || (i / 20000),
                   'c-' || lpad((i %% 1000000)::text, 7, '0'), 'history/' || (i / 20000), i, -1
            from generate_series(0, %(n)s - 1) as i""", {"day": DAY, "n": history})
        conn.execute("analyze raw.email_events")
        folder = landing / "email" / DAY.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        # the day's export, as bench_day.py writes it: ids the ESP would send (unseen), one campaign
        with (folder / "events.jsonl").open("wb") as f, conn.cursor().copy("""copy (
            select json_build_object('sg_event_id', md5('d' || i), 'event', (array['delivered', 'open', 'click'])[1 + i %% 3],
                   'email', 'u' || c || '@example.com',
                   'timestamp', extract(epoch from %(day)s::date + (i::bigint * 86000 / %(events)s) * interval '1 second')::bigint,
                   'campaign_id', 'cmp-day', 'customer_id', 'c-' || lpad(c::text, 7, '0'),
                   'sg_message_id', 'm-' || i, 'sg_machine_open', false)::text
            from generate_series(0, %(events)s - 1) as i,
                 lateral (select ((i::bigint * 32452843) %% 1000000) + 1 as c) as who) to stdout""",
                {"day": DAY, "events": events}) as copy:
            for chunk in copy:
                f.write(chunk)


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("delete from raw.email_events where _load_id >= 0")
        conn.execute("delete from quarantine.rejected_rows")
        conn.execute("delete from ops.load_ledger")
        conn.execute("vacuum analyze raw.email_events")


def run_ecrm(url: str, folder: Path) -> tuple[float, int]:
    from ecrm.intervals import day_interval
    from ecrm.load.ingest import ingest

    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        results = ingest(conn, "email", folder, day_interval(DAY))
        return time.perf_counter() - started, sum(r.rows_loaded for r in results)


def parse_cpu(path: Path, fast: bool) -> float:
    from ecrm.intervals import day_interval
    from ecrm.sources import email

    started = time.process_time()
    try:
        rows = email.parse_events(path, day_interval(DAY), fast=fast)
    except TypeError:  # a version without the column-wise path
        if fast:
            return float("nan")
        rows = email.parse_events(path, day_interval(DAY))
    for _ in rows:
        pass
    return time.process_time() - started


def run_limit(url: str, path: Path) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("drop table if exists bench_lim_events")
        conn.execute("create unlogged table bench_lim_events (doc text)")
        started = time.perf_counter()
        with path.open("rb") as f, conn.cursor().copy("copy bench_lim_events from stdin with (format text, "
                                                      "delimiter e'\\x01')") as copy:
            while data := f.read(1 << 20):
                copy.write(data)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500_000, help="the day's events (default 500,000)")
    parser.add_argument("--history", type=int, default=6_800_000, help="events already loaded (default 6.8M)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep (or reuse) the warehouse and the file here")
    args = parser.parse_args()

    from ecrm.warehouse.embedded import EmbeddedWarehouse
    from ecrm.warehouse.migrate import migrate

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-email-"))
    reuse = (work / "landing").exists()
    wh = EmbeddedWarehouse(work / "warehouse")
    wh.start()
    try:
        url = wh.url("bench") if reuse else wh.create_database("bench")
        if not reuse:
            migrate(url)
            started = time.perf_counter()
            prepare(url, args.events, args.history, work / "landing")
            print(f"prepared {args.history:,} events of history and a day of {args.events:,} in "
                  f"{time.perf_counter() - started:.0f} s")
        folder = work / "landing" / "email" / DAY.isoformat()
        ecrm = []
        for _ in range(args.repeat):
            reset(url)
            seconds, loaded = run_ecrm(url, folder)
            ecrm.append(seconds)
            assert loaded == args.events, f"loaded {loaded} of {args.events} events"
        limit = min(run_limit(url, folder / "events.jsonl") for _ in range(args.repeat))
        fast, line = (min(parse_cpu(folder / "events.jsonl", f) for _ in range(args.repeat)) for f in (True, False))
        print(f"{'':<34}{'s':>8}{'x limit':>9}")
        print(f"{'ecrm ingest email':<34}{min(ecrm):>8.2f}{min(ecrm) / limit:>8.1f}x")
        print(f"{'limit: COPY of the lines':<34}{limit:>8.2f}")
        print(f"parse alone (CPU s): column-wise {fast:.2f}, line by line {line:.2f} "
              f"({args.events / 1e3:,.0f}k events)")
    finally:
        wh.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
