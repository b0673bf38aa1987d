"""`ecrm warehouse migrate` refuses a PostgreSQL major version it does not support (14 to 17), in
one line, before it changes anything; every supported one passes. The real path runs on the test
session's PostgreSQL 16; tests/test_postgres15.py runs the whole day on 15."""

from __future__ import annotations

import psycopg
import pytest

from ecrm.cli import KNOWN_ERRORS, main
from ecrm.warehouse import migrate as migrate_module
from ecrm.warehouse.migrate import UnsupportedPostgres, check_server_version, migrate


@pytest.mark.parametrize("version_num", [140000, 140019, 150020, 160004, 170006])
def test_every_supported_major_passes(version_num):
    check_server_version(version_num)


@pytest.mark.parametrize(("version_num", "shown"), [(130016, "13.16"), (120022, "12.22"), (90624, "9.6.24"),
                                                    (180001, "18.1"), (190000, "19.0")])
def test_an_unsupported_major_is_refused_in_one_line(version_num, shown):
    with pytest.raises(UnsupportedPostgres) as refused:
        check_server_version(version_num)
    message = str(refused.value)
    assert "\n" not in message
    assert f"PostgreSQL {shown}" in message and "14 to 17" in message


def test_migrate_on_this_servers_postgres_16_passes(bare_db_url):
    with psycopg.connect(bare_db_url) as conn:
        assert conn.info.server_version // 10000 == 16
    assert migrate(bare_db_url)  # applies every migration: the version check let it through


def test_the_cli_refuses_an_unsupported_server_before_migrating(bare_db_url, monkeypatch, capsys):
    """The real command against the real server, with 16 taken out of the supported range: exit code
    of MigrationError, one line on stderr, and not one table created."""
    monkeypatch.setattr(migrate_module, "SUPPORTED_MAJORS", range(14, 16))
    monkeypatch.setenv("ECRM_WAREHOUSE_URL", bare_db_url)
    with pytest.raises(SystemExit) as exit_:
        main(["warehouse", "migrate"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == next(code for _, name, code, _ in KNOWN_ERRORS if name == "MigrationError")
    assert len(err) == 1 and err[0].startswith("ecrm warehouse: PostgreSQL 16.") and "14 to 15" in err[0]
    with psycopg.connect(bare_db_url) as conn:
        assert conn.execute("select to_regclass('ops.schema_migrations')").fetchone()[0] is None
