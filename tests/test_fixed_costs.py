"""The daily build's fixed costs (issue 21): what a production day leaves out must still be right.

- A new run date keeps dbt's partial parse (the date reaches dbt at run time, not as a --vars
  value): dbt's own log has no "Unable to do partial parsing" line for the second day.
- The data tests' `where` filters get the run date at run time (no parse-time placeholder left).
- Unit tests are out of the daily build and run here instead (this file is part of `make test`).
- Seeds load on the first build and when they change, not every day.
- The GX context is built once per process and each run's connections carry that run's date.
No timings are asserted.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT

START = date(2026, 10, 1)
DAY1, DAY2, DAY3 = START, START + timedelta(days=1), START + timedelta(days=2)


SEEDS = len(list((ROOT / "dbt_project" / "seeds").glob("*.csv")))  # every seed of the project


def unit_tests_in_project() -> int:
    """The unit tests defined in dbt_project/models/**/*.yml (entries of their `unit_tests:` lists)."""
    import yaml

    return sum(len((yaml.safe_load(path.read_text()) or {}).get("unit_tests") or [])
               for path in (ROOT / "dbt_project" / "models").rglob("*.yml"))


def _results(target: Path) -> list[dict]:
    return json.loads((target / "run_results.json").read_text())["results"]


def _invocations(log_file: Path) -> list[str]:
    """dbt.log split into one chunk per invocation (each starts with "Running with dbt=")."""
    text = log_file.read_text(errors="replace")
    return [chunk for chunk in text.split("Running with dbt=")[1:]]


@pytest.fixture(scope="module")
def days(warehouse, tmp_path_factory):
    """A small shop built for DAY1 and DAY2 with the daily build, in a dbt target and log folder of its
    own (other dbt runs of the checkout must not replace the saved parse between the two days)."""
    from ecrm import pipeline, transform
    from ecrm.intervals import day_interval
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("fixed-costs")
    target, logs = data / "dbt-target", data / "dbt-logs"
    keys = ("ECRM_DATA_DIR", "ECRM_LANDING", "ECRM_OUTBOX", "DBT_TARGET_PATH", "DBT_LOG_PATH")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"),
                       "ECRM_OUTBOX": str(data / "outbox"), "DBT_TARGET_PATH": str(target),
                       "DBT_LOG_PATH": str(logs)})
    try:
        url = warehouse.create_database("fixed_costs")
        sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                            customers=300, seed=5)
        sim.write_initial()
        pipeline.ingest_initial(START, url=url)
        built = {}
        for day in (DAY1, DAY2):
            sim.write_day(day)
            for source in pipeline.SOURCES:
                pipeline.ingest_interval(source, *day_interval(day), url=url)
            counts = transform.build(day, url, {"holdout_pct": 10})
            built[day] = {"counts": counts, "results": _results(target), "parse": dict(transform.last_invocation)}
        yield {"url": url, "target": target, "logs": logs, "built": built, "sim": sim}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_a_new_run_date_keeps_the_partial_parse(days):
    assert days["built"][DAY2]["parse"]["parse"] == "partial", days["built"][DAY2]["parse"]
    chunks = _invocations(days["logs"] / "dbt.log")
    assert len(chunks) >= 2
    # dbt's own words: the first build of a fresh target parses everything, the second must not
    assert "Unable to do partial parsing" not in chunks[-1]
    assert "Partial parsing enabled" in chunks[-1] or "skipping parsing" in chunks[-1]


def test_where_filters_get_the_run_date_at_run_time(days):
    tests = [r for r in days["built"][DAY2]["results"] if r["unique_id"].startswith("test.")]
    compiled = [r.get("compiled_code") or "" for r in tests]
    filtered = [code for code in compiled if "dbt_subquery" in code]
    assert filtered, "no data test with a where filter ran"
    assert not [code for code in filtered if "'1970-01-01'" in code]
    assert any(f"'{DAY2.isoformat()}'" in code for code in filtered)


def test_daily_build_has_no_unit_tests_and_loads_seeds_once(days):
    first, second = (days["built"][d]["results"] for d in (DAY1, DAY2))
    assert not [r for r in first + second if r["unique_id"].startswith("unit_test.")]
    assert len([r for r in first if r["unique_id"].startswith("seed.")]) == SEEDS  # a new warehouse: loaded
    assert not [r for r in second if r["unique_id"].startswith("seed.")]  # unchanged: not reloaded
    # their data tests still run every day
    assert [r for r in second if r["unique_id"].startswith("test.") and "segment_map" in r["unique_id"]]


def test_changed_seeds_are_loaded_again(days):
    from ecrm import pipeline, transform
    from ecrm.intervals import day_interval

    url = days["url"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("update ops.dbt_seed_state set checksum = 'an older seed file'")
    days["sim"].write_day(DAY3)
    for source in pipeline.SOURCES:
        pipeline.ingest_interval(source, *day_interval(DAY3), url=url)
    transform.build(DAY3, url, {"holdout_pct": 10})
    results = _results(days["target"])
    assert len([r for r in results if r["unique_id"].startswith("seed.")]) == SEEDS
    assert transform.seeds_current(url, transform.seeds_checksum())


def test_unit_tests_run_in_make_test(days):
    """dbt's unit tests left the daily build; they run here (pytest is `make test` and CI)."""
    from ecrm.transform import RUN_DATE_ENV, run_dbt

    result = run_dbt(["test", "--select", "test_type:unit", "--quiet"], days["url"],
                     env={RUN_DATE_ENV: DAY2.isoformat()})
    ran = [r for r in result.result.results if r.node.unique_id.startswith("unit_test.")]
    assert ran and len(ran) == unit_tests_in_project()
    assert all(str(r.status) == "pass" for r in ran), [(r.node.unique_id, r.message) for r in ran]


def test_gx_context_is_built_once_and_each_run_connects_with_its_own_date(days, tmp_path):
    from ecrm.quality import gate
    from ecrm.quality.config import load_config

    gx_dir = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    saved = os.environ.get("ECRM_GX_PROJECT_DIR")
    os.environ["ECRM_GX_PROJECT_DIR"] = str(gx_dir)
    try:
        context = gate.gx_context()
        assert gate.gx_context() is context
        config = load_config()
        seen = []
        for day in (DAY1, DAY2):
            gate.set_warehouse_url(context, gate.gate_url(days["url"], day, config))
            engine = context.data_sources.get("warehouse").get_execution_engine().engine
            with engine.connect() as connection:
                seen.append(connection.exec_driver_sql("select ops.gate_run_date()").scalar())
            gate._reset_engines(context)
        assert seen == [DAY1, DAY2]
    finally:
        if saved is None:
            os.environ.pop("ECRM_GX_PROJECT_DIR", None)
        else:
            os.environ["ECRM_GX_PROJECT_DIR"] = saved
