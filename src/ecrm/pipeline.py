"""The daily pipeline's stages as plain functions: DAG tasks, the CLI and tests all call these.

Every function takes the run's explicit interval; none reads the clock to decide what to process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime

from upath import UPath

from . import lineage, transform
from .intervals import day_interval, interval_day
from .load.ingest import day_folder, ingest
from .mailer.sync import sync_audiences, sync_compliance
from .publish import publish
from .quality import gate
from .settings import get_settings
from .warehouse import connect, resolve_url
from .warehouse.migrate import require_migrated

log = logging.getLogger(__name__)
SOURCES = ("shop", "weblogs", "email")
HISTORY_BEGINS = datetime(1970, 1, 1, tzinfo=UTC)


def landing_root() -> UPath:
    """The landing zone: a local folder or any fsspec URL (s3://...), from ECRM_LANDING."""
    return UPath(get_settings().landing)


def _mark_stage(conn, stage: str, day: date, run_id: str | None, detail: dict) -> None:
    from psycopg.types.json import Jsonb

    conn.execute("insert into ops.stage_runs (stage, run_date, run_id, detail) values (%s, %s, %s, %s) "
                 "on conflict (stage, run_date) do update set run_id = excluded.run_id, detail = excluded.detail, "
                 "finished_at = now()", (stage, day, run_id, Jsonb(detail)))


def ingest_interval(source: str, start: datetime, end: datetime, run_id: str | None = None,
                    url: str | None = None, allow_empty: bool = False, allow_shrink: bool = False) -> dict:
    """Load `source`'s files of the day [start, end) from the landing zone (`allow_empty`,
    `allow_shrink`: what a re-delivered file may do to its earlier load, ecrm.load.ingest.Permits)."""
    day = interval_day(start, end)
    url = url or resolve_url()
    landing = landing_root()
    with connect(url) as conn:
        results = ingest(conn, source, day_folder(landing, source, day), (start, end), run_id,
                         allow_empty=allow_empty, allow_shrink=allow_shrink, landing=landing)
        if source == "shop":
            results += _ingest_loyalty(conn, day, (start, end), run_id, landing, allow_empty, allow_shrink)
        summary = {"source": source, "day": day.isoformat(), "files": [asdict(r) for r in results]}
        _mark_stage(conn, f"ingest_{source}", day, run_id, summary)
    return summary


def _ingest_loyalty(conn, day: date, interval, run_id, landing, allow_empty: bool = False,
                    allow_shrink: bool = False) -> list:
    """The loyalty app's ledger of the day (landing/loyalty/DAY/ledger.*), loaded with the shop's files so
    the build waits for one stage (docs/decisions.md); no folder, no program: nothing is loaded."""
    return ingest(conn, "loyalty", day_folder(landing, "loyalty", day), interval, run_id,
                  allow_empty=allow_empty, allow_shrink=allow_shrink, landing=landing)


def ingest_old_file(source: str, day: date, path: str, run_id: str | None = None, url: str | None = None,
                    allow_empty: bool = False, allow_shrink: bool = False) -> dict:
    """`ecrm ingest SOURCE DAY --file PATH`: load one file's lines of DAY and the days before it (what a
    `too_late` quarantine row asks for). Rebuild from DAY on afterwards (a backfill of build_marts):
    the daily builds only look back a few days."""
    from .load.ingest import ingest_file

    with connect(url or resolve_url()) as conn:
        results = ingest_file(conn, source, UPath(path), day, run_id, allow_empty=allow_empty,
                              allow_shrink=allow_shrink, landing=landing_root())
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
    landing = landing_root()
    folder = day_folder(landing, "shop_db", day)
    with connect(url) as conn:
        require_migrated(conn)
        window = shop_db.pull_window(conn, "shop_db", (start, end), lookback, HISTORY_BEGINS)
        shop_db.extract(shop_url, folder, window)
        results = ingest(conn, "shop", folder, window, run_id, landing=landing)
        results += _ingest_loyalty(conn, day, (start, end), run_id, landing)
        shop_db.advance_watermark(conn, "shop_db", end)
        summary = {"source": "shop", "mode": "database", "day": day.isoformat(),
                   "window": [window[0].isoformat(), window[1].isoformat()], "files": [asdict(r) for r in results]}
        _mark_stage(conn, "ingest_shop", day, run_id, summary)
    return summary


def ingest_initial(start: date, url: str | None = None) -> dict:
    """One-off load of the shop's history export (landing/shop/initial): everything before `start`."""
    url = url or resolve_url()
    interval = (HISTORY_BEGINS, day_interval(start)[0])
    landing = landing_root()
    with connect(url) as conn:
        results = ingest(conn, "shop", day_folder(landing, "shop", "initial"), interval, "initial", landing=landing)
    return {"source": "shop", "files": [asdict(r) for r in results]}


def stages_done(stages: list[str], day: date, url: str | None = None) -> bool:
    """Have all `stages` finished for `day`? (Sensors poke this instead of Airflow cross-DAG state.)"""
    with connect(url or resolve_url()) as conn:
        require_migrated(conn)
        done = conn.execute("select count(*) from ops.stage_runs where run_date = %s and stage = any(%s)",
                            (day, stages)).fetchone()[0]
    return done == len(stages)


def day_is_current(day: date, url: str | None = None, orders_folder: str = "shop") -> bool:
    """Was `day` fully processed after its current landing files were loaded?

    True when every landing file of the day is in the ledger (same checksum, loaded) and the day
    was published after its last load. Lets `make demo` skip days when nothing changed.
    """
    from .load.ingest import SOURCES as FILE_KINDS
    from .load.ingest import checksum, find_files, landing_file
    from .sources import FileError

    folders = {"shop": orders_folder, "weblogs": "weblogs", "email": "email"}
    landing = landing_root()
    paths = [path for source in SOURCES for _kind, patterns in FILE_KINDS[source]
             for path in find_files(day_folder(landing, folders[source], day), patterns)]
    try:
        for path in paths:
            landing_file(path, landing)
        checksums = [checksum(path)[0] for path in paths]
    except (FileError, OSError):  # a file the load refuses: the day is not current, its load says why
        return False
    if not checksums:
        return False
    with connect(url or resolve_url()) as conn:
        require_migrated(conn)
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


PREDICT_INPUTS = ("intermediate.int_orders_as_of", "marts.fct_clv_model_fits")
PREDICT_OUTPUTS = ("marts.fct_clv_model_fits", "marts.fct_customer_predictions_daily", "marts.fct_clv_forecast_daily",
                   "marts.fct_clv_backtest_runs", "marts.fct_clv_backtest")


def predict_customers(start: datetime, end: datetime, run_id: str | None = None, url: str | None = None) -> dict:
    """The lifetime-value forecast as of the day (ecrm.predict); build_marts runs it between the dbt
    models it reads and those that read it."""
    from .predict.stage import run as predict

    day = interval_day(start, end)
    started = time.monotonic()
    url = url or resolve_url()
    with connect(url) as conn, lineage.job("ecrm.predict", "the lifetime-value forecast (BG/NBD + Gamma-Gamma)") as run:
        require_migrated(conn)
        result = predict(conn, day)
        if run:  # the valid orders in, the forecast's marts out (ecrm.predict.stage)
            run.read(*(lineage.table(url, t) for t in PREDICT_INPUTS))
            run.wrote(*(lineage.table(url, t) for t in PREDICT_OUTPUTS))
        result["seconds"] = {"predict": round(time.monotonic() - started, 3)}
        _mark_stage(conn, "predict", day, run_id, result)
    return result


def _latest_published_after(conn, day: date) -> date | None:
    return conn.execute("select max(as_of_date) from ops.publish_runs where as_of_date > %s", (day,)).fetchone()[0]


class PublishAlreadyRunning(RuntimeError):
    """Another gate, publish or push of this warehouse is running."""


class UnauditedTables(RuntimeError):
    """No passing gate of the day is recorded, or a build ran after it: the tables are not the audited ones."""


PUBLISH_LOCK = "ecrm-publish"  # session-level advisory lock: one gate, publish or push per warehouse at a time


@contextmanager
def _publishing(url: str, day: date) -> Iterator:
    """A connection holding PUBLISH_LOCK; raises PublishAlreadyRunning at once when it is taken.

    Publishes of one warehouse are serialised and a second one fails fast: two at once would audit,
    swap and push under each other (and share the GX project's files)."""
    with connect(url) as conn:
        require_migrated(conn)
        if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", (PUBLISH_LOCK,)).fetchone()[0]:
            raise PublishAlreadyRunning(f"another publish of this warehouse is running; {day} was not published "
                                        "by this run (retry when it has finished)")
        try:
            yield conn
        finally:
            conn.execute("select pg_advisory_unlock(hashtext(%s))", (PUBLISH_LOCK,))


def gate_segments(start: datetime, end: datetime, run_id: str | None = None, url: str | None = None) -> dict:
    """Stage 1 of 3: the quality gate audits the built tables of the day; raises QualityGateFailed if a
    blocking check fails. A pass is recorded (ops.stage_runs, stage `gate`) with the time it audited."""
    day, url = interval_day(start, end), url or resolve_url()
    with _publishing(url, day) as conn:
        return _gate(conn, url, day, run_id)


def publish_audited(start: datetime, end: datetime, run_id: str | None = None, url: str | None = None) -> dict:
    """Stage 2 of 3: replace the published tables with the day's audited rows (ecrm.publish).

    Refuses (UnauditedTables) when no gate of the day passed or a build ran after it. A past day (a
    later day is already published) is not re-published: the published audiences never roll back."""
    day, url = interval_day(start, end), url or resolve_url()
    with _publishing(url, day) as conn:
        return _publish(conn, url, day, run_id)


def push_published(start: datetime, end: datetime, run_id: str | None = None, url: str | None = None) -> dict:
    """Stage 3 of 3: push the published audiences to the mailer (ECRM_MAILER). Resumable: a rerun after
    a failure sends only what the ESP has not confirmed. Records the day's `publish_segments` row."""
    day, url = interval_day(start, end), url or resolve_url()
    with _publishing(url, day) as conn:
        return _push(conn, day, run_id)


def push_compliance(start: datetime, end: datetime, run_id: str | None = None, url: str | None = None) -> dict:
    """When the gate blocked the day (the DAG runs this only then): send the day's compliance removals
    anyway -- unsubscribed, complained, hard-bounced, consent withdrawn -- decided from what was loaded
    (raw.*), not from the refused marts; removals only (ecrm.mailer.sync.sync_compliance). Publishes
    nothing. Idempotent: a rerun sends nothing twice. Records the stage `compliance_push`."""
    day, url = interval_day(start, end), url or resolve_url()
    with _publishing(url, day) as conn:
        return _push_compliance(conn, day, run_id)


def publish_segments(start: datetime, end: datetime, run_id: str | None = None, url: str | None = None) -> dict:
    """Gate, publish and push in a row (the CLI, tests); the DAG runs them as three tasks.

    A failed gate raises and leaves yesterday's audiences as they are."""
    day, url = interval_day(start, end), url or resolve_url()
    with _publishing(url, day) as conn:
        _gate(conn, url, day, run_id)
        _publish(conn, url, day, run_id)
        return _push(conn, day, run_id)


def _stage_detail(conn, stage: str, day: date) -> dict | None:
    row = conn.execute("select detail from ops.stage_runs where stage = %s and run_date = %s", (stage, day)).fetchone()
    return row[0] if row else None


def _gate(conn, url: str, day: date, run_id: str | None) -> dict:
    clock = time.monotonic()
    # The gate holds the build lock while it audits: no build replaces a table under it.
    with transform.build_lock(url, day, run_id, action="gate") as lock_id:
        conn.execute("delete from ops.stage_runs where stage = 'gate' and run_date = %s", (day,))  # no stale pass
        audited_at = conn.execute("select clock_timestamp()").fetchone()[0]
        checks = gate.enforce(conn, url, day)
    detail = {"day": day.isoformat(), "checks_passed": sum(c.passed for c in checks), "checks": len(checks),
              "audited_at": audited_at.isoformat(), "lock_id": lock_id,
              "seconds": {"gate": round(time.monotonic() - clock, 3)}}
    if withheld := gate.withheld(checks):  # e.g. the forecast could not be trusted: publish the rest
        detail["withheld"] = withheld
    _mark_stage(conn, "gate", day, run_id, detail)
    return detail


def _check_audited(conn, day: date) -> dict:
    """The day's passing gate, if no build ran after it; else raise UnauditedTables.

    A build that held the build lock after the gate took it finished after the gate's `audited_at`
    (the lock serialises them); refused builds never held it. Call this holding the build lock."""
    audit = _stage_detail(conn, "gate", day)
    if audit is None:
        raise UnauditedTables(f"cannot publish {day}: no passing quality gate of {day} is recorded "
                              "(ops.stage_runs); run the gate first")
    later = conn.execute(
        "select run_date, run_id, status, finished_at from ops.build_runs where action = 'build' "
        "and status not in ('starting', 'refused') and coalesce(finished_at, 'infinity') > %s::timestamptz "
        "order by build_id limit 1", (audit["audited_at"],)).fetchone()
    if later:
        raise UnauditedTables(
            f"cannot publish {day}: a build of {later[0]} (run_id {later[1] or '?'}, {later[2]}"
            f"{f' at {later[3]:%Y-%m-%d %H:%M:%S %Z}' if later[3] else ''}) ran after the quality gate of {day} "
            f"audited the tables ({audit['audited_at']}); the tables are not the audited ones: "
            "run the gate again, then publish")
    return audit


def _publish(conn, url: str, day: date, run_id: str | None) -> dict:
    clock = time.monotonic()
    # The build lock again: the tables published are the ones the gate audited (checked under it).
    with transform.build_lock(url, day, run_id, action="publish"):
        audit = _check_audited(conn, day)
        detail = {"day": day.isoformat(), "audited_at": audit["audited_at"]}
        later = _latest_published_after(conn, day)
        if later:
            # Rerunning a past day (a backfill) must not roll the published audiences and the ESP back
            # to older segments: it re-audits the day and leaves what is published and pushed alone.
            detail["skipped"] = f"{later.isoformat()} is already published; a past day is audited, not re-published"
        else:
            detail["audiences"] = publish(conn, day, withheld=audit.get("withheld"))
            if audit.get("withheld"):
                detail["withheld"] = conn.execute("select withheld from ops.publish_runs where as_of_date = %s",
                                                  (day,)).fetchone()[0]
    detail["seconds"] = {"publish": round(time.monotonic() - clock, 3)}
    _mark_stage(conn, "publish", day, run_id, detail)
    return detail


def _push(conn, day: date, run_id: str | None) -> dict:
    clock = time.monotonic()
    audit, published = _stage_detail(conn, "gate", day) or {}, _stage_detail(conn, "publish", day) or {}
    seconds = {**audit.get("seconds", {}), **published.get("seconds", {})}
    detail = {"day": day.isoformat(), "checks_passed": audit.get("checks_passed"), "checks": audit.get("checks")}
    later = _latest_published_after(conn, day)
    if published.get("skipped") or later:
        detail["skipped"] = published.get("skipped") or (f"{later.isoformat()} is already published; "
                                                         "a past day is audited, not re-published")
    else:
        with lineage.job("ecrm.mailer_push", "push the published audiences to the mailer (dbt exposure "
                                             "mailer_audience_push)") as run:
            mailer = sync_audiences(conn, day)  # ECRM_MAILER: outbox (default), listmonk or mailchimp
            if run:
                run.read(lineage.table(lineage.conn_url(conn), "published.audience_members"))
                run.wrote(*_mailer_datasets(mailer, day))
        detail.update({"audiences": published.get("audiences"),
                       "outbox": str(get_settings().outbox / day.isoformat()), "manifest": mailer.get("manifest"),
                       "mailer": {k: v for k, v in mailer.items() if k != "manifest"}})
        if published.get("withheld"):
            detail["withheld"] = published["withheld"]
    detail["seconds"] = {**seconds, "push": round(time.monotonic() - clock, 3)}
    _mark_stage(conn, "publish_segments", day, run_id, detail)
    return detail


def _mailer_datasets(mailer: dict, day: date) -> list:
    """OpenLineage datasets of what a mailer sync wrote: the outbox's audience files, or the ESP's audiences
    (namespace `<adapter>://<target>`, name the audience); each marked as the dbt exposure mailer_audience_push."""
    from openlineage.common.provider.dbt.facets import DbtExposure, DbtExposuresDatasetFacet

    exposure = {"dbt_exposures": DbtExposuresDatasetFacet(exposures=[DbtExposure(
        unique_id="exposure.ecrm.mailer_audience_push", name="mailer_audience_push", type="application")])}
    if mailer.get("adapter") == "outbox":
        folder = get_settings().outbox / day.isoformat()
        files = [entry["file"] for entry in (mailer.get("manifest") or {}).get("audiences", {}).values()]
        return [lineage.Dataset(d.namespace, d.name, exposure) for d in (lineage.file(folder / f) for f in files)]
    adapter, _, where = str(mailer.get("target") or mailer.get("adapter")).partition(":")
    return [lineage.Dataset(f"{mailer.get('adapter') or adapter}://{where or adapter}", audience, exposure)
            for audience in mailer.get("audiences") or {}]


def _push_compliance(conn, day: date, run_id: str | None) -> dict:
    clock = time.monotonic()
    with lineage.job("ecrm.mailer_compliance_push", "send the day's compliance removals to the mailer") as run:
        mailer = sync_compliance(conn, day)  # ECRM_MAILER: outbox (default), listmonk or mailchimp
        if run:
            run.read(*(lineage.table(lineage.conn_url(conn), t) for t in ("raw.customers", "raw.email_events")))
            run.wrote(*_mailer_datasets(mailer, day))
    audiences = mailer.get("audiences", {})
    detail = {"day": day.isoformat(), "mode": "compliance_only", "status": mailer.get("status"),
              "run_id": mailer.get("run_id"), "target": mailer.get("target"),
              "removed": {a: s["sent"] for a, s in audiences.items()},
              "reasons": "unsubscribed, complained, hard-bounced or consent withdrawn (raw.*) by the end of the day",
              "seconds": {"compliance_push": round(time.monotonic() - clock, 3)}}
    if mailer.get("manifest"):
        detail["manifest"] = mailer["manifest"]
    _mark_stage(conn, "compliance_push", day, run_id, detail)
    log.info("compliance push %s: %s removal(s) sent (%s)", day, sum(detail["removed"].values()), detail["status"])
    return detail
