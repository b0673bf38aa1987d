"""A loaded day is never wiped by a re-delivered file that shrank (issue 26, defect 5): a file that
would replace its earlier load with fewer than ECRM_MIN_REPLACE_SHARE (50 %) of its rows is refused,
naming the file and both counts, with a `failed` ledger row and nothing of the source-day changed,
unless the operator says so (`--allow-shrink`, Airflow conf `allow_shrink`). Judged per file: a new
file beside a gutted one does not hide it."""

from __future__ import annotations

import json
from datetime import date

import psycopg
import pytest

from ecrm.intervals import day_interval
from ecrm.load.ingest import ingest
from ecrm.sources import FileError

DAY = date(2026, 10, 1)
INTERVAL = day_interval(DAY)
LINE = '203.0.113.{a} - - [01/Oct/2026:13:{m:02d}:22 +0000] "GET /p/{n} HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11)"\n'


def log_text(count: int, offset: int = 0) -> str:
    return "".join(LINE.format(a=n % 250, m=n % 60, n=n) for n in range(offset, offset + count))


def events_text(count: int) -> str:
    start = int(INTERVAL[0].timestamp()) + 3600
    kinds = ["delivered", "open", "bounce", "unsubscribe"]
    return "".join(json.dumps({"sg_event_id": f"e-{n}", "event": kinds[n % 4], "email": f"c{n}@example.com",
                               "timestamp": start + n, "campaign_id": "cmp-1", "customer_id": f"c-{n}",
                               **({"type": "bounce", "reason": "550"} if n % 4 == 2 else {})}) + "\n"
                   for n in range(count))


def rows(conn, table: str = "web_requests") -> int:
    return conn.execute(f"select count(*) from raw.{table}").fetchone()[0]


def statuses(conn) -> list[str]:
    return [r[0] for r in conn.execute("select status from ops.load_ledger order by load_id").fetchall()]


def assert_refused(conn, error: FileError, name: str, old: int, new: int) -> None:
    message = str(error)
    assert name in message and f"{old:,}" in message and f"{new:,}" in message, message
    failed = conn.execute("select file, error from ops.load_ledger where status = 'failed'").fetchall()
    assert len(failed) == 1 and name in failed[0][0] and f"{old:,}" in failed[0][1]
    assert conn.execute("select status from ops.ingest_runs order by ingest_run_id desc limit 1").fetchone() == \
        ("failed",)


def test_a_web_log_truncated_to_its_first_line_is_refused(conn, tmp_path):
    folder = tmp_path / "weblogs"
    folder.mkdir()
    (folder / "access.log").write_text(log_text(400))
    ingest(conn, "weblogs", folder, INTERVAL)
    (folder / "access.log").write_text(log_text(1))
    with pytest.raises(FileError) as error:
        ingest(conn, "weblogs", folder, INTERVAL)
    assert_refused(conn, error.value, "access.log", 400, 1)
    assert rows(conn) == 400 and statuses(conn) == ["succeeded", "failed"]

    ingest(conn, "weblogs", folder, INTERVAL, allow_shrink=True)  # the operator knows the day was short
    assert rows(conn) == 1 and statuses(conn) == ["replaced", "failed", "succeeded"]


def test_a_gutted_log_beside_a_new_one_line_log_is_refused(conn, tmp_path):
    """Per file, not per file type: the new file's one row does not make up for the gutted one."""
    folder = tmp_path / "weblogs"
    folder.mkdir()
    (folder / "access.log-20261001").write_text(log_text(400))
    ingest(conn, "weblogs", folder, INTERVAL)
    (folder / "access.log-20261001").write_text("garbage\n" * 50)
    (folder / "access.log").write_text(log_text(1, offset=900))
    with pytest.raises(FileError) as error:
        ingest(conn, "weblogs", folder, INTERVAL)
    assert "access.log-20261001" in str(error.value) and "400" in str(error.value)
    assert rows(conn) == 400


def test_an_event_export_truncated_to_one_line_is_refused_and_its_unsubscribes_stay(conn, tmp_path):
    folder = tmp_path / "email"
    folder.mkdir()
    (folder / "events.jsonl").write_text(events_text(60))
    ingest(conn, "email", folder, INTERVAL)
    unsubscribes = conn.execute("select count(*) from raw.email_events where event = 'unsubscribe'").fetchone()[0]
    (folder / "events.jsonl").write_text(events_text(1))
    with pytest.raises(FileError) as error:
        ingest(conn, "email", folder, INTERVAL)
    assert_refused(conn, error.value, "events.jsonl", 60, 1)
    assert rows(conn, "email_events") == 60
    assert conn.execute("select count(*) from raw.email_events where event = 'unsubscribe'").fetchone()[0] == \
        unsubscribes > 0


def test_a_file_that_keeps_half_its_rows_replaces_its_load(conn, tmp_path, monkeypatch):
    folder = tmp_path / "weblogs"
    folder.mkdir()
    (folder / "access.log").write_text(log_text(10))
    ingest(conn, "weblogs", folder, INTERVAL)
    (folder / "access.log").write_text(log_text(5))
    ingest(conn, "weblogs", folder, INTERVAL)
    assert rows(conn) == 5
    # A stricter share, from the environment.
    monkeypatch.setenv("ECRM_MIN_REPLACE_SHARE", "0.9")
    (folder / "access.log").write_text(log_text(4))
    with pytest.raises(FileError, match=r"access\.log.*5.*4"):
        ingest(conn, "weblogs", folder, INTERVAL)


def test_the_command_line_refuses_a_shrunk_file_until_allowed(db_url, tmp_path, monkeypatch, capsys):
    from ecrm.cli import main

    folder = tmp_path / "landing" / "weblogs" / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "access.log").write_text(log_text(30))
    monkeypatch.setenv("ECRM_WAREHOUSE_URL", db_url)
    monkeypatch.setenv("ECRM_LANDING", str(tmp_path / "landing"))
    main(["ingest", "weblogs", DAY.isoformat()])
    (folder / "access.log").write_text(log_text(2))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "weblogs", DAY.isoformat()])
    message = capsys.readouterr().err.strip()
    assert exit_.value.code == 12 and "\n" not in message  # FileError's exit code (docs/reliability.md)
    assert "access.log" in message and "--allow-shrink" in message
    main(["ingest", "weblogs", DAY.isoformat(), "--allow-shrink"])
    with psycopg.connect(db_url) as check:
        assert rows(check) == 2


@pytest.mark.slow
def test_an_airflow_run_replaces_a_shrunk_log_only_when_its_conf_says_so(warehouse, tmp_path, airflow_home,
                                                                         monkeypatch):
    from ecrm import airflow_env

    url = warehouse.create_database("shrunk_day_dag", migrated=False)
    monkeypatch.setenv("ECRM_LANDING", str(tmp_path / "landing"))
    folder = tmp_path / "landing" / "weblogs" / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "access.log").write_text(log_text(20))
    airflow_env.configure(url, home=airflow_home)
    dags = airflow_env.load_dags()
    assert str(airflow_env.run_day(dags, "ingest_web_logs", DAY).state) == "success"
    (folder / "access.log").write_text(log_text(1))
    assert str(airflow_env.run_day(dags, "ingest_web_logs", DAY).state) == "failed"
    with psycopg.connect(url) as conn:
        assert rows(conn) == 20
    assert str(airflow_env.run_day(dags, "ingest_web_logs", DAY, conf={"allow_shrink": True}).state) == "success"
    with psycopg.connect(url) as conn:
        assert rows(conn) == 1
