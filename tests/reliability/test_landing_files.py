"""Landing-zone files that are not what they seem: a symlink that leads out of the landing zone, a
symlink loop or one that leads nowhere, a directory or an unreadable file under a file's name, and a
landing zone that moved. Each ends with the file named (a `failed` ledger row, the run closed as
failed) or with loads keyed by where the file is in the zone, not where the zone is mounted."""

from __future__ import annotations

import os
import shutil
from datetime import date

import psycopg
import pytest

from ecrm.intervals import day_interval
from ecrm.pipeline import ingest_interval
from ecrm.sources import FileError

DAY = date(2026, 10, 1)
LINE = '203.0.113.{a} - - [01/Oct/2026:13:{m:02d}:22 +0000] "GET /p/{n} HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11)"\n'


def log_text(count: int, offset: int = 0) -> str:
    return "".join(LINE.format(a=n % 250, m=n % 60, n=n) for n in range(offset, offset + count))


def day_folder(landing, source: str = "weblogs"):
    folder = landing / source / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def load(landing, monkeypatch, db_url, source: str = "weblogs", **flags) -> dict:
    monkeypatch.setenv("ECRM_LANDING", str(landing))
    return ingest_interval(source, *day_interval(DAY), run_id="t", url=db_url, **flags)


def ledger(conn) -> list[tuple]:
    return conn.execute("select status, file, rows_loaded, error from ops.load_ledger order by load_id").fetchall()


def last_run(conn) -> tuple:
    return conn.execute("select status, error from ops.ingest_runs order by ingest_run_id desc limit 1").fetchone()


def assert_refused(conn, error: FileError, name: str, why: str) -> None:
    """The day failed naming the file: a `failed` ledger row, the run closed as failed, nothing loaded."""
    assert name in str(error) and why in str(error), str(error)
    failed = [row for row in ledger(conn) if row[0] == "failed"]
    assert len(failed) == 1 and name in failed[0][1] and why in failed[0][3]
    status, run_error = last_run(conn)
    assert status == "failed" and name in run_error
    assert conn.execute("select count(*) from raw.web_requests").fetchone()[0] == 0
    assert conn.execute("select count(*) from quarantine.rejected_rows").fetchone()[0] == 0


def test_a_symlink_out_of_the_landing_zone_is_refused_and_nothing_of_it_is_copied(db_url, conn, tmp_path,
                                                                                   monkeypatch):
    outside = tmp_path / "secrets"
    outside.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n")
    landing = tmp_path / "landing"
    folder = day_folder(landing)
    (folder / "access.log").write_text(log_text(5))
    (folder / "access.log.1").symlink_to(outside)
    with pytest.raises(FileError) as error:
        load(landing, monkeypatch, db_url)
    assert_refused(conn, error.value, "access.log.1", "outside the landing zone")


def test_a_symlink_inside_the_landing_zone_loads(db_url, conn, tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    archive = landing / "archive"
    archive.mkdir(parents=True)
    (archive / "2026-10-01.log").write_text(log_text(4))
    (day_folder(landing) / "access.log").symlink_to(archive / "2026-10-01.log")
    load(landing, monkeypatch, db_url)
    assert conn.execute("select count(*) from raw.web_requests").fetchone()[0] == 4


@pytest.mark.parametrize("case", ["loop", "dangling", "directory", "fifo"])
def test_a_name_that_is_no_readable_file_fails_the_day_naming_it(db_url, conn, tmp_path, monkeypatch, case):
    """Fails for root too (CI runs as root, for whom chmod 000 is still readable)."""
    landing = tmp_path / "landing"
    folder = day_folder(landing)
    (folder / "access.log").write_text(log_text(5))
    bad = folder / "access.log.1"
    if case == "loop":
        bad.symlink_to(folder / "access.log.2")
        (folder / "access.log.2").symlink_to(bad)
    elif case == "dangling":
        bad.symlink_to(folder / "gone.log")
    elif case == "directory":
        bad.mkdir()
    else:
        os.mkfifo(bad)  # opening it would wait for a writer forever
    with pytest.raises(FileError) as error:
        load(landing, monkeypatch, db_url)
    why = {"loop": "symlink loop", "dangling": "symlink to nothing", "directory": "not a regular file",
           "fifo": "not a regular file"}[case]
    assert_refused(conn, error.value, "access.log.1", why)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file")
def test_an_unreadable_file_fails_the_day_naming_it(db_url, conn, tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    path = day_folder(landing) / "access.log"
    path.write_text(log_text(5))
    path.chmod(0)
    try:
        with pytest.raises(FileError) as error:
            load(landing, monkeypatch, db_url)
    finally:
        path.chmod(0o644)
    assert_refused(conn, error.value, "access.log", "cannot be read")


def test_the_command_line_names_an_unreadable_file_in_one_line(db_url, tmp_path, monkeypatch, capsys):
    from ecrm.cli import KNOWN_ERRORS, main

    landing = tmp_path / "landing"
    (day_folder(landing) / "access.log").symlink_to(tmp_path / "nowhere.log")
    monkeypatch.setenv("ECRM_WAREHOUSE_URL", db_url)
    monkeypatch.setenv("ECRM_LANDING", str(landing))
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "weblogs", DAY.isoformat()])
    assert exit_.value.code == next(c for _, name, c, _ in KNOWN_ERRORS if name == "FileError")
    message = capsys.readouterr().err.strip()
    assert "access.log" in message and "symlink to nothing" in message and "\n" not in message


def test_a_moved_landing_zone_replaces_a_changed_file_and_skips_an_unchanged_one(db_url, conn, tmp_path,
                                                                                   monkeypatch):
    """Loads are keyed by the file's place in the zone (source, day, name), not by its absolute path."""
    old = tmp_path / "mnt-a" / "landing"
    folder = day_folder(old)
    (folder / "access.log").write_text(log_text(7))
    (folder / "access.log.1").write_text(log_text(3, offset=100))
    load(old, monkeypatch, db_url)
    assert conn.execute("select count(*) from raw.web_requests").fetchone()[0] == 10

    new = tmp_path / "mnt-b" / "landing"
    shutil.copytree(old, new)
    (new / "weblogs" / DAY.isoformat() / "access.log").write_text(log_text(6))  # the day's log, re-delivered
    summary = load(new, monkeypatch, db_url)

    by_name = {os.path.basename(f["file"]): f["status"] for f in summary["files"]}
    assert by_name == {"access.log": "succeeded", "access.log.1": "skipped_duplicate"}
    rows = dict(conn.execute("select _file, count(*) from raw.web_requests group by 1").fetchall())
    assert rows == {str(new / "weblogs" / DAY.isoformat() / "access.log"): 6,
                    str(old / "weblogs" / DAY.isoformat() / "access.log.1"): 3}, "replaced, not appended"
    statuses = conn.execute("select file_key, status from ops.load_ledger order by load_id").fetchall()
    assert statuses == [("weblogs/2026-10-01/access.log", "replaced"), ("weblogs/2026-10-01/access.log.1", "succeeded"),
                        ("weblogs/2026-10-01/access.log", "succeeded"),
                        ("weblogs/2026-10-01/access.log.1", "skipped_duplicate")]


def test_a_moved_landing_zone_does_not_move_the_files_of_other_days(db_url, conn, tmp_path, monkeypatch):
    """The same name in another day's folder is another file: it never replaces this day's load."""
    landing = tmp_path / "landing"
    (day_folder(landing) / "access.log").write_text(log_text(7))
    load(landing, monkeypatch, db_url)
    other = landing / "weblogs" / "2026-10-02"
    other.mkdir()
    (other / "access.log").write_text(log_text(5, offset=500).replace("01/Oct", "02/Oct"))
    monkeypatch.setenv("ECRM_LANDING", str(landing))
    ingest_interval("weblogs", *day_interval(date(2026, 10, 2)), url=db_url)
    with psycopg.connect(db_url) as check:
        assert check.execute("select count(*) from raw.web_requests").fetchone()[0] == 12
