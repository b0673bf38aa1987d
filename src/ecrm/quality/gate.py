"""Run the GX checkpoint that guards publishing, and record every expectation's result.

The suites, validation definitions and checkpoint are GX's own JSON in expectations/gx/ (a GX
file context), so data people read and edit them without touching Python. The warehouse
connection string reaches GX as ${ECRM_GX_WAREHOUSE_URL}, never written into those files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg

from ..settings import get_settings

CHECKPOINT = "publish_gate"
RESULTS_DDL = """
create table if not exists ops.quality_results (
    run_date        date not null,
    checkpoint      text not null,
    suite           text not null,
    expectation     text not null,
    column_name     text,
    observed_value  text,
    passed          boolean not null,
    blocking        boolean not null,
    checked_at      timestamptz not null default now()
);
create index if not exists quality_results_run_date on ops.quality_results (run_date);
"""


class QualityGateFailed(RuntimeError):
    """Blocking expectations failed; the message names each of them."""


@dataclass
class ExpectationResult:
    suite: str
    expectation: str
    column: str | None
    observed: str
    passed: bool
    blocking: bool


def gx_context(project_dir: Path | None = None):
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # ~200 INFO lines per run otherwise
    import great_expectations as gx

    return gx.get_context(mode="file", project_root_dir=str(project_dir or get_settings().expectations_dir))


def _gx_url(url: str) -> str:
    # GX builds a SQLAlchemy engine: name the psycopg (3) driver explicitly.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def run_checkpoint(url: str, run_date: date, checkpoint: str = CHECKPOINT) -> list[ExpectationResult]:
    os.environ["ECRM_GX_WAREHOUSE_URL"] = _gx_url(url)
    context = gx_context()
    result = context.checkpoints.get(checkpoint).run()
    rows: list[ExpectationResult] = []
    for validation in result.run_results.values():
        suite = validation.suite_name
        for er in validation.results:
            config = er.expectation_config
            meta = config.meta or {}
            observed = er.result.get("observed_value", er.result.get("unexpected_count"))
            rows.append(ExpectationResult(
                suite=suite,
                expectation=meta.get("name") or config.type,
                column=config.kwargs.get("column"),
                observed="" if observed is None else str(observed)[:500],
                passed=bool(er.success),
                blocking=meta.get("severity", "blocking") != "warning",
            ))
    return rows


def record(conn: psycopg.Connection, run_date: date, checkpoint: str, rows: list[ExpectationResult]) -> None:
    """Keep the results (a rerun of the day replaces its earlier rows)."""
    with conn.transaction():
        conn.execute(RESULTS_DDL)
        conn.execute("delete from ops.quality_results where run_date = %s and checkpoint = %s", (run_date, checkpoint))
        with conn.cursor().copy("copy ops.quality_results (run_date, checkpoint, suite, expectation, column_name, "
                                "observed_value, passed, blocking) from stdin") as copy:
            for r in rows:
                copy.write_row((run_date, checkpoint, r.suite, r.expectation, r.column, r.observed, r.passed,
                                r.blocking))


def enforce(conn: psycopg.Connection, url: str, run_date: date) -> list[ExpectationResult]:
    """Run, record, and raise QualityGateFailed if any blocking expectation failed."""
    rows = run_checkpoint(url, run_date)
    record(conn, run_date, CHECKPOINT, rows)
    failed = [r for r in rows if not r.passed and r.blocking]
    if failed:
        names = "; ".join(f"{r.suite}.{r.expectation}({r.column or ''}) observed {r.observed}" for r in failed)
        raise QualityGateFailed(f"quality gate {CHECKPOINT} blocked publishing for {run_date}: {names}")
    return rows
