"""The daily pipeline on Debian's PostgreSQL 15 (issue 27): managed PostgreSQL is often a major behind
the embedded 16, and SQL that only 16 accepts (an un-aliased subquery in FROM, GX's `{batch}`) once
let ingest and build pass and then failed the gate.

A warehouse of its own is started from /usr/lib/postgresql/15/bin (ECRM_PG_BIN) on its own port and
data folder; the initial load and two days go through every stage the DAGs run (ingest, build with
the forecast, gate, publish, push to the outbox, the report). Missing binaries FAIL the test (CI must run it):
`make test` installs `postgresql-15` when run as root.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from ecrm.intervals import day_interval

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
PG15_BIN = Path("/usr/lib/postgresql/15/bin")
START = date(2026, 10, 1)
DAYS = [START, START + timedelta(days=1)]
PUBLISHED = ["published.audience_members", "published.customer_segments", "published.segment_summary"]


@pytest.fixture(scope="module")
def pg15_day(tmp_path_factory):
    """Initial load + two days on PostgreSQL 15; yields (url, data folder, stage results per day)."""
    if not (PG15_BIN / "postgres").exists():
        pytest.fail(f"PostgreSQL 15 binaries are missing ({PG15_BIN}/postgres): install them with "
                    "`sudo apt-get install -y postgresql-15` (`make test` does it when run as root)")
    from ecrm.pipeline import SOURCES, build_marts, ingest_initial, ingest_interval, publish_segments
    from ecrm.report import write_report
    from ecrm.simulate import ShopSimulator
    from ecrm.warehouse.embedded import EmbeddedWarehouse
    from ecrm.warehouse.migrate import migrate

    data = tmp_path_factory.mktemp("pg15-data")
    gx_dir = data / "expectations"  # a copy of the GX context: results and Data Docs stay out of the repo
    shutil.copytree(ROOT / "expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ECRM_PG_BIN", str(PG15_BIN))
        env.setenv("ECRM_DATA_DIR", str(data))
        env.setenv("ECRM_LANDING", str(data / "landing"))
        env.setenv("ECRM_OUTBOX", str(data / "outbox"))
        env.setenv("ECRM_REPORTS", str(data / "reports"))
        env.setenv("ECRM_GX_PROJECT_DIR", str(gx_dir))
        warehouse = EmbeddedWarehouse(tmp_path_factory.mktemp("pg15-warehouse"))
        try:
            url = warehouse.start()
            migrate(url)  # as `ecrm warehouse migrate`, the DAGs' first task: checks the version too
            sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth",
                                start=START, customers=400, seed=15)
            sim.write_initial()
            ingest_initial(START, url=url)
            results = {}
            for day in DAYS:
                sim.write_day(day)
                for source in SOURCES:
                    ingest_interval(source, *day_interval(day), url=url)
                build_marts(*day_interval(day), url=url)
                results[day] = publish_segments(*day_interval(day), url=url)  # gate, publish, push
            write_report(DAYS[-1], url)  # publish_segments' last task: the day's report reads the marts
            yield url, data, results
        finally:
            warehouse.destroy()


def test_the_warehouse_runs_postgresql_15(pg15_day):
    url = pg15_day[0]
    with psycopg.connect(url) as conn:
        assert conn.info.server_version // 10000 == 15
        assert conn.execute("show server_version").fetchone()[0].startswith("15.")


def test_every_day_passes_the_gate_and_publishes(pg15_day):
    url = pg15_day[0]
    with psycopg.connect(url) as conn:
        gates = dict(conn.execute("select run_date, detail from ops.stage_runs where stage = 'gate'").fetchall())
        published = {table: conn.execute(f"select count(*) from {table}").fetchone()[0] for table in PUBLISHED}
        as_of = conn.execute("select max(as_of_date) from ops.publish_runs").fetchone()[0]
        failed = conn.execute("select suite, expectation, observed_value from ops.quality_results "
                              "where blocking and not passed").fetchall()
        # a query the server refuses is a failed check whose observed value is the error (any severity)
        errors = conn.execute("select suite, expectation, observed_value from ops.quality_results "
                              "where observed_value like 'error:%'").fetchall()
        withheld = conn.execute("select suite, expectation from ops.quality_results where withheld is not null").fetchall()
        checked = conn.execute("select count(distinct suite) from ops.quality_results").fetchone()[0]
    assert sorted(gates) == DAYS and checked >= 10
    assert errors == [] and failed == [] and withheld == []
    assert not any("withheld" in g for g in gates.values()), gates
    assert all(n > 0 for n in published.values()), published
    assert as_of == DAYS[-1]


def test_the_report_is_written(pg15_day):
    data = pg15_day[1]
    assert [p.name for p in (data / "reports").rglob("index.html")] == ["index.html"]


def test_the_last_day_reaches_the_outbox(pg15_day):
    url, data, _ = pg15_day
    manifest = json.loads((data / "outbox" / DAYS[-1].isoformat() / "manifest.json").read_text())
    pushed = sum(entry["rows"] for entry in manifest["audiences"].values())
    with psycopg.connect(url) as conn:
        assert pushed == conn.execute("select count(*) from published.audience_members").fetchone()[0] > 0
