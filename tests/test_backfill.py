"""`airflow backfill create` over 7 days through a real scheduler (airflow standalone): every day's
run succeeds and loads exactly its own day's files."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT

START = date(2026, 10, 1)
DAYS = 7
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # its own waits add up past the global 900 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _airflow(env: dict, *args: str, timeout: int = 120) -> str:
    result = subprocess.run([str(Path(sys.executable).parent / "airflow"), *args], env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_backfill_create_over_seven_days(warehouse, tmp_path):
    from ecrm.simulate import ShopSimulator

    url = warehouse.create_database("backfill")
    metadata = warehouse.create_database("backfill_airflow_metadata", migrated=False)
    sim = ShopSimulator(landing=tmp_path / "landing", outbox=tmp_path / "outbox", truth=tmp_path / "truth",
                        start=START, customers=300, seed=11)
    for offset in range(DAYS):
        sim.write_day(START + timedelta(days=offset))
    port = _free_port()
    env = {**os.environ,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
           "AIRFLOW__CORE__PARALLELISM": "2",
           "AIRFLOW__API__PORT": str(port),
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
           # Metadata in PostgreSQL, as in docker-compose: on SQLite the scheduler and the CLI race
           # ("database is locked", foreign-key errors creating a backfill's task instances).
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.replace("postgresql://", "postgresql+psycopg2://"),
           "AIRFLOW_CONN_ECRM_WAREHOUSE": url,
           "ECRM_LANDING": str(tmp_path / "landing"),
           "ECRM_HOME": str(ROOT),
           "ECRM_TASK_RETRIES": "0"}
    _airflow(env, "db", "migrate", timeout=300)
    _airflow(env, "pools", "set", "ecrm_warehouse", "4", "warehouse")
    log = (tmp_path / "standalone.log").open("w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as r:
                    status = json.load(r)
                return all(status.get(c, {}).get("status") == "healthy" for c in ("scheduler", "dag_processor"))
            except OSError:
                return False

        _wait(healthy, 300, "airflow standalone to be healthy")
        _wait(lambda: "ingest_web_logs" in _airflow(env, "dags", "list"), 180, "the DAG to be parsed")
        _airflow(env, "dags", "unpause", "ingest_web_logs")  # backfill runs wait while a DAG is paused
        _airflow(env, "backfill", "create", "--dag-id", "ingest_web_logs", "--from-date", START.isoformat(),
                 "--to-date", (START + timedelta(days=DAYS - 1)).isoformat())

        def backfill_runs():
            out = _airflow(env, "dags", "list-runs", "ingest_web_logs", "-o", "json")
            # Airflow may print log lines before the JSON document: parse from the list's start.
            start = out.find("[{")
            runs = json.loads(out[start:out.rindex("]") + 1]) if start >= 0 else []
            backfill = [r for r in runs if r["run_id"].startswith("backfill__")]
            done = len(backfill) == DAYS and all(r["state"] in ("success", "failed") for r in backfill)
            return backfill if done else None

        runs = _wait(backfill_runs, 420, "the 7 backfill runs to finish")
        assert {r["state"] for r in runs} == {"success"}, runs
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    with psycopg.connect(url) as conn:
        loaded = conn.execute(
            "select interval_start::date, count(*), sum(rows_read), sum(rows_loaded + rows_quarantined) "
            "from ops.load_ledger where source = 'web_logs' and status = 'succeeded' group by 1 order by 1").fetchall()
        per_day = dict(conn.execute("select requested_at::date, count(*) from raw.web_requests group by 1").fetchall())
    assert [d for d, *_ in loaded] == [START + timedelta(days=i) for i in range(DAYS)]
    for day, files, read, accounted in loaded:
        assert files == 1 and read == accounted
        assert per_day[day] > 0, f"nothing loaded for {day}"
