"""Faults around a load: an empty file where a day had rows, a loader killed mid-COPY, the server
killed mid-load, two loads of the same day at once, and the command line a user types. Each must
end with either the whole interval loaded or nothing of it, a ledger that reconciles, and a trace
of what happened."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date

import psycopg
import pytest

from ecrm.intervals import day_interval
from ecrm.load.ingest import ingest
from ecrm.sources import FileError

DAY = date(2026, 10, 1)
INTERVAL = day_interval(DAY)
LINE = '203.0.113.{a} - - [01/Oct/2026:13:{m:02d}:22 +0000] "GET /p/{n} HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11)"\n'


def write_log(folder, count: int, offset: int = 0, name: str = "access.log"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with path.open("w") as out:
        for n in range(offset, offset + count):
            out.write(LINE.format(a=n % 250, m=n % 60, n=n))
    return path


def web_rows(conn) -> int:
    return conn.execute("select count(*) from raw.web_requests").fetchone()[0]


def runs(conn) -> list[tuple]:
    return conn.execute("select ingest_run_id, status, abandoned_by from ops.ingest_runs order by 1").fetchall()


def reconciles(conn) -> bool:
    return conn.execute("select bool_and(rows_read = rows_loaded + rows_quarantined) from ops.load_ledger "
                        "where status = 'succeeded'").fetchone()[0]


@pytest.mark.parametrize("empty", ["zero_byte", "empty_gzip", "all_quarantined"])
def test_an_empty_file_never_silently_replaces_a_loaded_day(conn, tmp_path, empty):
    """A redelivered file that is empty (or has no loadable line) must not replace its earlier load."""
    folder = tmp_path / "weblogs"
    path = write_log(folder, 3)
    name = "access.log.gz" if empty == "empty_gzip" else "access.log"
    if empty == "empty_gzip":
        (folder / name).write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    ingest(conn, "weblogs", folder, INTERVAL)
    data = {"zero_byte": b"", "empty_gzip": gzip.compress(b""), "all_quarantined": b"garbage\nmore garbage\n"}[empty]
    (folder / name).write_bytes(data)

    with pytest.raises(FileError) as error:
        ingest(conn, "weblogs", folder, INTERVAL)
    assert name in str(error.value)
    assert web_rows(conn) == 3, "the day's rows are still there"
    statuses = conn.execute("select status from ops.load_ledger order by load_id").fetchall()
    assert statuses == [("succeeded",), ("failed",)], "the earlier load is not marked replaced"

    # An operator who knows the day really is empty says so.
    ingest(conn, "weblogs", folder, INTERVAL, allow_empty=True)
    assert web_rows(conn) == 0
    assert conn.execute("select status from ops.load_ledger order by load_id").fetchall()[0] == ("replaced",)
    assert reconciles(conn)


def test_a_first_empty_event_export_fails_naming_the_file(conn, tmp_path):
    folder = tmp_path / "email"
    folder.mkdir()
    (folder / "events.jsonl").write_bytes(b"")
    with pytest.raises(FileError, match=r"events\.jsonl: empty file"):
        ingest(conn, "email", folder, INTERVAL)
    ingest(conn, "email", folder, INTERVAL, allow_empty=True)
    assert conn.execute("select status, rows_read from ops.load_ledger where status = 'succeeded'").fetchall() == \
        [("succeeded", 0)]


LOADER = """
import sys
from datetime import date
import psycopg
from ecrm.intervals import day_interval
from ecrm.load.ingest import ingest
from ecrm.warehouse import connect
with connect(sys.argv[1]) as conn:
    ingest(conn, "weblogs", __import__("pathlib").Path(sys.argv[2]), day_interval(date(2026, 10, 1)), "killed")
"""


def wait_for_copy(url: str, timeout: float = 60.0) -> int:
    """Wait until a COPY into raw.web_requests has sent rows; returns its backend pid."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute("select pid from pg_stat_progress_copy where tuples_processed > 1000").fetchone()
            if row:
                return row[0]
            time.sleep(0.02)
    raise AssertionError("the load never started copying")


def wait_gone(url: str, pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as watcher:
        while watcher.execute("select count(*) from pg_stat_activity where pid = %s", (pid,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed loader's session never ended"
            time.sleep(0.05)


@pytest.mark.slow
def test_a_loader_killed_mid_copy_leaves_nothing_and_the_next_run_marks_it_abandoned(db_url, conn, tmp_path):
    folder = tmp_path / "weblogs"
    write_log(folder, 400_000)
    loader = subprocess.Popen([sys.executable, "-c", LOADER, db_url, str(folder)], stderr=subprocess.PIPE)
    try:
        backend = wait_for_copy(db_url)
    finally:
        loader.send_signal(signal.SIGKILL)
        loader.wait()
    wait_gone(db_url, backend)
    assert web_rows(conn) == 0, "no partial rows"
    assert conn.execute("select count(*) from ops.load_ledger").fetchone()[0] == 0
    assert [r[1] for r in runs(conn)] == ["running"], "the killed run left a trace"

    ingest(conn, "weblogs", folder, INTERVAL, "rerun")
    assert web_rows(conn) == 400_000
    (killed, killed_status, by), (rerun, rerun_status, _) = runs(conn)
    assert (killed_status, by, rerun_status) == ("abandoned", rerun, "succeeded")
    assert reconciles(conn)


def wait_dead(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":  # dead, waiting to be reaped
            return
        assert time.monotonic() < deadline, f"process {pid} survived SIGKILL"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_server_killed_mid_load_names_the_file_and_a_rerun_loads_everything(tmp_path):
    from ecrm.warehouse.embedded import EmbeddedWarehouse
    from ecrm.warehouse.migrate import migrate

    wh = EmbeddedWarehouse(tmp_path / "own-warehouse")
    url = wh.start()
    try:
        migrate(url)
        folder = tmp_path / "weblogs"
        path = write_log(folder, 400_000)
        outcome: list[BaseException] = []

        def load() -> None:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    ingest(conn, "weblogs", folder, INTERVAL, "crash")
            except BaseException as exc:  # noqa: BLE001 - the test inspects it
                outcome.append(exc)

        worker = threading.Thread(target=load)
        worker.start()
        wait_for_copy(url)
        # The embedded warehouse runs with synchronous_commit=off (a disposable warehouse): a crash may
        # lose the last ~0.6 s of commits, here the run's `running` row. A checkpoint
        # first makes them as durable as a production server (synchronous_commit on) would have.
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("checkpoint")
        postmaster = int((wh.pgdata / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        for pid in [postmaster, *map(int, children)]:  # a crash, not a shutdown: nothing gets to clean up
            os.kill(pid, signal.SIGKILL)
        worker.join(60)
        for pid in [postmaster, *map(int, children)]:
            wait_dead(pid)
        assert len(outcome) == 1 and isinstance(outcome[0], FileError)
        assert str(path) in str(outcome[0]) and "lost the warehouse connection" in str(outcome[0])

        url = wh.start()
        with psycopg.connect(url, autocommit=True) as conn:
            assert web_rows(conn) == 0, "crash recovery left no partial rows"
            ingest(conn, "weblogs", folder, INTERVAL, "after-crash")
            assert web_rows(conn) == 400_000
            assert [r[1] for r in runs(conn)] == ["abandoned", "succeeded"]
            assert reconciles(conn)
    finally:
        wh.destroy()


def test_concurrent_loads_of_one_day_load_it_once(db_url, conn, tmp_path):
    folder = tmp_path / "weblogs"
    write_log(folder, 20_000)
    errors: list[BaseException] = []

    def load() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as own:
                ingest(own, "weblogs", folder, INTERVAL)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert web_rows(conn) == 20_000
    statuses = sorted(r[0] for r in conn.execute("select status from ops.load_ledger").fetchall())
    assert statuses == ["skipped_duplicate", "skipped_duplicate", "succeeded"]
    assert [r[1] for r in runs(conn)] == ["succeeded"] * 3, "a waiting run is never mistaken for a dead one"


def test_the_command_line_names_the_bad_file_without_a_traceback(db_url, tmp_path, monkeypatch, capsys):
    from ecrm.cli import KNOWN_ERRORS, main

    landing = tmp_path / "landing"
    (landing / "weblogs" / DAY.isoformat()).mkdir(parents=True)
    (landing / "weblogs" / DAY.isoformat() / "access.log").write_bytes(b"")
    monkeypatch.setenv("ECRM_WAREHOUSE_URL", db_url)
    monkeypatch.setenv("ECRM_LANDING", str(landing))
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "weblogs", DAY.isoformat()])
    assert exit_.value.code == next(code for _, name, code, _ in KNOWN_ERRORS if name == "FileError")
    assert "access.log: empty file" in capsys.readouterr().err
    main(["ingest", "weblogs", DAY.isoformat(), "--allow-empty"])
    assert '"status": "succeeded"' in capsys.readouterr().out


def test_ecrm_ingest_shop_pulls_from_the_shop_database_when_configured(warehouse, db_url, tmp_path, monkeypatch,
                                                                       capsys):
    import json

    from ecrm.cli import main
    from ecrm.simulate import ShopSimulator
    from ecrm.simulate.shop_db import apply_changes

    shop_url = warehouse.create_database(f"shop_{db_url.rsplit('/', 1)[1]}", migrated=False)
    sim = ShopSimulator(landing=tmp_path / "sim", outbox=tmp_path / "outbox", truth=tmp_path / "truth",
                        start=DAY, customers=100, seed=5)
    sim.write_initial()
    apply_changes(shop_url, tmp_path / "sim" / "shop" / "initial")
    monkeypatch.setenv("ECRM_WAREHOUSE_URL", db_url)
    monkeypatch.setenv("ECRM_LANDING", str(tmp_path / "landing"))  # holds no shop export at all
    monkeypatch.setenv("ECRM_SHOP_DB_URL", shop_url)
    main(["ingest", "shop", DAY.isoformat()])
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "database"
    with psycopg.connect(db_url) as conn, psycopg.connect(shop_url) as shop:
        assert conn.execute("select count(*) from raw.orders").fetchone()[0] == \
            shop.execute("select count(*) from shop.orders").fetchone()[0] > 0


@pytest.mark.slow
def test_an_airflow_run_loads_an_empty_day_only_when_its_conf_says_so(warehouse, tmp_path, airflow_home,
                                                                       monkeypatch):
    from ecrm import airflow_env
    from ecrm.warehouse.migrate import migrations

    url = warehouse.create_database("empty_day_dag", migrated=False)  # the DAG's first task migrates it
    monkeypatch.setenv("ECRM_LANDING", str(tmp_path / "landing"))
    folder = tmp_path / "landing" / "weblogs" / DAY.isoformat()
    write_log(folder, 5)
    airflow_env.configure(url, home=airflow_home)
    dags = airflow_env.load_dags()
    assert str(airflow_env.run_day(dags, "ingest_web_logs", DAY).state) == "success"
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from ops.schema_migrations").fetchone()[0] == len(migrations())
    (folder / "access.log").write_bytes(b"")  # the day's log redelivered empty
    assert str(airflow_env.run_day(dags, "ingest_web_logs", DAY).state) == "failed"
    with psycopg.connect(url) as conn:
        assert web_rows(conn) == 5
    assert str(airflow_env.run_day(dags, "ingest_web_logs", DAY, conf={"allow_empty": True}).state) == "success"
    with psycopg.connect(url) as conn:
        assert web_rows(conn) == 0
