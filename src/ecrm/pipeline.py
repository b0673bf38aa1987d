"""The daily pipeline's stages as plain functions: DAG tasks, the CLI and tests all call these.

Every function takes the run's explicit interval; none reads the clock to decide what to process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import UTC, date, datetime

from upath import UPath

from . import transform
from .intervals import day_interval, interval_day
from .load.ingest import day_folder, ingest
from .mailer.publish import publish
from .mailer.sync import sync_audiences
from .quality import gate
from .settings import get_settings
from .warehouse import apply_schema, connect, resolve_url

log = logging.getLogger(__name__)
SOURCES = ("shop", "weblogs", "email")
HISTORY_BEGINS = datetime(1970, 1, 1, tzinfo=UTC)
STAGES_DDL = """
create table if not exists ops.stage_runs (
    stage        text not null,
    run_date     date not null,
    run_id       text,
    detail       jsonb,
    finished_at  timestamptz not null default now(),
    primary key (stage, run_date)
);
"""


def landing_root() -> UPath:
    """The landing zone: a local folder or any fsspec URL (s3://...), from ECRM_LANDING."""
    return UPath(get_settings().landing)


def _mark_stage(conn, stage: str, day: date, run_id: str | None, detail: dict) -> None:
    from psycopg.types.json import Jsonb

    conn.execute(STAGES_DDL)
    conn.execute("insert into ops.stage_runs (stage, run_date, run_id, detail) values (%s, %s, %s, %s) "
                 "on conflict (stage, run_date) do update set run_id = excluded.run_id, detail = excluded.detail, "
                 "finished_at = now()", (stage, day, run_id, Jsonb(detail)))


def ingest_interval(source: str, start: datetime, end: datetime, run_id: str | None = None,
                    url: str | None = None, allow_empty: bool = False) -> dict:
    """Load `source`'s files of the day [start, end) from the landing zone."""
    day = interval_day(start, end)
    url = url or resolve_url()
    with connect(url) as conn:
        results = ingest(conn, source, day_folder(landing_root(), source, day), (start, end), run_id,
                         allow_empty=allow_empty)
        summary = {"source": source, "day": day.isoformat(), "files": [asdict(r) for r in results]}
        _mark_stage(conn, f"ingest_{source}", day, run_id, summary)
    return summary


def ingest_old_file(source: str, day: date, path: str, run_id: str | None = None, url: str | None = None,
                    allow_empty: bool = False) -> dict:
    """`ecrm ingest SOURCE DAY --file PATH`: load one file's lines of DAY and the days before it (what a
    `too_late` quarantine row asks for). Rebuild from DAY on afterwards (a backfill of build_marts):
    the daily builds only look back a few days."""
    from .load.ingest import ingest_file

    with connect(url or resolve_url()) as conn:
        results = ingest_file(conn, source, UPath(path), day, run_id, allow_empty=allow_empty)
    return {"source": source, "day": day.isoformat(), "files": [asdict(r) for r in results],
            "next": f"rebuild the marts from {day.isoformat()} on (ecrm build DAY for each day, or an Airflow "
                    "backfill of build_marts and publish_segments)"}


def ingest_shop_db(start: datetime, end: datetime, shop_url: str, run_id: str | None = None,
                   url: str | None = None, lookback_days: int | None = None) -> dict:
    """Pull the day's changes (plus a lookback) from the shop's database and load them."""
    from datetime import timedelta

    from .sources import shop_db

    day = interval_day(start, end)
    url = url or resolve_url()
    lookback = timedelta(days=lookback_days if lookback_days is not None else get_settings().orders_lookback_days)
    folder = day_folder(landing_root(), "shop_db", day)
    with connect(url) as conn:
        apply_schema(conn)
        window = shop_db.pull_window(conn, "shop_db", (start, end), lookback, HISTORY_BEGINS)
        shop_db.extract(shop_url, folder, window)
        results = ingest(conn, "shop", folder, window, run_id)
        shop_db.advance_watermark(conn, "shop_db", end)
        summary = {"source": "shop", "mode": "database", "day": day.isoformat(),
                   "window": [window[0].isoformat(), window[1].isoformat()], "files": [asdict(r) for r in results]}
        _mark_stage(conn, "ingest_shop", day, run_id, summary)
    return summary


def ingest_initial(start: date, url: str | None = None) -> dict:
    """One-off load of the shop's history export (landing/shop/initial): everything before `start`."""
    url = url or resolve_url()
    interval = (HISTORY_BEGINS, day_interval(start)[0])
    with connect(url) as conn:
        results = ingest(conn, "shop", day_folder(landing_root(), "shop", "initial"), interval, "initial")
    return {"source": "shop", "files": [asdict(r) for r in results]}


def stages_done(stages: list[str], day: date, url: str | None = None) -> bool:
    """Have all `stages` finished for `day`? (Sensors poke this instead of Airflow cross-DAG state.)"""
    with connect(url or resolve_url()) as conn:
        apply_schema(conn)
        conn.execute(STAGES_DDL)
        done = conn.execute("select count(*) from ops.stage_runs where run_date = %s and stage = any(%s)",
                            (day, stages)).fetchone()[0]
    return done == len(stages)


def day_is_current(day: date, url: str | None = None, orders_folder: str = "shop") -> bool:
    """Was `day` fully processed after its current landing files were loaded?

    True when every landing file of the day is in the ledger (same checksum, loaded) and the day
    was published after its last load. Lets `make demo` skip days when nothing changed.
    """
    from .load.ingest import SOURCES as FILE_KINDS
    from .load.ingest import checksum, find_files

    folders = {"shop": orders_folder, "weblogs": "weblogs", "email": "email"}
    checksums = [checksum(path)[0]
                 for source in SOURCES for _kind, patterns in FILE_KINDS[source]
                 for path in find_files(day_folder(landing_root(), folders[source], day), patterns)]
    if not checksums:
        return False
    with connect(url or resolve_url()) as conn:
        apply_schema(conn)
        conn.execute(STAGES_DDL)
        known = conn.execute("select count(distinct checksum) from ops.load_ledger where checksum = any(%s) "
                             "and status in ('succeeded', 'skipped_duplicate')", (checksums,)).fetchone()[0]
        # Stage rows are keyed by the day they processed (a load's ledger interval can be wider: the
        # orders pull re-reads a lookback window).
        published_after_loads = conn.execute(
            "select exists (select 1 from ops.stage_runs p where p.stage = 'publish_segments' and p.run_date = %s "
            "and p.finished_at >= all (select i.finished_at from ops.stage_runs i "
            "where i.run_date = %s and i.stage like 'ingest_%%'))", (day, day)).fetchone()[0]
    return known == len(set(checksums)) and published_after_loads


def build_marts(start: datetime, end: datetime, run_id: str | None = None, url: str | None = None) -> dict:
    """The day's dbt build with the lifetime-value forecast in the middle (transform.build): the
    models the forecast reads, the forecast (stage `predict`), the models that read it (stage
    `build_marts` when all is done)."""
    day = interval_day(start, end)
    url = url or resolve_url()
    forecast: dict = {}

    def predict() -> None:
        forecast.update(predict_customers(start, end, run_id, url))

    # transform.build holds the warehouse's build lock: a concurrent build raises BuildAlreadyRunning.
    started = time.monotonic()
    counts = transform.build(day, url, {"holdout_pct": get_settings().holdout_pct}, run_id=run_id,
                             forecast=predict)
    dbt_steps = [step for step in transform.last_build if step["command"] == "build"]
    predict_seconds = sum(step["seconds"] for step in transform.last_build if step["command"] == "forecast")
    # seconds / parse: where a day's time goes (`make demo` sums them; partial parsing kept or not)
    timing = {"seconds": {"build": round(time.monotonic() - started - predict_seconds, 3),
                          "predict": round(predict_seconds, 3)},
              "dbt_invocation_seconds": [step["seconds"] for step in dbt_steps],
              "parse": "partial" if all(step.get("parse") == "partial" for step in dbt_steps) else "full"}
    with connect(url) as conn:
        _mark_stage(conn, "build_marts", day, run_id, {**counts, **timing})
    return {"day": day.isoformat(), "dbt": counts, "forecast": forecast, **timing}


def predict_customers(start: datetime, end: datetime, run_id: str | None = None, url: str | None = None) -> dict:
    """The lifetime-value forecast as of the day (ecrm.predict); build_marts runs it between the dbt
    models it reads and those that read it."""
    from .predict.stage import run as predict

    day = interval_day(start, end)
    with connect(url or resolve_url()) as conn:
        result = predict(conn, day)
        _mark_stage(conn, "predict", day, run_id, result)
    return result


def _latest_published_after(conn, day: date) -> date | None:
    exists = conn.execute("select to_regclass('ops.publish_runs') is not null").fetchone()[0]
    if not exists:
        return None
    return conn.execute("select max(as_of_date) from ops.publish_runs where as_of_date > %s", (day,)).fetchone()[0]


class PublishAlreadyRunning(RuntimeError):
    """Another publish of this warehouse is running (gate, publish and push are one unit)."""


PUBLISH_LOCK = "ecrm-publish"  # session-level advisory lock: one gate + publish + push per warehouse at a time


def publish_segments(start: datetime, end: datetime, run_id: str | None = None, url: str | None = None) -> dict:
    """Quality gate, then publish and push; a failed gate raises and leaves yesterday's audiences as they are.

    Publishes of one warehouse are serialised and a second one fails fast: two at once would audit,
    swap and push under each other (and share the GX project's files)."""
    day = interval_day(start, end)
    url = url or resolve_url()
    with connect(url) as conn:
        if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", (PUBLISH_LOCK,)).fetchone()[0]:
            raise PublishAlreadyRunning(f"another publish of this warehouse is running; {day} was not published "
                                        "by this run (retry when it has finished)")
        try:
            return _publish_locked(conn, url, day, run_id)
        finally:
            conn.execute("select pg_advisory_unlock(hashtext(%s))", (PUBLISH_LOCK,))


def _publish_locked(conn, url: str, day: date, run_id: str | None) -> dict:
    settings = get_settings()
    seconds: dict[str, float] = {}
    clock = time.monotonic()
    # The build lock from the gate to the publish: a dbt build running meanwhile would replace the
    # tables between the audit and the copy, publishing rows the gate never saw. Fails fast
    # (BuildAlreadyRunning, naming the build) like a second build; the push below needs no lock.
    with transform.build_lock(url, day, run_id, action="publish"):
        checks = gate.enforce(conn, url, day)
        seconds["gate"] = round(time.monotonic() - clock, 3)
        later = _latest_published_after(conn, day)
        if later:
            # Rerunning a past day (a backfill) must not roll the published audiences and the ESP back
            # to older segments: it re-audits the day and leaves what is published and pushed alone.
            detail = {"day": day.isoformat(), "checks_passed": sum(c.passed for c in checks),
                      "checks": len(checks), "skipped": f"{later.isoformat()} is already published; "
                      "a past day is audited, not re-published", "seconds": seconds}
            _mark_stage(conn, "publish_segments", day, run_id, detail)
            return detail
        clock = time.monotonic()
        counts = publish(conn, day)
        seconds["publish"] = round(time.monotonic() - clock, 3)
    clock = time.monotonic()
    mailer = sync_audiences(conn, day)  # ECRM_MAILER: outbox (default), listmonk or mailchimp
    detail = {"day": day.isoformat(), "checks_passed": sum(c.passed for c in checks), "checks": len(checks),
              "audiences": counts, "outbox": str(settings.outbox / day.isoformat()),
              "manifest": mailer.get("manifest"),
              "mailer": {k: v for k, v in mailer.items() if k != "manifest"}}
    seconds["push"] = round(time.monotonic() - clock, 3)
    detail["seconds"] = seconds
    _mark_stage(conn, "publish_segments", day, run_id, detail)
    return detail
