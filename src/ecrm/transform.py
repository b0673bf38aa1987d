"""dbt: build the models for one run date, in-process (dbtRunner), with the warehouse from a URL.

In-process saves ~2 s of interpreter and import start-up per run against a `dbt` subprocess;
the run date goes in as a var so no model ever reads current_date.

Builds of one warehouse are serialised: `build` holds a session-level advisory lock on its own
connection for the whole dbt invocation, and a second build (of any day) fails fast with
BuildAlreadyRunning naming the day, start time, pid and run id of the one that holds it. Two dbt
builds at once replace the same incremental and intermediate tables under each other (duplicate
page views, a dropped table, `__dbt_backup already exists`). Each build is a row of ops.build_runs.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date
from pathlib import Path

from .settings import dbt_env, get_settings

BUILD_LOCK = "ecrm-build"  # pg_try_advisory_lock(hashtext(BUILD_LOCK), 0): one build of a warehouse at a time
BUILDS_DDL = """
create schema if not exists ops;
create table if not exists ops.build_runs (
    build_id     bigint generated always as identity primary key,
    run_date     date not null,
    run_id       text,
    host         text,
    pid          integer,
    backend_pid  integer not null,
    started_at   timestamptz not null default now(),
    finished_at  timestamptz,
    status       text not null,  -- starting | running | succeeded | failed | refused | abandoned
    error        text
);
-- build: a dbt build; publish: the gate and the publish of the audited tables (they must not change between)
alter table ops.build_runs add column if not exists action text not null default 'build';
"""
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
    `action` is "build" (a dbt build) or "publish" (the gate and the publish, so the tables the gate
    audited are the ones published). Yields the ops.build_runs id of this build.
    """
    import psycopg

    app = f"ecrm-{action} {day.isoformat()} pid {os.getpid()}"[:63]
    with psycopg.connect(url, autocommit=True, application_name=app) as conn:
        with conn.transaction():  # two first builds must not race on the DDL
            conn.execute("select pg_advisory_xact_lock(hashtext('ecrm-build-ddl'))")
            conn.execute(BUILDS_DDL)
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


def run_dbt(args: list[str], url: str, project_dir: Path | None = None) -> object:
    from dbt.cli.main import dbtRunner  # heavy import: only when dbt actually runs

    project_dir = project_dir or get_settings().dbt_project_dir
    os.environ.update(dbt_env(url))
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    result = dbtRunner().invoke([*args, "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)])
    if not result.success:
        failed = []
        for node in getattr(result.result, "results", None) or []:
            if str(node.status) in ("error", "fail"):
                failed.append(f"{node.node.unique_id}: {(node.message or '').strip()[:300]}")
        detail = "\n  ".join(failed) or str(result.exception)
        raise DbtBuildFailed(f"dbt {' '.join(args[:1])} failed:\n  {detail}")
    return result


def build(day: date, url: str, extra_vars: dict | None = None, select: str | None = None,
          run_id: str | None = None) -> dict[str, int]:
    """`dbt build` (seeds, models, tests) as of `day`; returns counts of node results by status.

    Raises BuildAlreadyRunning without touching a table when another build of the warehouse runs.
    """
    variables = json.dumps({"run_date": day.isoformat(), **(extra_vars or {})})
    args = ["build", "--vars", variables, "--quiet"]
    if select:
        args += ["--select", select]
    with build_lock(url, day, run_id):
        result = run_dbt(args, url)
    counts: dict[str, int] = {}
    for node in result.result.results:
        counts[str(node.status)] = counts.get(str(node.status), 0) + 1
    return counts
