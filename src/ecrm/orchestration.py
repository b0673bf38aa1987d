"""Airflow glue shared by the DAG files: schedule, default args, alerts, the warehouse connection.

This is the only module of the package that knows Airflow; the stages themselves (ecrm.pipeline)
do not, so they run the same from the CLI and tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

from airflow.sdk import Asset, BaseSensorOperator, Param, task
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from ecrm import lineage

log = logging.getLogger("ecrm.alerts")


def openlineage_task_parent() -> lineage.Parent | None:
    """The OpenLineage run of the Airflow task this code runs in (None outside a task): the ids the
    provider's listener gives the task and its DAG run (its lineage_* macros), so the loads', dbt's and
    the publish's events (ecrm.lineage) are children of the task that ran them."""
    from airflow.sdk import get_current_context

    try:
        ti = get_current_context()["ti"]
    except Exception:  # noqa: BLE001 -- no task is running (CLI, tests)
        return None
    from airflow.providers.openlineage.plugins import macros

    return lineage.Parent(macros.lineage_job_namespace(), macros.lineage_job_name(ti), macros.lineage_run_id(ti),
                          macros.lineage_root_job_namespace(ti), macros.lineage_root_job_name(ti),
                          macros.lineage_root_run_id(ti))


lineage.set_parent_source(openlineage_task_parent)

# A bare cron string would make a *trigger* timetable whose data interval is empty (Airflow 3):
# the interval timetable gives each run the UTC day it is about.
DAILY = CronDataIntervalTimetable("0 0 * * *", timezone="UTC")
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
WAREHOUSE_CONN_ID = "ecrm_warehouse"
SHOP_DB_CONN_ID = "ecrm_shop_db"


def alert_on_failure(context) -> None:
    """Failure callback: one clear, greppable line naming the DAG, task, interval and error."""
    ti = context.get("task_instance")
    log.error("ECRM ALERT dag=%s task=%s interval=[%s, %s) try=%s error=%s",
              getattr(ti, "dag_id", "?"), getattr(ti, "task_id", "?"), context.get("data_interval_start"),
              context.get("data_interval_end"), getattr(ti, "try_number", "?"), context.get("exception"))


# One pool bounds how many tasks hit the warehouse at once (created by `ecrm airflow-setup`, the
# demo and docker-compose's init; `airflow pools set ecrm_warehouse 4 "..."` on your own Airflow).
WAREHOUSE_POOL = "ecrm_warehouse"
WAREHOUSE_POOL_SLOTS = 4

# What each DAG produces; every asset event carries the interval it covers in `extra`, so a
# consumer triggered by the asset (which has no logical date of its own) knows which day changed.
ASSETS = {
    "shop": Asset(name="ecrm.raw.orders", uri="ecrm://warehouse/raw/orders"),
    "weblogs": Asset(name="ecrm.raw.web_requests", uri="ecrm://warehouse/raw/web_requests"),
    "email": Asset(name="ecrm.raw.email_events", uri="ecrm://warehouse/raw/email_events"),
    "marts": Asset(name="ecrm.marts", uri="ecrm://warehouse/marts"),
    "published": Asset(name="ecrm.published.audiences", uri="ecrm://warehouse/published/audience_members"),
}


# Trigger a load with conf {"allow_empty": true} when a day's file really is empty, {"allow_shrink": true}
# when a re-delivered file really has far fewer rows than its earlier load (they fail otherwise).
LOAD_PARAMS = {"allow_empty": Param(False, type="boolean",
                                    description="let an empty file replace an earlier load that had rows"),
               "allow_shrink": Param(False, type="boolean",
                                     description="let a re-delivered file replace its earlier load with fewer than "
                                                 "ECRM_MIN_REPLACE_SHARE (50%) of its rows")}


def record_interval(outlet_events, asset: Asset, start: datetime, end: datetime, summary: dict) -> dict:
    """Attach the interval (and a small summary) to the asset event this task emits."""
    outlet_events[asset].extra = {"interval_start": start.isoformat(), "interval_end": end.isoformat(),
                                  **{k: v for k, v in summary.items() if isinstance(v, str | int | float)}}
    return summary


TASK_RETRIES = int(os.environ.get("ECRM_TASK_RETRIES", "2"))
# The push resumes where it stopped (it sends only what the ESP has not confirmed) and ESP faults
# pass: one retry more than other tasks. ECRM_TASK_RETRIES=0 (the demo, tests) means none at all.
PUSH_RETRIES = TASK_RETRIES + 1 if TASK_RETRIES else 0

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": TASK_RETRIES,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=2),
    "on_failure_callback": alert_on_failure,
    "pool": WAREHOUSE_POOL,
}


def connection_url(conn_id: str) -> str | None:
    """The URL of Airflow connection `conn_id`, or None when it is not defined."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - Airflow raises different types for "not defined" across versions
        return None
    return conn.get_uri().replace("postgres://", "postgresql://", 1)


def warehouse_url() -> str | None:
    """The `ecrm_warehouse` connection when defined, else None (settings decide)."""
    return connection_url(WAREHOUSE_CONN_ID)


def migrate_task():
    """The first task of every DAG: `ecrm warehouse migrate` (applies nothing, and locks no table, when the
    warehouse is up to date); the stages after it assume a migrated warehouse."""

    @task(task_id="migrate")
    def migrate() -> list[str]:
        from ecrm.warehouse import resolve_url
        from ecrm.warehouse.migrate import migrate as apply

        return [m.file for m in apply(warehouse_url() or resolve_url())]

    return migrate()


def compliance_push_task(gate):
    """publish_segments' `compliance_push`, downstream of the publish and of `gate` (wired here): runs only
    when either failed (trigger rule one_failed; skipped when both succeeded, as the push then sends these
    removals first). It sends the day's compliance removals anyway (ecrm.pipeline.push_compliance: removals
    only, from raw.*), and the run still ends failed: the gate's failure stays visible. Resumable like the
    push, retried like it."""

    @task(task_id="compliance_push", retries=PUSH_RETRIES, trigger_rule="one_failed")
    def compliance_push(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        from ecrm.pipeline import push_compliance

        return push_compliance(data_interval_start, data_interval_end, run_id, warehouse_url())

    removals = compliance_push()
    gate >> removals
    return removals


def shop_db_url() -> str | None:
    """The shop's own database (`ecrm_shop_db` connection, else ECRM_SHOP_DB_URL); None: file exports."""
    from ecrm.settings import get_settings

    return connection_url(SHOP_DB_CONN_ID) or get_settings().shop_db_url


# A waiting stage LISTENs on ecrm_stage_runs (migration 0009: every row of ops.stage_runs notifies on
# commit) and re-checks the moment a stage finishes; it also re-checks every WAIT_POLL_SECONDS in case
# a notification is lost with a dropped connection. Polling every 2 s left a small day at 1.55x its
# work on a loaded CI machine (tests/test_celery.py); the old 300 s pokes made it 5x (issue 27).
STAGE_RUNS_CHANNEL = "ecrm_stage_runs"
WAIT_POLL_SECONDS = 30.0
# The stages build_marts waits for: one per source of ecrm.pipeline.SOURCES (not imported here: DAG
# files import this module at parse time, and ecrm.pipeline pulls in the whole product).
INGEST_STAGES = ["ingest_shop", "ingest_weblogs", "ingest_email"]
WAIT_TIMEOUT = timedelta(hours=12)


class StagesDoneTrigger(BaseTrigger):
    """Fires once every one of `stages` has recorded `day` in ops.stage_runs (the stages' own ledger,
    written in the transaction that finishes them), and ends the waiting task from the triggerer."""

    def __init__(self, stages: list[str], day: str, poll_seconds: float = WAIT_POLL_SECONDS):
        super().__init__()
        self.stages, self.day, self.poll_seconds = list(stages), day, poll_seconds

    def serialize(self) -> tuple[str, dict]:
        return (f"{__name__}.{type(self).__name__}",
                {"stages": self.stages, "day": self.day, "poll_seconds": self.poll_seconds})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import psycopg

        from ecrm.pipeline import stages_done
        from ecrm.warehouse import resolve_url

        day = date.fromisoformat(self.day)
        # blocking calls (connection lookup, psycopg) run in a thread: the triggerer's loop serves many triggers
        url = await asyncio.to_thread(lambda: warehouse_url() or resolve_url())
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(f"listen {STAGE_RUNS_CHANNEL}")  # before the check: no commit falls in between
            while not await asyncio.to_thread(stages_done, self.stages, day, url):
                # any stage's commit wakes this (a cheap re-check); else the poll interval does
                async for _ in conn.notifies(timeout=self.poll_seconds, stop_after=1):
                    pass
        self.log.info("stages %s done for %s", ",".join(self.stages), self.day)
        yield TaskSuccessEvent()


class StagesDoneSensor(BaseSensorOperator):
    """Waits until `stages` are done for the run's own day (its data interval, so backfills and reruns of
    any day wait for that day): succeeds at once when they are, else defers to StagesDoneTrigger."""

    def __init__(self, *, stages: list[str], **kwargs):
        super().__init__(poke_interval=WAIT_POLL_SECONDS, timeout=WAIT_TIMEOUT.total_seconds(), **kwargs)
        self.stages = list(stages)

    def poke(self, context) -> bool:
        from ecrm.pipeline import stages_done

        return stages_done(self.stages, context["data_interval_start"].date(), warehouse_url())

    def execute(self, context) -> None:
        if self.poke(context):
            return
        self.defer(trigger=StagesDoneTrigger(self.stages, context["data_interval_start"].date().isoformat()),
                   method_name="execute_complete", timeout=WAIT_TIMEOUT)

    def execute_complete(self, context, event=None) -> None:
        """Resumed only where the trigger cannot end the task itself (dag.test runs triggers inline)."""
