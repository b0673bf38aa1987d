"""Defect 9 (issue 26): configuration that is wrong is refused, naming what is wrong.

- flows.csv: every column is checked (ranges, trigger values, segment names from the segment map,
  audience names); a bad value fails the dbt build naming the flow, the column and the value;
- migrations: a file that does not match NNNN_name.sql is an error naming it, and a failing
  migration's error names the file and the line;
- ECRM_GATE_*: an unknown name is an error with the nearest valid one."""

from __future__ import annotations

import csv
import io
import shutil
import uuid
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


def test_the_gate_engine_and_workers_are_named_settings_and_checked(monkeypatch):
    """ECRM_GATE_ENGINE (folded | gx) and ECRM_GATE_WORKERS (issue 30) are known names; a value that means
    nothing is an error before any check runs, never a silent default."""
    from ecrm.quality import fold, gate

    monkeypatch.setenv("ECRM_GATE_ENGINE", "gx")
    monkeypatch.setenv("ECRM_GATE_WORKERS", "3")
    load_config(ROOT / "expectations" / "gate.yml")
    assert gate.gate_engine() == "gx" and fold.workers() == 3
    monkeypatch.setenv("ECRM_GATE_ENGINE", "fast")
    with pytest.raises(GateConfigError, match="ECRM_GATE_ENGINE must be one of folded, gx"):
        gate.gate_engine()
    monkeypatch.setenv("ECRM_GATE_WORKERS", "two")
    with pytest.raises(GateConfigError, match="ECRM_GATE_WORKERS must be a whole number"):
        fold.workers()


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


# --- flows.csv ------------------------------------------------------------------------------------

FLOWS = ROOT / "dbt_project" / "seeds" / "flows.csv"


def flows_with(flow: str, column: str, value: str) -> str:
    """flows.csv as shipped, with one cell changed."""
    rows = list(csv.DictReader(FLOWS.open(newline="")))
    [row] = [r for r in rows if r["flow"] == flow]
    row[column] = value
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the dbt project whose seeds/flows.csv the tests change (one copy: dbt parses it
    once, then partially)."""
    copy = tmp_path_factory.mktemp("flows") / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", copy, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    return copy


@pytest.fixture(scope="module")
def flows_db(warehouse) -> str:
    return warehouse.create_database(f"flows_{uuid.uuid4().hex[:8]}")


def build_flows_seed(url: str, project: Path, flows: str) -> None:
    """`dbt build` of the configuration seeds and the tests on them alone (the daily build runs them first)."""
    from ecrm.transform import run_dbt

    (project / "seeds" / "flows.csv").write_text(flows)
    run_dbt(["build", "--quiet", "--select", "flows rfm_segment_map audiences", "--indirect-selection", "cautious"],
            url, project_dir=project, env={"ECRM_RUN_DATE": "2026-10-01"})


BAD_FLOWS = [  # (flow, column, value, what the message must say)
    ("winback", "cooldown_days", "-5", "must be at least 1"),
    ("welcome", "holdout_pct", "150", "between 0 and 100"),
    ("welcome", "holdout_pct", "-10", "between 0 and 100"),
    ("reengage", "window_days", "0", "must be at least 1"),
    ("vip_thanks", "trigger_to", "Champion", "not a segment of seeds/rfm_segment_map.csv"),
    ("reengage", "trigger_to", "lapsd", "not a lifecycle stage"),
    ("vip_thanks", "priority", "-1", "must be at least 1"),
    ("welcome", "trigger_days", "-1", "must be 0 or more"),
    ("nudge_60d", "trigger_days", "0", "at least 1 for days_since_last_order"),
    ("winback", "measure_days", "-3", "must be at least 1"),
    ("welcome", "trigger_type", "first_purchase", "must be segment_transition"),
    ("vip_thanks", "audience", "vip", "collides with the RFM audience of that name"),
    ("welcome", "audience", "high_value_at_risk", "collides with the forecast audience"),
    ("reengage", "audience", "flow_winback", "is the audience of several flows: reengage, winback"),
]


@pytest.mark.parametrize(("flow", "column", "value", "says"), BAD_FLOWS,
                         ids=[f"{c}={v}" for _, c, v, _ in BAD_FLOWS])
def test_a_wrong_flows_value_fails_the_build_naming_flow_column_and_value(flows_db, project, flow, column, value,
                                                                          says):
    from ecrm.transform import DbtBuildFailed

    with pytest.raises(DbtBuildFailed) as info:
        build_flows_seed(flows_db, project, flows_with(flow, column, value))
    message = " ".join(str(info.value).split())
    shown = "reengage" if column == "audience" and value == "flow_winback" else flow
    assert f"seeds/flows.csv refused: flow {shown}: {column} = {value} " in message, message
    assert says in message, message


def test_the_shipped_flows_pass(flows_db, project):
    build_flows_seed(flows_db, project, FLOWS.read_text())
