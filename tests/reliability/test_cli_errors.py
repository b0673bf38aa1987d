"""Defect 10 (issue 26): errors a user reads. Each known condition ends `ecrm ...` with one line on
stderr and its own exit code (ecrm.cli.KNOWN_ERRORS, documented in docs/reliability.md); a traceback
only with --debug. Every case runs the real command line in a subprocess against a test warehouse."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg

from ecrm.cli import KNOWN_ERRORS

ROOT = Path(__file__).resolve().parents[2]
DAY = "2026-10-01"
CODES = {name: code for _, name, code, _ in KNOWN_ERRORS}


def ecrm(*args: str, url: str, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m ecrm.cli ARGS` against `url`, with its own data folders and no ECRM_GATE_* of ours."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ECRM_GATE_")}
    base.update({"ECRM_WAREHOUSE_URL": url, "ECRM_DATA_DIR": str(tmp_path / "data"),
                 "ECRM_LANDING": str(tmp_path / "data" / "landing"), "ECRM_OUTBOX": str(tmp_path / "data" / "outbox"),
                 "ECRM_REPORTS": str(tmp_path / "reports"), **(env or {})})
    return subprocess.run([sys.executable, "-m", "ecrm.cli", *args], env=base, capture_output=True, text=True,
                          timeout=600, cwd=ROOT)


def assert_one_line(result: subprocess.CompletedProcess, condition: str, command: str, *words: str) -> str:
    """The exit code of `condition`, one line on stderr naming `words`, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == CODES[condition], (result.returncode, result.stderr)
    assert lines[0].startswith(f"ecrm {command}: ")
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_every_exit_code_is_distinct_and_documented():
    codes = [code for _, _, code, _ in KNOWN_ERRORS]
    assert len(set(codes)) == len(codes) and not {0, 1, 2, 3} & set(codes)
    doc = (ROOT / "docs" / "reliability.md").read_text()
    table = dict(re.findall(r"^\| `(\d+)` \| `?(\w+)`? \|", doc, re.M))
    assert {int(c): n for c, n in table.items() if int(c) >= 10} == {code: name for _, name, code, _ in KNOWN_ERRORS}


def test_a_warehouse_never_migrated(bare_db_url, tmp_path):
    result = ecrm("build", DAY, url=bare_db_url, tmp_path=tmp_path)
    assert_one_line(result, "WarehouseNotMigrated", "build", "ecrm warehouse migrate")
    result = ecrm("report", DAY, url=bare_db_url, tmp_path=tmp_path)
    assert_one_line(result, "WarehouseNotMigrated", "report", "ecrm warehouse migrate")


def test_a_report_on_an_empty_warehouse_says_build_first(db_url, tmp_path):
    line = assert_one_line(ecrm("report", DAY, url=db_url, tmp_path=tmp_path), "ReportDataMissing", "report",
                           f"ecrm build {DAY}")
    assert "permission denied" not in line


def test_another_build_running(db_url, tmp_path):
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(hashtext('ecrm-build'), 0)")  # as a running build holds it
        result = ecrm("build", DAY, url=db_url, tmp_path=tmp_path)
        assert_one_line(result, "BuildAlreadyRunning", "build", f"cannot build {DAY}")
        debug = ecrm("--debug", "build", DAY, url=db_url, tmp_path=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "BuildAlreadyRunning" in debug.stderr


def test_another_publish_running(db_url, tmp_path):
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(hashtext('ecrm-publish'))")
        result = ecrm("publish", DAY, url=db_url, tmp_path=tmp_path)
    assert_one_line(result, "PublishAlreadyRunning", "publish", "another publish")


def test_a_refused_landing_file(db_url, tmp_path):
    folder = tmp_path / "data" / "landing" / "weblogs" / DAY
    folder.mkdir(parents=True)
    (folder / "access.log").write_bytes(b"")
    result = ecrm("ingest", "weblogs", DAY, url=db_url, tmp_path=tmp_path)
    assert_one_line(result, "FileError", "ingest", "access.log", "empty file")


def test_a_misspelt_gate_setting_and_a_failed_gate(gate_day2, tmp_path):
    from test_quality_gate import DAY2

    url, conn, outbox = gate_day2
    env = {"ECRM_GX_PROJECT_DIR": os.environ["ECRM_GX_PROJECT_DIR"], "ECRM_OUTBOX": str(outbox)}
    result = ecrm("publish", DAY2.isoformat(), url=url, tmp_path=tmp_path,
                  env={**env, "ECRM_GATE_VOLUME_TOLERENCE": "5"})
    assert_one_line(result, "GateConfigError", "publish", "ECRM_GATE_VOLUME_TOLERENCE", "ECRM_GATE_VOLUME_TOLERANCE")
    # a duplicated page view: the gate blocks the day
    conn.execute("insert into intermediate.int_web_page_views select * from intermediate.int_web_page_views "
                 "where view_date = %s limit 1", (DAY2,))
    result = ecrm("publish", DAY2.isoformat(), url=url, tmp_path=tmp_path, env=env)
    assert_one_line(result, "QualityGateFailed", "publish", "intermediate_keys")
    # ... and, as in the DAG, the day's compliance removals went out all the same (removals only)
    assert conn.execute("select detail->>'mode' from ops.stage_runs where stage = 'compliance_push' "
                        "and run_date = %s", (DAY2,)).fetchone() == ("compliance_only",)


def test_a_wrong_flows_csv_fails_the_build_naming_flow_column_and_value(db_url, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(ROOT / "dbt_project", home / "dbt_project",
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    flows = home / "dbt_project" / "seeds" / "flows.csv"
    flows.write_text(flows.read_text().replace("winback,true,segment_transition,any,At Risk|Can't Lose Them,0,true,true,90,",
                                               "winback,true,segment_transition,any,At Risk|Can't Lose Them,0,true,true,-5,"))
    result = ecrm("build", DAY, url=db_url, tmp_path=tmp_path, env={"ECRM_HOME": str(home)})
    assert_one_line(result, "DbtBuildFailed", "build", "flow winback: cooldown_days = -5 must be at least 1")


def test_a_migration_changed_after_it_was_applied(db_url, tmp_path):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update ops.schema_migrations set checksum = 'edited' where version = 1")
    result = ecrm("warehouse", "migrate", url=db_url, tmp_path=tmp_path)
    assert_one_line(result, "MigrationError", "warehouse", "0001_initial.sql was changed after it was applied")
