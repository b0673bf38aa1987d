"""`make demo`: simulate a shop day by day and run every DAG for every day through real Airflow.

Order per day: the simulator writes the day's files (reading yesterday's outbox to send the next
campaign), then ingest_orders, ingest_web_logs, ingest_email_events, build_marts and
publish_segments run for that day with `dag.test()` in this one process.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .settings import get_settings, storage_path

console = Console()


def run_demo(days: int, start: date, customers: int = 5000, seed: int = 42, force: bool = False) -> None:
    import warnings

    from . import airflow_env
    from .pipeline import day_is_current, ingest_initial
    from .simulate import ShopSimulator
    from .simulate.shop_db import apply_changes
    from .warehouse import resolve_url
    from .warehouse.embedded import EmbeddedWarehouse
    from .warehouse.migrate import migrate

    # Airflow and its providers warn about their own deprecated internals: noise for a demo user.
    warnings.filterwarnings("ignore", message=".*deprecated.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    settings = get_settings()
    t0 = time.monotonic()
    url = resolve_url(settings)
    console.print(f"[bold]warehouse[/] {_redact(url)}")
    applied = migrate(url)  # `ecrm warehouse migrate`; the DAGs' first task checks again
    console.print(f"[bold]migrations[/] {', '.join(m.file for m in applied) or 'up to date'}")
    sim = ShopSimulator(landing=settings.landing, outbox=settings.outbox,
                        truth=settings.data_dir / "truth", start=start, customers=customers, seed=seed,
                        flow_daily_uplift=DEMO_FLOW_DAILY_UPLIFT, loyalty=True)
    # With the embedded warehouse, a second database on it plays the shop's own database, and orders
    # are pulled from it by watermark (the first pull takes the history); otherwise export files.
    shop_url = None if settings.warehouse_url else EmbeddedWarehouse(settings.embedded_dir).create_database("shop")
    airflow_env.configure(url, shop_db_url=shop_url)
    with console.status("simulating the shop's history and loading it (initial export)"):
        sim.write_initial()
        if shop_url:
            apply_changes(shop_url, storage_path(settings.landing) / "shop" / "initial")
        else:
            ingest_initial(start, url=url)
    with console.status("loading Airflow DAGs"):
        dags = airflow_env.load_dags()
    failures: list[str] = []
    skipped = 0
    dag_seconds: dict[str, float] = {}  # wall time of each DAG's runs (Airflow's own overhead included)
    setup_seconds = time.monotonic() - t0
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
                  TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task("daily pipeline", total=days * len(airflow_env.DAG_ORDER))
        for offset in range(days):
            day = start + timedelta(days=offset)
            sim.write_day(day)
            if shop_url:
                apply_changes(shop_url, storage_path(settings.landing) / "shop" / day.isoformat())
            if not force and day_is_current(day, url, orders_folder="shop_db" if shop_url else "shop"):
                skipped += 1
                progress.advance(bar, len(airflow_env.DAG_ORDER))
                continue
            for dag_id in airflow_env.DAG_ORDER:
                progress.update(bar, description=f"{day} {dag_id:<20}")
                started = time.monotonic()
                run = airflow_env.run_day(dags, dag_id, day)
                dag_seconds[dag_id] = dag_seconds.get(dag_id, 0.0) + time.monotonic() - started
                if str(run.state) != "success":
                    failures.append(f"{day} {dag_id}: {run.state}")
                progress.advance(bar)
    if skipped:
        console.print(f"{skipped} day(s) skipped: already processed and their files unchanged (--force reruns them)")
    summarize(url, start + timedelta(days=days - 1), time.monotonic() - t0, failures)
    print_stage_times(url, start, start + timedelta(days=days - 1), dag_seconds, setup_seconds)
    if failures:
        raise SystemExit(f"{len(failures)} DAG run(s) failed: " + "; ".join(failures))


# (label, DAG, key of ops.stage_runs.detail->'seconds' of the DAG's stage (named as the DAG), or None:
# the DAG runs' wall time)
STAGE_ROWS = [
    ("ingest orders", "ingest_orders", None),
    ("ingest web logs", "ingest_web_logs", None),
    ("ingest e-mail events", "ingest_email_events", None),
    ("build (dbt, two invocations)", "build_marts", "build"),
    ("forecast (between them)", "build_marts", "predict"),
    ("gate (GX)", "publish_segments", "gate"),
    ("publish", "publish_segments", "publish"),
    ("push (mailer)", "publish_segments", "push"),
]


def stage_seconds(url: str, first: date, last: date) -> dict[tuple[str, str], float]:
    """(stage, part) -> seconds summed over [first, last], from ops.stage_runs.detail->'seconds'."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select stage, key, sum(value::numeric)::float8 from ops.stage_runs, "
            "jsonb_each_text(coalesce(detail->'seconds', '{}')) where run_date between %s and %s "
            "group by stage, key", (first, last)).fetchall()
    return {(stage, key): float(total) for stage, key, total in rows}


def print_stage_times(url: str, first: date, last: date, dag_seconds: dict[str, float], setup: float) -> None:
    """Where the run's time went: each stage's total over the days run (issue 21)."""
    inner = stage_seconds(url, first, last)
    runs = max(1, (last - first).days + 1)
    table = Table(title=f"Time per stage, total over {runs} day(s)")
    for col in ("stage", "total s", "per day s", "DAG run s (with Airflow)"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    table.add_row("set-up (history, Airflow, DAGs)", f"{setup:.1f}", "", "")
    shown_dags: set[str] = set()
    for label, dag_id, key in STAGE_ROWS:
        total = dag_seconds.get(dag_id, 0.0) if key is None else inner.get((dag_id, key), 0.0)
        wall = "" if dag_id in shown_dags or dag_id not in dag_seconds else f"{dag_seconds[dag_id]:.1f}"
        shown_dags.add(dag_id)
        table.add_row(label, f"{total:.1f}", f"{total / runs:.2f}", wall)
    console.print(table)


SUMMARY_KPIS = [
    ("sent", "sent_at"), ("recipients", "recipients"), ("delivery rate", "delivery_rate"),
    ("human open rate", "open_rate"), ("click rate", "click_rate"), ("unsubscribe rate", "unsubscribe_rate"),
    ("converters", "converters"), ("attributed revenue", "attributed_revenue"),
    ("treated conversion", "treated_conversion_rate"), ("holdout conversion", "holdout_conversion_rate"),
    ("absolute lift", "absolute_lift"), ("lift 95% CI low", "absolute_lift_ci_lower"),
    ("lift 95% CI high", "absolute_lift_ci_upper"), ("attribution window complete", "is_attribution_window_complete"),
]


# The demo's simulated lifecycle flows work (ecrm.simulate.flows): +1 point of daily order probability
# for 14 days after a treated entrant's push, so the flows' lift next to its truth means something.
DEMO_FLOW_DAILY_UPLIFT = 0.01


def print_flows(url: str, last_day: date, truth_dir: Path) -> None:
    """Per flow: entrants of the last 90 days by group, the measured lift and 95% CI, and the simulator's
    truth (the mean true uplift of the same cohorts' pushed entrants, truth/flows.json)."""
    import json

    import psycopg

    with psycopg.connect(url) as conn:
        if conn.execute("select to_regclass('marts.fct_flow_kpis_periods') is null").fetchone()[0]:
            return
        rows = conn.execute(
            "select flow, treated_entrants, holdout_entrants, absolute_lift, absolute_lift_ci_lower, "
            "absolute_lift_ci_upper, open_window_cohorts, first_entry_date from marts.fct_flow_kpis_periods "
            "where period = 'last_90d' order by flow").fetchall()
    path = truth_dir / "flows.json"
    cohorts = json.loads(path.read_text()).get("cohorts", []) if path.exists() else []
    table = Table(title=f"Lifecycle flows, entries of the 90 days to {last_day} (lift: 14-day conversion)")
    for col in ("flow", "treated", "held out", "lift", "95% CI", "open windows", "truth"):
        table.add_column(col, justify="left" if col == "flow" else "right")
    for flow, treated, held, lift, low, high, open_cohorts, first in rows:
        mine = [c for c in cohorts if c["flow"] == flow and first.isoformat() <= c["entry_day"] <= last_day.isoformat()]
        n = sum(c["treated"] for c in mine)
        truth = f"{sum(c['true_uplift'] * c['treated'] for c in mine) / n:.2%}" if n else "-"
        interval = f"[{float(low):.2%}, {float(high):.2%}]" if low is not None else "-"
        table.add_row(flow, str(treated), str(held), f"{float(lift):.2%}" if lift is not None else "-", interval,
                      str(open_cohorts), truth)
    console.print(table)


def _fmt(value, key: str) -> str:
    if key.endswith(("_rate", "_lift", "_lower", "_upper")) or key == "absolute_lift":
        return f"{float(value):.2%}"
    return str(value)


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url


def summarize(url: str, last_day: date, seconds: float, failures: list[str]) -> None:
    import psycopg

    settings = get_settings()
    with psycopg.connect(url) as conn:
        loads = conn.execute(
            "select source, count(*) filter (where status = 'succeeded'), coalesce(sum(rows_read), 0), "
            "coalesce(sum(rows_loaded), 0), coalesce(sum(rows_quarantined), 0) from ops.load_ledger "
            "where status in ('succeeded', 'skipped_duplicate') group by source order by source").fetchall()
        codes = conn.execute(
            "select source, string_agg(reason_code || ' ' || n, ', ' order by n desc, reason_code) from ("
            "select source, coalesce(reason_code, 'uncoded') as reason_code, count(*) as n, row_number() over "
            "(partition by source order by count(*) desc, coalesce(reason_code, 'uncoded')) as rank "
            "from quarantine.rejected_rows group by 1, 2) as ranked where rank <= 3 group by source").fetchall()
        segments = conn.execute(
            "select segment, count(*) from marts.fct_customer_rfm_daily where snapshot_date = %s "
            "group by segment order by 2 desc", (last_day,)).fetchall()
        campaign = conn.execute(
            "select * from marts.fct_campaign_kpis order by sent_at desc limit 1").fetchone()
        campaign_cols = [d.name for d in conn.execute("select * from marts.fct_campaign_kpis limit 0").description]
    table = Table(title="Rows per source (all days)")
    for col in ("source", "files", "read", "loaded", "quarantined", "top reason codes"):
        table.add_column(col, justify="left" if col in ("source", "top reason codes") else "right")
    top_codes = dict(codes)
    for row in loads:
        table.add_row(*(str(v) for v in row), top_codes.get(row[0], ""))
    console.print(table)
    seg = Table(title=f"Customers per RFM segment on {last_day}")
    seg.add_column("segment")
    seg.add_column("customers", justify="right")
    for name, count in segments:
        seg.add_row(name, str(count))
    console.print(seg)
    if campaign:
        kpis = dict(zip(campaign_cols, campaign, strict=True))
        shown = Table(title=f"Last campaign: {kpis.get('campaign_id')} (audience {kpis.get('audience')})")
        shown.add_column("kpi")
        shown.add_column("value", justify="right")
        for label, key in SUMMARY_KPIS:
            value = kpis.get(key)
            if value is not None:
                shown.add_row(label, _fmt(value, key))
        console.print(shown)
    else:
        console.print("no campaign yet: run more days (a campaign is sent on the 2nd day, results follow)")
    print_flows(url, last_day, settings.data_dir / "truth")
    console.print(f"pushed audiences: {settings.outbox / last_day.isoformat()}  (CSV per audience + manifest.json)")
    console.print(f"open the warehouse: [bold]psql '{_redact(url)}'[/]  e.g. "
                  "select * from published.audience_members limit 10;")
    status = "[red]with failures[/]" if failures else "[green]all DAG runs succeeded[/]"
    report = settings.reports / last_day.isoformat() / "index.html"
    if not report.exists() and not failures:  # days skipped as already processed
        from .report import write_report

        report = storage_path(write_report(last_day, url)["index"])
    console.print(f"done in {seconds:.0f} s, {status}")
    if report.exists():
        console.print(f"marketing report: [bold]{report}[/]  (to mail: {report.with_name('email.eml')})")
