"""`ecrm`: the command line for engineers (warehouse, simulate, ingest, build, publish, report, demo)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, timedelta
from pathlib import Path

from .intervals import day_interval, parse_day
from .settings import get_settings


def _warehouse(args) -> None:
    from .warehouse.embedded import EmbeddedWarehouse

    if args.action == "migrate":
        _migrate()
        return
    wh = EmbeddedWarehouse(get_settings().embedded_dir)
    if args.action == "start":
        print(wh.start())
    elif args.action == "stop":
        wh.stop()
        print("stopped")
    elif args.action == "status":
        print(wh.status())
        sys.exit(0 if wh.is_running() else 3)
    elif args.action == "url":
        settings = get_settings()
        if settings.warehouse_url:
            print(settings.warehouse_url)
        elif wh.is_running():
            print(wh.url())
        else:
            sys.exit("the embedded warehouse is not running: `ecrm warehouse start`")


def _migrate() -> None:
    """Apply the pending migrations to ECRM_WAREHOUSE_URL or the embedded warehouse (started on demand)."""
    from .warehouse import connect, resolve_url
    from .warehouse.migrate import MigrationError, applied, migrate

    url = resolve_url()
    try:
        done = migrate(url)
    except MigrationError as exc:  # names the file: the whole story
        sys.exit(f"ecrm warehouse migrate: {exc}")
    with connect(url) as conn:
        current = max(applied(conn))
    for m in done:
        print(f"applied {m.file}")
    print(f"warehouse at migration {current:04d}" + ("" if done else " (up to date, nothing applied)"))


def _simulate(args) -> None:
    from .simulate import ShopSimulator

    settings = get_settings()
    sim = ShopSimulator(landing=Path(settings.landing), outbox=settings.outbox,
                        truth=settings.data_dir / "truth", start=args.start, customers=args.customers,
                        seed=args.seed)
    sim.write_initial()
    for offset in range(args.days):
        print(json.dumps({"day": (args.start + timedelta(days=offset)).isoformat(),
                          **sim.write_day(args.start + timedelta(days=offset))}, default=str))


def _stage(args) -> None:
    from . import pipeline

    settings = get_settings()
    if args.command == "ingest" and args.initial:
        result = pipeline.ingest_initial(args.day)
    else:
        start, end = day_interval(args.day)
        if args.command == "ingest" and args.file:
            result = pipeline.ingest_old_file(args.source, args.day, args.file, run_id="cli",
                                              allow_empty=args.allow_empty, allow_shrink=args.allow_shrink)
        elif args.command == "ingest" and args.source == "shop" and settings.shop_db_url:
            # The same choice as the DAG: with a shop database configured, orders come from it.
            result = pipeline.ingest_shop_db(start, end, settings.shop_db_url, run_id="cli")
        elif args.command == "ingest":
            result = pipeline.ingest_interval(args.source, start, end, run_id="cli", allow_empty=args.allow_empty,
                                              allow_shrink=args.allow_shrink)
        elif args.command == "build":
            result = pipeline.build_marts(start, end, run_id="cli")
        else:
            result = pipeline.publish_segments(start, end, run_id="cli")
    print(json.dumps(result, indent=2, default=str))


def _report(args) -> None:
    from .report import write_report

    print(json.dumps(write_report(args.day, out=args.out), indent=2))


def _docs(args) -> None:
    from .quality.docs import main as docs_main

    docs_main([*(["--port", str(args.port)] if args.port else []), *(["--no-serve"] if args.no_serve else [])])


def _demo(args) -> None:
    from .demo import run_demo

    run_demo(args.days, args.start, args.customers, args.seed, force=args.force)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ecrm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    wh = sub.add_parser("warehouse", help="migrate the warehouse; start, stop, locate the embedded PostgreSQL")
    wh.add_argument("action", choices=["start", "stop", "status", "url", "migrate"],
                    help="migrate: create or upgrade the warehouse's tables (ECRM_WAREHOUSE_URL or the embedded one)")
    wh.set_defaults(func=_warehouse)

    default_start = date(2026, 10, 1)
    sim = sub.add_parser("simulate", help="write a simulated shop's landing files")
    sim.add_argument("--start", type=parse_day, default=default_start)
    sim.add_argument("--days", type=int, default=14)
    sim.add_argument("--customers", type=int, default=5000)
    sim.add_argument("--seed", type=int, default=42)
    sim.set_defaults(func=_simulate)

    ing = sub.add_parser("ingest", help="load one source's files of one day (or the initial history export)")
    ing.add_argument("source", choices=["shop", "weblogs", "email"])
    ing.add_argument("day", type=parse_day, help="the UTC day (with --initial: the first daily day)")
    ing.add_argument("--initial", action="store_true", help="load landing/shop/initial (history before DAY)")
    ing.add_argument("--file", metavar="PATH",
                     help="load this one file for DAY and the days before it (lines quarantined as too_late)")
    ing.add_argument("--allow-empty", action="store_true",
                     help="let an empty file replace a day that has rows (otherwise that fails the load)")
    ing.add_argument("--allow-shrink", action="store_true",
                     help="let a re-delivered file replace its earlier load with fewer than ECRM_MIN_REPLACE_SHARE "
                          "(50%%) of its rows (otherwise that fails the load)")
    ing.set_defaults(func=_stage)

    for name, text in (("build", "dbt build as of DAY"), ("publish", "quality gate, publish and push for DAY")):
        stage = sub.add_parser(name, help=text)
        stage.add_argument("day", type=parse_day)
        stage.set_defaults(func=_stage)

    rep = sub.add_parser("report", help="write DAY's marketing report (index.html and email.html)")
    rep.add_argument("day", type=parse_day)
    rep.add_argument("--out", type=Path, default=None, help="folder for DAY/ (default ECRM_REPORTS)")
    rep.set_defaults(func=_report)

    demo = sub.add_parser("demo", help="simulate DAYS days and run every DAG for each through Airflow")
    demo.add_argument("--days", type=int, default=14)
    demo.add_argument("--start", type=parse_day, default=default_start)
    demo.add_argument("--customers", type=int, default=5000)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--force", action="store_true", help="rerun days that are already processed")
    demo.set_defaults(func=_demo)

    docs = sub.add_parser("docs", help="build the dbt docs and GX Data Docs and serve them locally")
    docs.add_argument("--port", type=int, default=None)
    docs.add_argument("--no-serve", action="store_true", help="build only")
    docs.set_defaults(func=_docs)

    args = parser.parse_args(argv)
    from .sources import FileError

    try:
        args.func(args)
    except FileError as exc:  # names the file (and line): the whole story, no traceback needed
        sys.exit(f"ecrm {args.command}: {exc}")


if __name__ == "__main__":
    main()
