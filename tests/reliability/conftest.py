"""Fixtures of the reliability suite. The parent folder's conftest (the embedded warehouse,
`warehouse`, whose databases are migrated, `db_url`, `bare_db_url`, `conn`) applies here too; this
file adds tests/ to sys.path so modules here can reuse helpers of the tests next to it
(test_quality_gate's assert_blocked, ...)."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


# --- the quality gate and builds: one built warehouse shared by the gate and build tests -----------

@dataclass(frozen=True)
class GateTemplate:
    name: str        # template database: day 1 built, gated and published; day 2 built
    data: Path       # ECRM_DATA_DIR of the simulated shop (landing/, outbox/, truth/)
    gx_dir: Path     # a copy of expectations/ (results and Data Docs stay out of the repo)

    def env(self) -> dict[str, str]:
        return {"ECRM_DATA_DIR": str(self.data), "ECRM_LANDING": str(self.data / "landing"),
                "ECRM_OUTBOX": str(self.data / "outbox"), "ECRM_GX_PROJECT_DIR": str(self.gx_dir)}


@pytest.fixture(scope="session")
def gate_template(warehouse, tmp_path_factory) -> GateTemplate:
    """The same small realistic warehouse as tests/test_quality_gate.py (600 customers, seed 11), built
    once per session; the environment is restored right after, tests set it with `gate_env`."""
    from test_quality_gate import DAY1, DAY2, ROOT, START

    from ecrm.intervals import day_interval
    from ecrm.pipeline import SOURCES, build_marts, ingest_initial, ingest_interval, publish_segments
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("rel-gate")
    template = GateTemplate(f"rel_gate_{uuid.uuid4().hex[:8]}", data, data / "expectations")
    shutil.copytree(ROOT / "expectations", template.gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    saved = {k: os.environ.get(k) for k in template.env()}
    os.environ.update(template.env())
    try:
        url = warehouse.create_database(template.name)
        # E-mail events in their own day's export (not the 02:00 export of the next day): the gate
        # tests need the day's campaign events, and the suppression flags built from them, on DAY2.
        sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                            customers=600, seed=11, delivery="shop,weblogs")
        sim.write_initial()
        ingest_initial(START, url=url)
        for day in (DAY1, DAY2):
            sim.write_day(day)
            for source in SOURCES:
                ingest_interval(source, *day_interval(day), url=url)
            build_marts(*day_interval(day), url=url)
            if day == DAY1:
                publish_segments(*day_interval(day), url=url)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return template


@pytest.fixture
def gate_env(gate_template, monkeypatch) -> GateTemplate:
    for key, value in gate_template.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ECRM_GATE_SEVERITY", raising=False)
    monkeypatch.delenv("ECRM_GATE_CONFIG", raising=False)
    return gate_template


@contextmanager
def template_copy(warehouse, template: str, prefix: str):
    """A private copy of a template database; yields its URL and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(warehouse.url("postgres"), autocommit=True) as admin:
        admin.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                      "where datname = %s and pid <> pg_backend_pid()", (template,))
        admin.execute(f'create database "{name}" template "{template}"')
    try:
        yield warehouse.url(name)
    finally:
        with psycopg.connect(warehouse.url("postgres"), autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def gate_day2(warehouse, gate_env, tmp_path, monkeypatch):
    """A private copy of the template warehouse and an empty outbox; yields (url, conn, outbox) like
    test_quality_gate's `day2`, so its assert_blocked works on it."""
    outbox = tmp_path / "outbox"
    monkeypatch.setenv("ECRM_OUTBOX", str(outbox))
    with template_copy(warehouse, gate_env.name, "rg") as url, psycopg.connect(url, autocommit=True) as conn:
        yield url, conn, outbox


@pytest.fixture
def gate_built(warehouse, gate_env):
    """A private copy of the template warehouse (days 1 and 2 built); yields (url, conn)."""
    with template_copy(warehouse, gate_env.name, "rb") as url, psycopg.connect(url, autocommit=True) as conn:
        yield url, conn


# Under pytest's default import mode this module and tests/conftest.py share the name `conftest`:
# tests/reliability is collected first, so `from conftest import ROOT` in tests/test_*.py finds this
# one. Keep the names they import here too (appended by the mailer work).
ROOT = TESTS.parent
