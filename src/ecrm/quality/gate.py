"""Run the GX checkpoint that guards publishing, record every result, quarantine the failing rows.

The suites, validation definitions and checkpoint are GX's own JSON in expectations/gx/ (a GX
file context), so data people read and edit them without touching Python. The warehouse
connection string reaches GX as ${ECRM_GX_WAREHOUSE_URL}, never written into those files.

Every check is about one run date. GX has no run-date parameter for SQL query assets, so the gate
opens GX's connections with session settings (`-c ecrm.run_date=...` plus the thresholds of
expectations/gate.yml) and the suites' SQL reads them through small functions
(ops.gate_run_date(), ops.gate_day_start(), ops.gate_day_end(), ops.gate_setting(name)). A
session setting belongs to one connection, so two gates of different days never see each other's
date, and rerunning an old day checks that day. All checks run in PostgreSQL; nothing is pulled
into pandas.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from ..mailer.publish import PUBLISHED_DDL
from ..settings import get_settings
from .config import GateConfig, load_config

CHECKPOINT = "publish_gate"
GATE_DDL = """
create schema if not exists ops;
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
create table if not exists ops.quality_quarantine (
    run_date        date not null,
    checkpoint      text not null,
    suite           text not null,
    expectation     text not null,
    table_name      text not null,
    row_key         jsonb,
    row_data        jsonb not null,
    reason          text not null,
    blocking        boolean not null,
    quarantined_at  timestamptz not null default now()
);
create index if not exists quality_quarantine_run_date on ops.quality_quarantine (run_date, suite);
create or replace function ops.gate_run_date() returns date language sql stable
    as $$ select current_setting('ecrm.run_date')::date $$;
create or replace function ops.gate_day_start() returns timestamptz language sql stable
    as $$ select current_setting('ecrm.run_date')::date::timestamp at time zone 'UTC' $$;
create or replace function ops.gate_day_end() returns timestamptz language sql stable
    as $$ select (current_setting('ecrm.run_date')::date + 1)::timestamp at time zone 'UTC' $$;
create or replace function ops.gate_setting(name text) returns numeric language sql stable
    as $$ select current_setting('ecrm.' || name)::numeric $$;
"""
_JOIN = re.compile(r"\bjoin\b", re.IGNORECASE)


class QualityGateFailed(RuntimeError):
    """Blocking expectations failed; the message names each of them."""

    def __init__(self, message: str, failed: list[ExpectationResult] | None = None):
        super().__init__(message)
        self.failed = failed or []


@dataclass
class ExpectationResult:
    suite: str
    expectation: str
    column: str | None
    observed: str
    passed: bool
    blocking: bool
    type: str = ""
    kwargs: dict = field(default_factory=dict)
    description: str = ""


def gx_project_dir() -> Path:
    """The GX file context: expectations/ of the project, or ECRM_GX_PROJECT_DIR (tests use a copy, so their
    results and Data Docs never land in the developer's expectations/gx/uncommitted)."""
    return Path(os.environ.get("ECRM_GX_PROJECT_DIR") or get_settings().expectations_dir)


def gx_context(project_dir: Path | None = None):
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # ~200 INFO lines per run otherwise
    import great_expectations as gx

    return gx.get_context(mode="file", project_root_dir=str(project_dir or gx_project_dir()))


def _gx_url(url: str) -> str:
    # GX builds a SQLAlchemy engine: name the psycopg (3) driver explicitly.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def session_settings(run_date: date, config: GateConfig) -> dict[str, str]:
    """The `ecrm.*` session settings every gate query reads."""
    return {"ecrm.run_date": run_date.isoformat(), **{f"ecrm.{k}": repr(v) for k, v in config.settings.items()}}


def gate_url(url: str, run_date: date, config: GateConfig) -> str:
    """The warehouse URL for GX, with the run date and thresholds as libpq `options` of every connection."""
    options = " ".join(f"-c {k}={v}" for k, v in session_settings(run_date, config).items())
    return f"{_gx_url(url)}{'&' if '?' in url else '?'}options={quote(options)}"


def prepare(conn: psycopg.Connection) -> None:
    """Create the result tables and the session-setting functions the suites call (idempotent)."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('ecrm-quality-gate'))")
        conn.execute(GATE_DDL)
        conn.execute(PUBLISHED_DDL)  # the audience-volume check reads ops.publish_runs


def run_checkpoint(url: str, run_date: date, checkpoint: str = CHECKPOINT, config: GateConfig | None = None,
                   ) -> tuple[list[ExpectationResult], dict[str, dict]]:
    """Run the checkpoint for `run_date`; returns the results and, per suite, its asset (for quarantine)."""
    config = config or load_config()
    os.environ["ECRM_GX_WAREHOUSE_URL"] = gate_url(url, run_date, config)
    context = gx_context()
    cp = context.checkpoints.get(checkpoint)
    assets = {vd.suite.name: {"asset": vd.batch_definition.data_asset, "meta": vd.suite.meta or {}}
              for vd in cp.validation_definitions}
    try:
        result = cp.run()
        # Data Docs once per run: GX's UpdateDataDocsAction rebuilds the site once per validation
        # (9 renders of the whole index, ~4 s here); one build with this run's results costs ~0.7 s.
        context.build_data_docs(resource_identifiers=list(result.run_results.keys()))
    finally:
        for source in context.data_sources.all().values():
            engine = getattr(source, "_engine", None)
            if engine is not None:
                engine.dispose()  # don't keep idle connections (they would also pin the run date)
    rows: list[ExpectationResult] = []
    for validation in result.run_results.values():
        suite = validation.suite_name
        for er in validation.results:
            cfg = er.expectation_config
            meta = cfg.meta or {}
            name = meta.get("name") or cfg.type
            severity = config.severity_of(suite, name, meta.get("severity", "blocking"))
            rows.append(ExpectationResult(
                suite=suite, expectation=name, column=cfg.kwargs.get("column"),
                observed=_observed(er), passed=bool(er.success), blocking=severity != "warning",
                type=cfg.type, kwargs=dict(cfg.kwargs), description=cfg.description or ""))
    return rows, assets


def _observed(er) -> str:
    infos = er.exception_info or {}
    for info in [infos, *[v for v in infos.values() if isinstance(v, dict)]]:
        if info.get("raised_exception"):
            return f"error: {info.get('exception_message', '')}"[:500]
    res = er.result or {}
    if "observed_value" in res:
        observed = res["observed_value"]
    elif "unexpected_count" in res:
        observed = f"{res.get('unexpected_count')} of {res.get('element_count')} unexpected"
        sample = res.get("partial_unexpected_list") or []
        if sample:
            observed += f", e.g. {sample[:5]}"
    else:
        observed = ""
    return str(observed)[:500]


# --- quarantine: the rows behind a failed row-level expectation, fetched with bounded SQL ---------

def _batch_sql(asset, query: str | None = None) -> sql.Composable:
    """The asset as a FROM item, substituted the way GX substitutes {batch} into custom SQL."""
    table = getattr(asset, "table_name", None)
    if table:
        schema = getattr(asset, "schema_name", None)
        return sql.Identifier(schema, table) if schema else sql.Identifier(table)
    inner = sql.SQL("(") + sql.SQL(asset.query) + sql.SQL(")")
    if query is None or not _JOIN.search(query):
        return inner + sql.SQL(" as subselect")
    return inner


def _row_level_query(r: ExpectationResult, asset) -> sql.Composable | None:
    """SQL selecting the rows that violate `r`, or None when the expectation is not about rows."""
    kw = r.kwargs
    if r.type == "unexpected_rows_expectation":
        text = kw["unexpected_rows_query"]
        parts = text.split("{batch}")
        query = sql.SQL("")
        for i, part in enumerate(parts):
            query += sql.SQL(part.replace("{{", "{").replace("}}", "}"))
            if i < len(parts) - 1:
                query += _batch_sql(asset, text)
        return query
    batch = _batch_sql(asset)
    if r.type == "expect_compound_columns_to_be_unique" or r.type == "expect_column_values_to_be_unique":
        cols = kw.get("column_list") or [kw["column"]]
        idents = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        return sql.SQL("select * from {b} where ({c}) in (select {c} from {b} group by {c} having count(*) > 1)"
                       ).format(b=batch, c=idents)
    column = kw.get("column")
    if not column:
        return None
    col = sql.Identifier(column)
    if r.type == "expect_column_values_to_not_be_null":
        condition = sql.SQL("{c} is null").format(c=col)
    elif r.type == "expect_column_values_to_match_regex":
        condition = sql.SQL("not ({c} ~ {rx})").format(c=col, rx=sql.Literal(kw["regex"]))
    elif r.type == "expect_column_values_to_be_in_set":
        values = sql.SQL(", ").join(sql.Literal(v) for v in kw["value_set"])
        condition = sql.SQL("{c} not in ({v})").format(c=col, v=values)
    elif r.type == "expect_column_values_to_be_between":
        bounds = []
        if kw.get("min_value") is not None:
            bounds.append(sql.SQL("{c} < {v}").format(c=col, v=sql.Literal(kw["min_value"])))
        if kw.get("max_value") is not None:
            bounds.append(sql.SQL("{c} > {v}").format(c=col, v=sql.Literal(kw["max_value"])))
        if not bounds:
            return None
        condition = sql.SQL(" or ").join(bounds)
    else:
        return None
    return sql.SQL("select * from {b} where {cond}").format(b=batch, cond=condition)


def _reason(r: ExpectationResult) -> str:
    if r.description:
        return r.description
    args = {k: v for k, v in r.kwargs.items() if k not in ("batch_id", "unexpected_rows_query")}
    return f"{r.type} {json.dumps(args, default=str)}"[:1000]


def quarantine(conn: psycopg.Connection, run_date: date, checkpoint: str, rows: list[ExpectationResult],
               assets: dict[str, dict], config: GateConfig) -> dict[tuple[str, str], int]:
    """Keep up to quarantine_limit offending rows per failed row-level expectation, with the reason.

    Runs only for failed expectations, so a clean day costs nothing here. Returns rows kept per
    (suite, expectation) and folds a sample row into the expectation's observed value.
    """
    kept: dict[tuple[str, str], int] = {}
    with conn.transaction():
        conn.execute("delete from ops.quality_quarantine where run_date = %s and checkpoint = %s",
                     (run_date, checkpoint))
        for name, value in session_settings(run_date, config).items():
            conn.execute("select set_config(%s, %s, true)", (name, value))
        for r in rows:
            if r.passed or r.suite not in assets:
                continue
            info = assets[r.suite]
            query = _row_level_query(r, info["asset"])
            if query is None:
                continue
            keys = list(info["meta"].get("row_key") or [])
            try:
                with conn.transaction():  # a savepoint: one broken query must not lose the others
                    cur = conn.execute(sql.SQL(
                        "insert into ops.quality_quarantine (run_date, checkpoint, suite, expectation, table_name, "
                        "row_key, row_data, reason, blocking) "
                        "select {d}, {cp}, {s}, {e}, {t}, "
                        "(select nullif(jsonb_object_agg(key, value), '{{}}') from jsonb_each(to_jsonb(q)) where key = any({keys})), "
                        "to_jsonb(q), {reason}, {blocking} from ({query}) q limit {limit} "
                        "returning row_data").format(
                            d=sql.Literal(run_date), cp=sql.Literal(checkpoint), s=sql.Literal(r.suite),
                            e=sql.Literal(r.expectation), t=sql.Literal(info["meta"].get("table", r.suite)),
                            keys=sql.Literal(keys), reason=sql.Literal(_reason(r)),
                            blocking=sql.Literal(r.blocking), query=query,
                            limit=sql.Literal(config.quarantine_limit)))
                    found = cur.fetchall()
            except psycopg.Error as exc:
                logging.getLogger(__name__).warning("quarantine query for %s.%s failed: %s", r.suite, r.expectation,
                                                    exc)
                continue
            kept[(r.suite, r.expectation)] = len(found)
            if found and r.type == "unexpected_rows_expectation":
                r.observed = f"{r.observed} row(s), e.g. {json.dumps(found[0][0], default=str)}"[:500]
    return kept


def record(conn: psycopg.Connection, run_date: date, checkpoint: str, rows: list[ExpectationResult]) -> None:
    """Keep the results (a rerun of the day replaces its earlier rows)."""
    with conn.transaction():
        conn.execute("delete from ops.quality_results where run_date = %s and checkpoint = %s", (run_date, checkpoint))
        with conn.cursor().copy("copy ops.quality_results (run_date, checkpoint, suite, expectation, column_name, "
                                "observed_value, passed, blocking) from stdin") as copy:
            for r in rows:
                copy.write_row((run_date, checkpoint, r.suite, r.expectation, r.column, r.observed, r.passed,
                                r.blocking))


def enforce(conn: psycopg.Connection, url: str, run_date: date, checkpoint: str = CHECKPOINT,
            config: GateConfig | None = None) -> list[ExpectationResult]:
    """Audit `run_date`: run the checkpoint, quarantine failing rows, record, and raise if a blocking check failed."""
    config = config or load_config()
    prepare(conn)
    rows, assets = run_checkpoint(url, run_date, checkpoint, config)
    quarantine(conn, run_date, checkpoint, rows, assets, config)
    record(conn, run_date, checkpoint, rows)
    failed = [r for r in rows if not r.passed and r.blocking]
    warned = [r for r in rows if not r.passed and not r.blocking]
    log = logging.getLogger(__name__)
    for r in warned:
        log.warning("quality warning %s.%s(%s) observed %s", r.suite, r.expectation, r.column or "", r.observed)
    if failed:
        names = "; ".join(f"{r.suite}.{r.expectation}({r.column or ''}) observed {r.observed}" for r in failed)
        raise QualityGateFailed(
            f"quality gate {checkpoint} blocked publishing for {run_date}: {len(failed)} blocking expectation(s) "
            f"failed: {names}. Details: ops.quality_results / ops.quality_quarantine where run_date = '{run_date}'",
            failed)
    return rows
