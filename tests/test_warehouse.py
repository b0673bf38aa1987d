"""The embedded warehouse: starts on a free port, is reused, stops, and never runs as root."""

from __future__ import annotations

import os

import psycopg

from ecrm.warehouse.embedded import SERVER_SETTINGS, EmbeddedWarehouse


def test_start_is_reused_and_serves_sql(tmp_path):
    wh = EmbeddedWarehouse(tmp_path / "wh")
    url = wh.start()
    try:
        assert wh.is_running()
        assert wh.start() == url, "a second start must reuse the running server"
        with psycopg.connect(url) as conn:
            assert conn.execute("select current_database()").fetchone()[0] == "ecrm"
            for name, value in SERVER_SETTINGS.items():  # analytics memory, not the OLTP defaults
                assert conn.execute(f"show {name}").fetchone()[0] == value, name
        pid = int((wh.pgdata / "postmaster.pid").read_text().split()[0])
        owner = os.stat(f"/proc/{pid}").st_uid
        assert owner != 0, "PostgreSQL must never run as root"
    finally:
        wh.stop()
    assert not wh.is_running()
    assert wh.status() == "stopped"
    wh.destroy()
    assert not wh.runtime.exists()


def test_restart_keeps_data(tmp_path):
    wh = EmbeddedWarehouse(tmp_path / "wh")
    with psycopg.connect(wh.start(), autocommit=True) as conn:
        conn.execute("create table kept (x int); insert into kept values (42)")
    wh.stop()
    with psycopg.connect(wh.start()) as conn:
        assert conn.execute("select x from kept").fetchone()[0] == 42
    wh.destroy()
