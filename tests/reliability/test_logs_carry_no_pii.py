"""No PII and no secret in the logs of a whole demo day: `ecrm demo --days 1` in its own process,
every DAG of the day through real Airflow with Airflow's log level at DEBUG, and everything it
prints (stdout, stderr, Airflow's and dbt's log files) grepped for the shop's e-mail addresses,
anything shaped like an address, and the secrets in its environment."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import psycopg
import pytest

ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
pytestmark = pytest.mark.slow


def test_a_demo_day_logs_ids_counts_and_hashes_never_addresses_or_secrets(warehouse, tmp_path):
    visitor_key = secrets.token_hex(16)
    url = warehouse.create_database("pii_logs", migrated=False)  # the demo migrates it
    env = {**os.environ, "ECRM_WAREHOUSE_URL": url, "ECRM_DATA_DIR": str(tmp_path / "data"),
           "ECRM_LANDING": str(tmp_path / "data" / "landing"), "ECRM_OUTBOX": str(tmp_path / "data" / "outbox"),
           "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
           "ECRM_VISITOR_KEY": visitor_key, "COLUMNS": "200"}
    demo = subprocess.run([sys.executable, "-m", "ecrm.cli", "demo", "--days", "1", "--customers", "300",
                           "--seed", "13"], env=env, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "migrations 0001_initial.sql" in demo.stdout
    # the demo ends with the day's marketing report (checked for PII below with everything else)
    report = tmp_path / "data" / "reports" / "2026-10-01" / "index.html"
    assert "marketing report:" in demo.stdout and report.exists()
    files = [p for folder in (tmp_path / "airflow",) for p in folder.rglob("*.log")]
    logs = "\n".join([demo.stdout, demo.stderr, *(p.read_text(errors="replace") for p in files)])
    reports = (report.read_text() + report.with_name("email.html").read_text()).lower()
    assert "publish_segments" in logs and len(logs) > 2000, "the run's logs were not captured"

    with psycopg.connect(url) as conn:
        addresses = {r[0].lower() for r in conn.execute("select email from raw.customers union "
                                                        "select email from raw.email_events")}
    assert len(addresses) > 100
    lowered = logs.lower()
    leaked = [a for a in addresses if a in lowered]
    assert leaked == [], f"{len(leaked)} customer addresses in the logs"
    assert [a for a in addresses if a in reports] == [], "customer addresses in the marketing report"
    assert ADDRESS.findall(logs) == []
    assert visitor_key not in logs
