"""Every benchmark still runs. Each one in benchmarks/ runs here at a toy size, as a user would run it
(its own embedded PostgreSQL, the real pipeline), and must exit 0 and print its result line. The
figures themselves are not asserted: at this size they mean nothing, and speed is measured by the
benchmarks at their real sizes, never by tests. bench_partitions.py once broke for weeks when a
migration landed, because nothing ran it.

dbt_critical_path.py is not run here: it only reads a build's run_results.json; bench_dbt.py, which
calls it for its top nodes, is."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT

CASES = {  # name: (arguments, what its result line looks like)
    "lift_coverage": (["--campaigns", "200"], r"demo-like .* \d+\.\d%"),
    "bench_load": (["--rows", "5000", "--repeat", "1"], r"web_realistic copy +[\d,]+"),
    "bench_retention": (["--days", "3", "--rows-per-day", "2000"], r"drop partition [\d.]+ s"),
    "bench_predict": (["--customers", "3000"], r"fit \+ scoring: [\d.]+ s"),
    "bench_email": (["--events", "3000", "--history", "20000", "--repeat", "1"], r"ecrm ingest email +[\d.]+ +[\d.]+x"),
    "bench_push": (["--customers", "3000", "--repeat", "1"], r"ecrm push \(outbox\) +[\d.]+ +[\d.]+x"),
    "bench_gate": (["--customers", "3000"], r"gate\.enforce \(warm\) [\d.]+ s / counting query"),
    "bench_report": (["--customers", "2000", "--days", "5", "--repeat", "1"], r"write_report end to end +[\d.]+"),
    "bench_dbt": (["--customers", "2000", "--history", "3", "6", "--repeat", "1", "--nodes", "3"],
                  r"6/3 days ratio run [\d.]+x, build [\d.]+x"),
    "bench_partitions": (["--customers", "2000", "--days", "5", "--repeat", "1", "--nodes", "3"],
                         r"daily dbt build [\d.]+ -> [\d.]+ s \([\d.]+x\)"),
    "bench_day": (["--customers", "3000", "--days", "5"],
                  r"build: dbt invocations [\d. +]+ s wall; \d+ nodes, [\d.]+ s of node time \(.*model \d+ / [\d.]+ s.*\); top 8:\n +[\d.]+ s  \w+\.ecrm\.(?s:.*)\nday +[\d.]+ +[\d.]+ +[\d.]+x"),
}


def test_every_benchmark_is_smoke_tested():
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"__init__", "dbt_critical_path"}
    assert scripts == set(CASES), "a benchmark without a smoke run here (or one that is gone): add it to CASES"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_benchmark_runs_at_a_toy_size(name, tmp_path):
    args, result_line = CASES[name]
    if name in ("bench_push", "bench_gate"):  # their warehouse folder: a temporary one of this test
        args = [*args, "--dir", str(tmp_path / "warehouse")]
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args], cwd=tmp_path,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"{name} exited {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert re.search(result_line, run.stdout), f"{name} printed no result line:\n{run.stdout[-3000:]}"
