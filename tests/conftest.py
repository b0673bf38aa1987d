"""Shared fixtures: one embedded PostgreSQL per test session (never a server started by hand),
a fresh, migrated database per test that needs isolation, and a project-local Airflow in a temp folder."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

# Airflow reads its configuration at first import: point it at a throwaway home before any test
# imports it, so tests never touch ~/airflow or the developer's .airflow/.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ecrm-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.pop("ECRM_WAREHOUSE_URL", None)  # tests use their own server, never a configured one

ROOT = Path(__file__).resolve().parents[1]

# Every test process (`make test` runs two pytest-xdist workers) writes dbt's artifacts and logs and
# GX's results into folders of its own, never the checkout's: two dbt invocations sharing target/
# would read each other's partial parse, manifest and run_results.json (lineage reads those).
_SCRATCH = Path(tempfile.mkdtemp(prefix="ecrm-test-scratch-"))
os.environ["DBT_TARGET_PATH"] = str(_SCRATCH / "dbt-target")
os.environ["DBT_LOG_PATH"] = str(_SCRATCH / "dbt-logs")
shutil.copytree(ROOT / "expectations", _SCRATCH / "expectations", ignore=shutil.ignore_patterns("uncommitted"))
os.environ["ECRM_GX_PROJECT_DIR"] = str(_SCRATCH / "expectations")


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory):
    from ecrm.warehouse.embedded import DATABASE, EmbeddedWarehouse
    from ecrm.warehouse.migrate import migrate

    class MigratedWarehouse(EmbeddedWarehouse):
        """Every database it creates has been through `ecrm warehouse migrate`, as the DAGs' first task and
        the demo do it: a copy of one template migrated once per session. `migrated=False` gives an
        empty database (a shop's own database, Airflow's metadata, the migration tests)."""

        TEMPLATE = "ecrm_migrated_template"

        def create_database(self, name: str, migrated: bool = True) -> str:
            if not migrated or name in (DATABASE, self.TEMPLATE):
                return super().create_database(name)
            import psycopg

            with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
                if not admin.execute("select 1 from pg_database where datname = %s", (self.TEMPLATE,)).fetchone():
                    migrate(super().create_database(self.TEMPLATE))
                if not admin.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
                    admin.execute(f'create database "{name}" template "{self.TEMPLATE}"')
            return self.url(name)

    wh = MigratedWarehouse(tmp_path_factory.mktemp("warehouse"))
    wh.start()
    yield wh
    wh.destroy()


@pytest.fixture
def db_url(warehouse) -> str:
    """A new database on the session's server, migrated and empty."""
    return warehouse.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def bare_db_url(warehouse) -> str:
    """A new database with nothing in it: not even the warehouse's tables."""
    return warehouse.create_database(f"b_{uuid.uuid4().hex[:12]}", migrated=False)


@pytest.fixture
def conn(db_url):
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def copy_values():
    """A parser's output in one comparable shape, whichever path produced it: sorted (line, values
    as COPY text sees them) for rows, (line, reason) for rejects. The column-wise fast paths and
    the line-by-line parsers must give the same list."""

    def normalize(items) -> list:
        from ecrm.sources import Reject, RowBlock

        out = []
        for item in items:
            if isinstance(item, RowBlock):
                columns = [c.to_pylist() for c in item.columns]
                out += [(n, tuple(col[i] for col in columns)) for i, n in enumerate(item.line_numbers.to_pylist())]
            elif isinstance(item[1], Reject):
                out.append((item[0], item[1].reason))
            else:
                out.append((item[0], tuple(None if v is None else ("t" if v else "f") if isinstance(v, bool)
                                           else str(v) for v in item[1])))
        return sorted(out)

    return normalize
