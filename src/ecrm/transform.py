"""dbt: build the models for one run date, in-process (dbtRunner), with the warehouse from a URL.

In-process saves ~2 s of interpreter and import start-up per run against a `dbt` subprocess.

What a production day runs (issue 21), and why:
- The run date reaches dbt at run time through the environment (ECRM_RUN_DATE, read by
  macros/run_date.sql only while executing), not as a `--vars` value: a var that changes every
  day makes dbt throw away its partial parse ("Unable to do partial parsing because config vars,
  config profile, or config target have changed") and re-parse the whole project (~4 s against
  ~1.6 s). `--vars '{run_date: ...}'` still works and wins (unit tests, manual runs).
- Unit tests are excluded from the daily build (`--exclude-resource-type unit_test`): they test the
  SQL, not the day's data, so they run in `make test` (tests/test_fixed_costs.py) and CI instead.
- Seeds load only when they changed: a checksum of seeds/ and dbt_project.yml is kept per
  warehouse in ops.dbt_seed_state; when it matches and the seed tables exist, the build excludes
  seeds (their data tests still run).
No model ever reads current_date.

Builds of one warehouse are serialised: `build` holds a session-level advisory lock on its own
connection for the whole dbt invocation, and a second build (of any day) fails fast with
BuildAlreadyRunning naming the day, start time, pid and run id of the one that holds it. Two dbt
builds at once replace the same incremental and intermediate tables under each other (duplicate
page views, a dropped table, `__dbt_backup already exists`). Each build is a row of ops.build_runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import date
from pathlib import Path

from . import lineage
from .settings import dbt_env, get_settings
from .warehouse.migrate import require_migrated

log = logging.getLogger(__name__)
RUN_DATE_ENV = "ECRM_RUN_DATE"  # read by dbt_project/macros/run_date.sql at execution time only
SEEDS_SCHEMA = "seeds"  # dbt_project.yml: seeds: +schema: seeds (generate_schema_name keeps it verbatim)
BUILD_LOCK = "ecrm-build"  # pg_try_advisory_lock(hashtext(BUILD_LOCK), 0): one build of a warehouse at a time
_HOLDER = """
select a.pid, a.application_name, a.backend_start, b.run_date, b.run_id, b.host, b.pid, b.started_at, b.action
from pg_locks l join pg_stat_activity a on a.pid = l.pid
left join lateral (select * from ops.build_runs r where r.backend_pid = l.pid and r.finished_at is null
                   order by r.build_id desc limit 1) b on true
where l.locktype = 'advisory' and l.granted and l.classid = hashtext(%(lock)s)::oid and l.objid = 0
  and l.objsubid = 2 and l.database = (select oid from pg_database where datname = current_database())
"""


class DbtBuildFailed(RuntimeError):
    pass


class BuildAlreadyRunning(RuntimeError):
    """Another build of this warehouse holds the build lock."""


def _holder_text(conn) -> str:
    row = conn.execute(_HOLDER, {"lock": BUILD_LOCK}).fetchone()
    if row is None:
        return "another build was running (it has just finished; run again)"
    backend, app, backend_start, day, run_id, host, pid, started, action = row
    if day is None:  # no row (a holder of another version): its application_name has the action and the day
        parts = (app or "").split(" ")
        action = parts[0].removeprefix("ecrm-") if parts else "build"
        day = parts[1] if len(parts) > 1 else "an unknown day"
        pid = parts[3] if len(parts) > 3 else "?"
        started = backend_start
    return (f"another {action} of {day} is running (started at {started:%Y-%m-%d %H:%M:%S %Z}, pid {pid}"
            f"{f' on {host}' if host else ''}, run_id {run_id or '?'}, warehouse backend pid {backend})")


@contextmanager
def build_lock(url: str, day: date, run_id: str | None = None, action: str = "build") -> Iterator[int]:
    """Hold the warehouse's build lock while the body runs; raise BuildAlreadyRunning at once if taken.

    The lock is session-level on a connection of its own (dbt opens its own connections), so it is
    released when the body ends or, if the process dies, when the server drops the connection.
    `action` is "build" (a dbt build), "gate" (the quality gate audits the built tables) or "publish"
    (it checks that no build ran since the gate, then publishes). Yields the ops.build_runs id.
    """
    import psycopg

    app = f"ecrm-{action} {day.isoformat()} pid {os.getpid()}"[:63]
    with psycopg.connect(url, autocommit=True, application_name=app) as conn:
        require_migrated(conn)
        # The row goes in before the lock is tried, so a build refused by this one always finds it.
        build_id = conn.execute(
            "insert into ops.build_runs (run_date, run_id, host, pid, backend_pid, status, action) "
            "values (%s, %s, %s, %s, pg_backend_pid(), 'starting', %s) returning build_id",
            (day, run_id, socket.gethostname(), os.getpid(), action)).fetchone()[0]
        if not conn.execute("select pg_try_advisory_lock(hashtext(%s), 0)", (BUILD_LOCK,)).fetchone()[0]:
            holder = _holder_text(conn)
            conn.execute("update ops.build_runs set status = 'refused', finished_at = now(), error = %s "
                         "where build_id = %s", (holder, build_id))
            raise BuildAlreadyRunning(f"cannot {action} {day}: {holder}; builds and publishes of a warehouse "
                                      "are serialised (see ops.build_runs)")
        try:
            conn.execute("update ops.build_runs set status = 'running' where build_id = %s", (build_id,))
            # A row still open whose session is gone belongs to a build that died without finishing.
            conn.execute("update ops.build_runs set status = 'abandoned', finished_at = now(), "
                         "error = 'it ended without finishing (killed?); found by ' || %s "
                         "where finished_at is null and build_id <> %s and backend_pid not in "
                         "(select pid from pg_stat_activity)", (f"{action} {day} {run_id or ''}".strip(), build_id))
            try:
                yield build_id
            except BaseException as exc:
                with suppress(psycopg.Error):  # the lock's connection may be what broke
                    conn.execute("update ops.build_runs set status = 'failed', finished_at = now(), error = %s "
                                 "where build_id = %s", (f"{type(exc).__name__}: {exc}"[:2000], build_id))
                raise
            conn.execute("update ops.build_runs set status = 'succeeded', finished_at = now() where build_id = %s",
                         (build_id,))
        finally:
            with suppress(psycopg.Error):  # a lost connection has released the lock already
                conn.execute("select pg_advisory_unlock(hashtext(%s), 0)", (BUILD_LOCK,))


# The last dbt invocation of this process: how it parsed (partial / full and why) and how long it took.
last_invocation: dict = {}
# Each node's execution time in the last build() of this process, over its invocations (bench_day's top nodes).
last_node_seconds: dict[str, float] = {}


def _parse_listener(info: dict):
    def on_event(event) -> None:
        name = event.info.name
        if name == "UnableToPartialParse":  # I024: the whole project is re-parsed
            info["parse"] = "full"
            info["parse_reason"] = event.info.msg
        elif name in ("PartialParsingSkipParsing", "PartialParsingEnabled") and info.get("parse") is None:
            info["parse"] = "partial"  # I017 nothing changed, I040 only the changed files are re-parsed
    return on_event


@contextmanager
def dbt_environment(env: dict[str, str]) -> Iterator[None]:
    """`env` in the process environment for one in-process dbt invocation, the previous values after.

    Settings are otherwise passed as arguments; dbt in-process reads env_var() (profiles.yml's
    ECRM_PG_*, the run date) from nothing but os.environ (dbt_common's get_env copies it when an
    invocation starts), so they are set here for the invocation only and nothing outlives it. A dbt
    subprocess would take an env= dict instead, at ~2 s of start-up a run."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_dbt(args: list[str], url: str, project_dir: Path | None = None, env: dict[str, str] | None = None,
            callbacks: list | None = None) -> object:
    """Invoke dbt in-process against `url`; `env` (the run date: RUN_DATE_ENV) is dbt's for the invocation only.

    Records in `last_invocation` whether dbt parsed partially or in full (with dbt's reason).
    """
    from dbt.cli.main import dbtRunner  # heavy import: only when dbt actually runs

    project_dir = project_dir or get_settings().dbt_project_dir
    env = {**dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": os.environ.get("DBT_SEND_ANONYMOUS_USAGE_STATS", "false"),
           **(env or {})}
    info: dict = {"command": args[0] if args else "", "parse": None}
    started = time.monotonic()
    try:
        runner = dbtRunner(callbacks=[_parse_listener(info), *(callbacks or [])])
        with dbt_environment(env):
            # OpenLineage (docs/lineage.md): None, and nothing imported, unless a transport is configured
            dbt_lineage = lineage.dbt_run(project_dir, args)
            try:
                result = runner.invoke([*args, "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)])
            except BaseException:
                if dbt_lineage:
                    dbt_lineage.finish(success=False)
                raise
            if dbt_lineage:  # inside dbt's environment: the processor renders profiles.yml's env_var()
                dbt_lineage.finish(success=result.success)
    finally:
        info["seconds"] = round(time.monotonic() - started, 3)
        if info["parse"] is None:
            info["parse"] = "full"  # no saved manifest (first run) or partial parsing off
        last_invocation.clear()
        last_invocation.update(info)
    if info.get("parse_reason"):
        log.info("dbt re-parsed the whole project: %s", info["parse_reason"])
    if not result.success:
        failed = []
        for node in getattr(result.result, "results", None) or []:
            if str(node.status) in ("error", "fail"):
                failed.append(f"{node.node.unique_id}: {(node.message or '').strip()[:300]}")
        detail = "\n  ".join(failed) or str(result.exception)
        raise DbtBuildFailed(f"dbt {' '.join(args[:1])} failed:\n  {detail}")
    return result


def seeds_checksum(project_dir: Path | None = None) -> str:
    """sha256 of every file under seeds/ and of dbt_project.yml (seed column types live there)."""
    project_dir = project_dir or get_settings().dbt_project_dir
    digest = hashlib.sha256()
    files = sorted(p for p in (project_dir / "seeds").rglob("*") if p.is_file())
    for path in [*files, project_dir / "dbt_project.yml"]:
        digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _seed_names(project_dir: Path) -> list[str]:
    return sorted(p.stem for p in (project_dir / "seeds").rglob("*.csv"))


def seeds_current(url: str, checksum: str, project_dir: Path | None = None) -> bool:
    """Are this warehouse's seed tables loaded from exactly these seed files?"""
    import psycopg

    project_dir = project_dir or get_settings().dbt_project_dir
    names = _seed_names(project_dir)
    with psycopg.connect(url, autocommit=True) as conn:
        stored = conn.execute("select checksum from ops.dbt_seed_state where project = %s",
                              (str(project_dir.name),)).fetchone()
        present = conn.execute("select count(*) from information_schema.tables where table_schema = %s "
                               "and table_name = any(%s)", (SEEDS_SCHEMA, names)).fetchone()[0]
    return stored is not None and stored[0] == checksum and present == len(names)


def _remember_seeds(url: str, checksum: str, project_dir: Path | None = None) -> None:
    import psycopg

    project_dir = project_dir or get_settings().dbt_project_dir
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into ops.dbt_seed_state (project, checksum) values (%s, %s) on conflict (project) "
                     "do update set checksum = excluded.checksum, loaded_at = now()",
                     (str(project_dir.name), checksum))


# The models that read the forecast (ecrm.predict) and everything downstream of them: built by a
# second dbt invocation after the forecast of the run date (build(..., forecast=...)).
PREDICTIONS_SELECTOR = "source:predictions+"
# The dbt invocations of the last build of this process: [{command, parse, seconds, select}, ...].
last_build: list[dict] = []


def build(day: date, url: str, extra_vars: dict | None = None, select: str | None = None,
          run_id: str | None = None, unit_tests: bool = False, seeds: bool | None = None,
          forecast: Callable[[], object] | None = None) -> dict[str, int]:
    """`dbt build` (seeds when they changed, models, data tests) as of `day`; returns counts of node
    results by status.

    The run date goes in through RUN_DATE_ENV (partial parsing survives a new day); `extra_vars`
    should not change from day to day for the same reason. `unit_tests=True` adds dbt's unit
    tests (development and CI; the daily build leaves them out). `seeds`: None loads them when
    their checksum differs from the warehouse's (or a seed table is missing), True always, False
    never. Raises BuildAlreadyRunning without touching a table when another build of the
    warehouse runs.

    `forecast` (the daily build: ecrm.predict for `day`) splits the build in two dbt invocations
    around it, all under one build lock: first everything except PREDICTIONS_SELECTOR (the
    forecast reads intermediate.int_orders_as_of, which it builds), then `forecast()`, then
    PREDICTIONS_SELECTOR (dim_customers, the RFM snapshot, the audiences: they read the forecast of
    the same day). One lock for the three: a build of another day in between would replace
    int_orders_as_of under the forecast. The second invocation keeps the partial parse (the
    selection is not part of it); it costs dbt's fixed start-up once more (docs/decisions.md).
    """
    base = ["build", "--quiet"]
    if extra_vars:
        base += ["--vars", json.dumps(extra_vars, sort_keys=True)]
    if select and forecast:
        raise ValueError("build(select=..., forecast=...): the forecast splits a whole build only")
    steps = ([["--exclude", PREDICTIONS_SELECTOR], None, ["--select", PREDICTIONS_SELECTOR]] if forecast
             else [["--select", select] if select else []])
    last_build.clear()
    results = []
    with build_lock(url, day, run_id):
        checksum = seeds_checksum()
        load_seeds = seeds if seeds is not None else not seeds_current(url, checksum)
        for index, step in enumerate(steps):
            if step is None:
                started = time.monotonic()
                forecast()
                last_build.append({"command": "forecast", "seconds": round(time.monotonic() - started, 3)})
                continue
            # seeds are upstream of everything: the first invocation loads them when they changed
            seeds_now = load_seeds and index == 0
            excluded = [*([] if unit_tests else ["unit_test"]), *([] if seeds_now else ["seed"])]
            args = [*base, *step, *(["--exclude-resource-type", *excluded] if excluded else [])]
            results.append(run_dbt(args, url, env={RUN_DATE_ENV: day.isoformat()}))
            last_build.append({**last_invocation, "select": " ".join(step)})
        if load_seeds and not select:
            _remember_seeds(url, checksum)
    counts: dict[str, int] = {}
    last_node_seconds.clear()
    for result in results:
        for node in result.result.results:
            counts[str(node.status)] = counts.get(str(node.status), 0) + 1
            last_node_seconds[node.node.unique_id] = round(float(node.execution_time or 0), 3)
    return counts
