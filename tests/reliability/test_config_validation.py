"""Defect 9 (issue 26): configuration that is wrong is refused, naming what is wrong.

- flows.csv: every column is checked (ranges, trigger values, segment names from the segment map,
  audience names); a bad value fails the dbt build naming the flow, the column and the value;
- migrations: a file that does not match NNNN_name.sql is an error naming it, and a failing
  migration's error names the file and the line;
- ECRM_GATE_*: an unknown name is an error with the nearest valid one."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from ecrm.quality.config import GateConfigError, load_config
from ecrm.warehouse.migrate import MIGRATIONS_DIR, MigrationError, migrate, migrations

ROOT = Path(__file__).resolve().parents[2]


# --- ECRM_GATE_* ----------------------------------------------------------------------------------

def test_a_misspelt_gate_setting_is_an_error_with_the_nearest_name(monkeypatch):
    monkeypatch.setenv("ECRM_GATE_VOLUME_TOLERENCE", "5")
    with pytest.raises(GateConfigError, match="ECRM_GATE_VOLUME_TOLERENCE: did you mean ECRM_GATE_VOLUME_TOLERANCE"):
        load_config(ROOT / "expectations" / "gate.yml")


def test_known_gate_variables_are_accepted_and_a_bad_number_is_named(monkeypatch):
    for name, value in (("ECRM_GATE_VOLUME_TOLERANCE", "5"), ("ECRM_GATE_QUARANTINE_LIMIT", "20"),
                        ("ECRM_GATE_DATA_DOCS", "0"), ("ECRM_GATE_SEVERITY", "")):
        monkeypatch.setenv(name, value)
    config = load_config(ROOT / "expectations" / "gate.yml")
    assert config.settings["volume_tolerance"] == 5 and config.quarantine_limit == 20
    monkeypatch.setenv("ECRM_GATE_FRESHNESS_HOURS", "six")
    with pytest.raises(GateConfigError, match="ECRM_GATE_FRESHNESS_HOURS must be a number"):
        load_config(ROOT / "expectations" / "gate.yml")


# --- migrations -----------------------------------------------------------------------------------

@pytest.fixture
def shipped(tmp_path) -> Path:
    """A copy of the shipped migrations, to add files to."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for m in migrations():
        (folder / m.file).write_text(m.sql)
    return folder


@pytest.mark.parametrize("name", ["0004_add-x.sql", "0004_Add_X.sql", "4_add_x.sql", "0004_add_x.SQL"])
def test_a_misnamed_migration_is_an_error_naming_it(shipped, bare_db_url, name):
    (shipped / name).write_text("create table ops.x (id int);\n")
    with pytest.raises(MigrationError, match=f"migration file {name} does not match the naming pattern"):
        migrate(bare_db_url, shipped)
    with psycopg.connect(bare_db_url) as conn:  # and nothing was applied
        assert conn.execute("select to_regclass('ops.schema_migrations')").fetchone()[0] is None


def test_a_failing_migration_names_the_file_and_the_line_and_applies_nothing_of_it(shipped, bare_db_url):
    latest = len(migrations(shipped))
    name = f"{latest + 1:04d}_add_x.sql"
    (shipped / name).write_text("create table ops.x (id int);\n\ncreate tabel ops.y (id int);\n")
    with pytest.raises(MigrationError, match=rf"migration {name} failed at line 3 \(create tabel ops\.y") as info:
        migrate(bare_db_url, shipped)
    assert "syntax error" in str(info.value)
    with psycopg.connect(bare_db_url) as conn:
        assert conn.execute("select max(version) from ops.schema_migrations").fetchone()[0] == latest
        assert conn.execute("select to_regclass('ops.x')").fetchone()[0] is None


def test_the_shipped_migrations_folder_holds_only_well_named_files():
    assert [m.file for m in migrations()] == sorted(e.name for e in MIGRATIONS_DIR.iterdir() if e.name.endswith(".sql"))
