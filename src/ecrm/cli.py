"""`ecrm`: the command line for engineers (warehouse, simulate, ingest, build, publish, report, demo)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, timedelta

from .intervals import day_interval, parse_day
from .settings import get_settings


def _warehouse(args) -> None:
    from .warehouse.embedded import EmbeddedWarehouse

    if args.action == "migrate":
        _migrate()
        return
    if args.action == "retention":
        _retention(args)
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
    from .warehouse.migrate import applied, migrate

    url = resolve_url()
    done = migrate(url)  # a MigrationError names the file: main() prints it as one line
    with connect(url) as conn:
        current = max(applied(conn))
    for m in done:
        print(f"applied {m.file}")
    print(f"warehouse at migration {current:04d}" + ("" if done else " (up to date, nothing applied)"))


def _retention(args) -> None:
    """Detach and drop the raw history's day partitions older than --keep-days (docs/scaling.md, Retention)."""
    from .warehouse import connect, resolve_url
    from .warehouse.migrate import require_migrated
    from .warehouse.retention import retention

    if args.keep_days is None:
        sys.exit("ecrm warehouse retention: --keep-days N is required")
    with connect(resolve_url()) as conn:
        require_migrated(conn)
        dropped = retention(conn, args.keep_days, args.as_of, dry_run=args.dry_run)
    verb = "would drop" if args.dry_run else "dropped"
    for partition in dropped:
        print(f"{verb} {partition.name} ({partition.day})")
    print(f"{verb} {len(dropped)} day partition(s) older than {args.keep_days} days")


def _simulate(args) -> None:
    from .simulate import ShopSimulator

    settings = get_settings()
    sim = ShopSimulator(landing=settings.landing, outbox=settings.outbox,
                        truth=settings.data_dir / "truth", start=args.start, customers=args.customers,
                        seed=args.seed, loyalty=True)
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
            from .quality.gate import QualityGateFailed

            try:
                result = pipeline.publish_segments(start, end, run_id="cli")
            except QualityGateFailed:  # as the DAG's compliance_push: the day's removals go out anyway
                pipeline.push_compliance(start, end, run_id="cli")
                raise
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


def _bi(args) -> None:
    from . import bi

    if args.action == "install":
        print(bi.install(quiet=False))
    elif args.action == "check":
        import psycopg

        manifest = bi.semantic_manifest(parse=True)  # the metrics as dbt defines them now
        bundle = bi.resolve_metrics(bi.load_bundle(), manifest)
        problems = bi.check_bundle(bundle, semantic=manifest)
        url = bi.reader_url()
        bi.check_reader(url)
        with psycopg.connect(url) as conn:
            for label, query in bi.reader_queries(bundle):
                try:
                    conn.execute(query).fetchall()
                except psycopg.Error as exc:
                    conn.rollback()
                    problems.append(f"{label}: {str(exc).splitlines()[0]}")
        if problems:
            raise bi.BiError("the bundle fails its checks:\n  " + "\n  ".join(problems))
        print("bundle ok: every dataset and chart reads as the BI login")
    elif args.action == "login":
        from .warehouse import resolve_url

        print(f"login {bi.create_login(resolve_url(), bi.reader_url())} has only {bi.BI_ROLE}")
    elif args.action == "stop":
        print("stopped" if bi.stop() else "no Superset started by `ecrm bi deploy`")
    else:
        for url in bi.deploy(start_if_down=not args.no_start):
            print(url)


def _run(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ecrm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    wh = sub.add_parser("warehouse", help="migrate the warehouse; start, stop, locate the embedded PostgreSQL")
    wh.add_argument("action", choices=["start", "stop", "status", "url", "migrate", "retention"],
                    help="migrate: create or upgrade the warehouse's tables (ECRM_WAREHOUSE_URL or the embedded one); "
                         "retention: drop the raw history's day partitions older than --keep-days")
    wh.add_argument("--keep-days", type=int, help="retention: keep this many days up to --as-of")
    wh.add_argument("--as-of", type=parse_day, default=None, help="retention: the last day kept (default: today, UTC)")
    wh.add_argument("--dry-run", action="store_true", help="retention: list the partitions, drop nothing")
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
    rep.add_argument("--out", default=None, help="folder for DAY/ (default ECRM_REPORTS)")
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

    bi = sub.add_parser("bi", help="Superset dashboards as code (bi/superset): install, deploy, check, login, stop")
    bi.add_argument("action", choices=["deploy", "install", "check", "login", "stop"],
                    help="deploy: install Superset in .superset-venv, initialise and start it when nothing answers at "
                         "ECRM_SUPERSET_URL, import the bundle (overwrite); install: the venv only; check: the bundle's "
                         "checks and every dataset and chart query as ECRM_BI_READER_URL; login: create that login with "
                         "only ecrm_bi_reader (as the warehouse's admin); stop: the Superset `deploy` started")
    bi.add_argument("--no-start", action="store_true", help="deploy: fail when nothing answers at ECRM_SUPERSET_URL")
    bi.set_defaults(func=_bi)

    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a known error too (anywhere on the command line)")

    args = parser.parse_args(argv)
    args.func(args)


# --- errors a user reads: one line on stderr and an exit code per known condition -------------------
# Exit codes of `ecrm` (docs/reliability.md, "Exit codes", is held to this table by
# tests/reliability/test_cli_errors.py): 0 done, 1 unexpected error (with its traceback), 2 wrong
# usage (argparse), 3 `warehouse status`: not running; then one code per known condition below.
# (module, class name, exit code, what it means). Matched by name along the exception's classes, so
# a failing command imports nothing more than it already had (ecrm.quality.gate, ecrm.pipeline...).
KNOWN_ERRORS: tuple[tuple[str, str, int, str], ...] = (
    ("ecrm.warehouse.migrate", "WarehouseNotMigrated", 10, "the warehouse lacks migrations: `ecrm warehouse migrate`"),
    ("ecrm.warehouse.migrate", "MigrationError", 11, "a migration file is misnamed, changed or failed, or the server's "
     "PostgreSQL is not 14 to 17 (UnsupportedPostgres)"),
    ("ecrm.sources", "FileError", 12, "a landing file was refused (named, with the line)"),
    ("ecrm.transform", "BuildAlreadyRunning", 13, "another build of this warehouse is running"),
    ("ecrm.pipeline", "PublishAlreadyRunning", 14, "another gate, publish or push of this warehouse is running"),
    ("ecrm.transform", "DbtBuildFailed", 15, "dbt build failed (a model, a test, or the configuration seeds)"),
    ("ecrm.quality.config", "GateConfigError", 16, "the quality gate's configuration is wrong"),
    ("ecrm.quality.gate", "QualityGateFailed", 17, "the quality gate blocked the day: nothing published"),
    ("ecrm.pipeline", "UnauditedTables", 18, "no passing gate of the day, or a build ran after it"),
    ("ecrm.publish", "PublishRefused", 19, "the built tables are not the run date's"),
    ("ecrm.report.data", "ReportDataMissing", 20, "the report's day (or the whole warehouse) is not built"),
    ("ecrm.mailer.http", "MailerError", 21, "the mailer push failed or its circuit breaker held an audience"),
    ("ecrm.warehouse.retention", "RetentionRefused", 22, "retention would drop history the marts re-read"),
    ("ecrm.bi", "BiError", 23, "`ecrm bi`: a setting is missing, the bundle fails its checks, or Superset refused it"),
)


def known_error(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, one-line message) of a known condition, None for anything else (a bug: traceback)."""
    names = {(cls.__module__, cls.__name__) for cls in type(exc).__mro__}
    for module, name, code, _meaning in KNOWN_ERRORS:
        if (module, name) in names:
            text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            return code, text or name
    return None


def main(argv: list[str] | None = None) -> None:
    """`ecrm`: run the command; a known condition ends it with one line on stderr and its exit code.

    A traceback is shown only with --debug (anywhere on the command line); unexpected errors keep
    theirs. Airflow calls the stages directly, so its task log still gets the exception."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        _run([a for a in argv if a != "--debug"])
    except Exception as exc:
        known = None if debug else known_error(exc)
        if known is None:
            raise
        code, text = known
        command = next((a for a in argv if not a.startswith("-")), "")
        print(f"ecrm {command}: {text}", file=sys.stderr)
        sys.exit(code)


if __name__ == "__main__":
    main()
