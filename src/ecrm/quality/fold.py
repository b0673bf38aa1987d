"""The gate's checks folded into few queries: one scan per suite for its column and table checks.

GX validates a suite expectation by expectation: each column check adds a query for its sample of
unexpected values (a whole scan of a clean table, since nothing matches), each uniqueness check two
sorts, each custom-SQL check (UnexpectedRowsExpectation) runs its query twice (the rows, then their
count), and every statement is wrapped in BEGIN/ROLLBACK. At 1M customers that was 72x the cost of
one counting query (issue 30).

Here the suites stay GX's: the same JSON is read through the same GX context, each expectation's
result is computed by that expectation's own GX `_validate` (the same success rule, `mostly`,
result dict and so the same observed value), and the results are stored in the context's
validation results store like a checkpoint run's, so Data Docs (`ecrm docs`) render them. Only
the metrics come from fewer queries:

- one scan per suite's batch computes its row count and, per column check, the nulls and the
  rows breaking the check (`count(*) filter (where ...)`, the conditions GX writes for PostgreSQL);
- a uniqueness check is one GROUP BY over the batch (the rows whose value occurs more than once);
- the columns of the batch come from a `limit 0` query (no scan);
- each custom-SQL check runs once, as the count GX itself takes (`select count(*) from (...)`);
- a check's sample of unexpected values (GX's `partial_unexpected_list`) is fetched only when it
  failed, with GX's own query shape (`... where <unexpected> limit 20`).

A suite with an expectation type this module does not know, or whose folded queries raise (a
missing column, a broken custom query), is validated by GX itself, so errors read exactly as GX
reports them. ECRM_GATE_ENGINE=gx runs every suite through GX (the old path, for comparisons).
"""

from __future__ import annotations

import datetime
import logging
import os
import queue
import re
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

_JOIN = re.compile(r"\bjoin\b", re.IGNORECASE)
PARTIAL_UNEXPECTED_COUNT = 20  # GX's SUMMARY default
COLUMN_MAP = {  # expectation type -> GX's map metric
    "expect_column_values_to_not_be_null": "column_values.nonnull",
    "expect_column_values_to_match_regex": "column_values.match_regex",
    "expect_column_values_to_be_in_set": "column_values.in_set",
    "expect_column_values_to_be_between": "column_values.between",
    "expect_column_values_to_be_unique": "column_values.unique",
}
FOLDED_TYPES = frozenset({*COLUMN_MAP, "expect_compound_columns_to_be_unique", "expect_table_row_count_to_be_between",
                          "expect_table_columns_to_match_set", "unexpected_rows_expectation"})


# Seconds per statement of the last run in this process: (suite, what, seconds), where `what` is
# "scan (N checks)" for a suite's folded scan or the check's meta.name for its own query. For
# benchmarks/bench_day.py's "top checks of the gate"; nothing else reads it.
last_timings: list[tuple[str, str, float]] = []


class FoldError(RuntimeError):
    """The folded queries of a suite failed: validate it with GX instead."""


def foldable(suite) -> bool:
    """True when every expectation of the suite has a folded equivalent (and plain kwargs)."""
    for e in suite.expectations:
        cfg = e.configuration
        if cfg.type not in FOLDED_TYPES:
            return False
        kw = cfg.kwargs
        if kw.get("row_condition") or kw.get("condition_parser"):
            return False
        if cfg.type == "expect_column_values_to_be_between" and (kw.get("parse_strings_as_datetimes")
                                                                  or kw.get("output_strftime_format")):
            return False
        if cfg.type == "expect_compound_columns_to_be_unique" and kw.get("ignore_row_if",
                                                                       "all_values_are_missing") != "all_values_are_missing":
            return False
        if any(isinstance(v, dict) and "$PARAMETER" in v for v in kw.values()):
            return False
    return True


# --- the batch ---------------------------------------------------------------------------------

def batch_from(asset) -> sql.Composable:
    """The asset as a FROM item of the folded scan."""
    table = getattr(asset, "table_name", None)
    if table:
        schema = getattr(asset, "schema_name", None)
        return sql.Identifier(schema, table) if schema else sql.Identifier(table)
    return sql.SQL("(") + sql.SQL(asset.query) + sql.SQL(") as batch")


def substitute(query: str, asset) -> sql.Composable:
    """A custom query with {batch} replaced the way GX does it: `(query)`, aliased `AS subselect`
    when the query has no JOIN (with a JOIN the suite's SQL aliases it, docs/quality.md)."""
    table = getattr(asset, "table_name", None)
    if table:
        schema = getattr(asset, "schema_name", None)
        batch: sql.Composable = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    else:
        batch = sql.SQL("(") + sql.SQL(asset.query) + sql.SQL(")")
        if not _JOIN.search(query):
            batch += sql.SQL(" AS subselect")
    parts = query.rstrip("; \t\r\n\v\f").split("{batch}")
    out = sql.SQL("")
    for i, part in enumerate(parts):
        out += sql.SQL(part.replace("{{", "{").replace("}}", "}"))
        if i < len(parts) - 1:
            out += batch
    return out


# --- conditions, as GX writes them for PostgreSQL ----------------------------------------------

def _unexpected(cfg) -> sql.Composable:
    """The condition a row breaks the (non-null, non-unique) column check with."""
    kw = cfg.kwargs
    col = sql.Identifier(kw["column"])
    if cfg.type == "expect_column_values_to_not_be_null":
        return sql.SQL("{c} is null").format(c=col)
    if cfg.type == "expect_column_values_to_match_regex":
        ok = sql.SQL("{c} ~ {rx}").format(c=col, rx=sql.Literal(kw["regex"]))
    elif cfg.type == "expect_column_values_to_be_in_set":
        values = list(kw["value_set"] or [])
        ok = (sql.SQL("{c} in ({v})").format(c=col, v=sql.SQL(", ").join(sql.Literal(v) for v in values))
              if values else sql.SQL("false"))
    elif cfg.type == "expect_column_values_to_be_between":
        bounds = []
        lo, hi = kw.get("min_value"), kw.get("max_value")
        if lo is not None:
            bounds.append(sql.SQL("{c} {op} {v}").format(c=col, op=sql.SQL(">" if kw.get("strict_min") else ">="),
                                                        v=sql.Literal(lo)))
        if hi is not None:
            bounds.append(sql.SQL("{c} {op} {v}").format(c=col, op=sql.SQL("<" if kw.get("strict_max") else "<="),
                                                        v=sql.Literal(hi)))
        ok = sql.SQL(" and ").join(bounds) if bounds else sql.SQL("true")
    else:
        raise ValueError(cfg.type)
    return sql.SQL("{c} is not null and not ({ok})").format(c=col, ok=ok)


def _key(cfg) -> list[str]:
    return list(cfg.kwargs.get("column_list") or [cfg.kwargs["column"]])


def _duplicates(batch: sql.Composable, cols: list[str]) -> sql.Composable:
    """Rows whose value (tuple) occurs more than once: GX's `column_values.unique` / `compound_columns.unique`."""
    idents = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    # GX joins the counts back on equality, so a key with any NULL is never a duplicate
    filtered = sql.SQL(" and ").join(sql.SQL("{c} is not null").format(c=sql.Identifier(c)) for c in cols)
    return sql.SQL("select coalesce(sum(n), 0)::bigint from (select count(*) as n from {b} where {f} group by {k} "
                   "having count(*) > 1) as duplicated").format(b=batch, f=filtered, k=idents)


# --- one suite ---------------------------------------------------------------------------------

def _name(e) -> str:
    return (e.configuration.meta or {}).get("name") or e.configuration.type


# A custom check that only filters its own batch: `select <columns> from {batch} where <condition> limit N`.
# Its row count is least(rows matching, N), which the suite's scan can count beside the column checks.
_FILTER_ONLY = re.compile(r"^\s*select\s+(?P<cols>[\w\s,.*]+?)\s+from\s+\{batch\}\s+where\s+(?P<cond>.+?)"
                          r"\s+limit\s+(?P<limit>\d+)\s*$", re.IGNORECASE | re.DOTALL)
_NOT_A_FILTER = re.compile(r"\{batch\}|\b(limit|group\s+by|order\s+by|union|intersect|except|having|window|"
                           r"subselect|distinct)\b|;", re.IGNORECASE)


def filter_only(query: str) -> tuple[str, int] | None:
    """(condition, limit) when the custom query is a plain filter of its batch, else None."""
    m = _FILTER_ONLY.match(query.rstrip("; \t\r\n\v\f"))
    if not m or re.search(r"\bdistinct\b", m["cols"], re.IGNORECASE):
        return None
    cond = m["cond"]
    if _NOT_A_FILTER.search(cond):
        return None
    depth = 0
    for ch in cond:  # balanced parentheses: the condition is one expression
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return None
    if depth:
        return None
    return cond.replace("{{", "{").replace("}}", "}"), int(m["limit"])


def _scan_slots(expectations: list) -> tuple[list[sql.Composable], list[tuple[int, str, int]]]:
    """The select list of a suite's one scan and, per slot, (expectation index, what, position)."""
    selects = [sql.SQL("count(*)")]
    slots: list[tuple[int, str, int]] = []
    for i, e in enumerate(expectations):
        cfg = e.configuration
        if cfg.type == "unexpected_rows_expectation" and (found := filter_only(cfg.kwargs["unexpected_rows_query"])):
            cond, limit = found
            selects.append(sql.SQL("least(count(*) filter (where {c}), {n})").format(c=sql.SQL(cond),
                                                                                    n=sql.Literal(limit)))
            slots.append((i, "rows", len(selects) - 1))
        elif cfg.type in COLUMN_MAP and cfg.type != "expect_column_values_to_be_unique":
            col = sql.Identifier(cfg.kwargs["column"])
            selects.append(sql.SQL("count(*) filter (where {u})").format(u=_unexpected(cfg)))
            slots.append((i, "unexpected", len(selects) - 1))
            selects.append(sql.SQL("count(*) - count({c})").format(c=col))
            slots.append((i, "nulls", len(selects) - 1))
        elif cfg.type == "expect_column_values_to_be_unique":
            selects.append(sql.SQL("count(*) - count({c})").format(c=sql.Identifier(cfg.kwargs["column"])))
            slots.append((i, "nulls", len(selects) - 1))
        elif cfg.type == "expect_compound_columns_to_be_unique":
            cols = _key(cfg)
            selects.append(sql.SQL("count(*) filter (where {f})").format(f=sql.SQL(" or ").join(
                sql.SQL("{c} is not null").format(c=sql.Identifier(c)) for c in cols)))
            slots.append((i, "filtered", len(selects) - 1))
    return selects, slots


def statements(expectations: list, asset) -> dict[str, tuple[str, sql.Composable, str]]:
    """The suite's independent statements: key -> (label, query, kind), kind `row` (fetch one row) or
    `columns` (the result's column names). They may run in any order, on any connection."""
    batch = batch_from(asset)
    selects, slots = _scan_slots(expectations)
    in_scan = len({i for i, _, _ in slots}) + sum(
        e.configuration.type == "expect_table_row_count_to_be_between" for e in expectations)
    out = {"scan": (f"scan ({in_scan} checks)",
                    sql.SQL("select {s} from {b}").format(s=sql.SQL(", ").join(selects), b=batch), "row")}
    for i, e in enumerate(expectations):
        cfg = e.configuration
        if cfg.type == "expect_table_columns_to_match_set" and "columns" not in out:
            out["columns"] = (_name(e), sql.SQL("select * from {b} limit 0").format(b=batch), "columns")
        elif cfg.type == "unexpected_rows_expectation" and not filter_only(cfg.kwargs["unexpected_rows_query"]):
            query = substitute(cfg.kwargs["unexpected_rows_query"], asset)
            out[f"rows {i}"] = (_name(e), sql.SQL("SELECT COUNT(*) as unexpected_row_count FROM ({q}) AS "
                                                  "substituted_batch_subquery").format(q=query), "row")
        elif cfg.type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
            out[f"duplicates {i}"] = (_name(e), _duplicates(batch, _key(cfg)), "row")
    return out


def execute(conn: psycopg.Connection, suite: str, statement: tuple[str, sql.Composable, str]):
    """Run one statement of `statements()`; its seconds go to last_timings."""
    label, query, kind = statement
    started = time.perf_counter()
    cur = conn.execute(query)
    value = [d.name for d in cur.description] if kind == "columns" else cur.fetchone()
    last_timings.append((suite, label, time.perf_counter() - started))
    return value


def _metrics(conn: psycopg.Connection, expectations: list, asset, suite: str = "",
             done: dict | None = None) -> list[dict]:
    """Per expectation, the metrics its GX `_validate` reads: from the suite's statements (`done`: those
    already run, key -> value) and, for a failed column check only, its sample of unexpected values."""
    batch = batch_from(asset)
    todo = statements(expectations, asset)
    done = dict(done or {})

    def value(key: str):
        if key not in done:
            done[key] = execute(conn, suite, todo[key])
        return done[key]

    def sample(e, query: sql.Composable) -> list:
        started = time.perf_counter()
        rows = conn.execute(query).fetchall()
        last_timings.append((suite, f"{_name(e)} (sample)", time.perf_counter() - started))
        return rows

    _, slots = _scan_slots(expectations)
    row = value("scan")
    n = row[0]
    found: list[dict] = [{} for _ in expectations]
    for i, what, pos in slots:  # GX sums over no rows: None, not 0 ("None of 0 unexpected"); counts rows: 0
        found[i][what] = row[pos] if n or what == "rows" else None
    out: list[dict] = []
    for i, e in enumerate(expectations):
        cfg = e.configuration
        got = found[i]
        if cfg.type == "expect_table_row_count_to_be_between":
            out.append({"table.row_count": n})
        elif cfg.type == "expect_table_columns_to_match_set":
            out.append({"table.columns": value("columns")})
        elif cfg.type == "unexpected_rows_expectation":
            count = got["rows"] if "rows" in got else value(f"rows {i}")[0]
            out.append({"unexpected_rows_query.table": None, "unexpected_rows_query.row_count": count})
        elif cfg.type in COLUMN_MAP:
            metric = COLUMN_MAP[cfg.type]
            col = sql.Identifier(cfg.kwargs["column"])
            if cfg.type == "expect_column_values_to_be_unique":
                unexpected = value(f"duplicates {i}")[0]  # GX counts these: 0 on no rows
                query = sql.SQL("select {c} from {b} where {c} in (select {c} from {b} where {c} is not null "
                                "group by {c} having count(*) > 1) limit {k}").format(
                                    c=col, b=batch, k=sql.Literal(PARTIAL_UNEXPECTED_COUNT))
            else:
                unexpected = got["unexpected"]
                query = sql.SQL("select {c} from {b} where {u} limit {k}").format(
                    c=col, b=batch, u=_unexpected(cfg), k=sql.Literal(PARTIAL_UNEXPECTED_COUNT))
            values = [r[0] for r in sample(e, query)] if unexpected else []
            out.append({"table.row_count": n, "column_values.nonnull.unexpected_count": got["nulls"],
                        f"{metric}.unexpected_count": unexpected, f"{metric}.unexpected_values": values})
        elif cfg.type == "expect_compound_columns_to_be_unique":
            cols = _key(cfg)
            unexpected = value(f"duplicates {i}")[0]
            values = []
            if unexpected:
                idents = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
                values = [dict(zip(cols, r, strict=True)) for r in sample(e, sql.SQL(
                    "select {k} from {b} where ({k}) in (select {k} from {b} group by {k} having count(*) > 1) "
                    "limit {n}").format(k=idents, b=batch, n=sql.Literal(PARTIAL_UNEXPECTED_COUNT)))]
            out.append({"table.row_count": n, "compound_columns.unique.unexpected_count": unexpected,
                        "compound_columns.unique.unexpected_values": values,
                        "compound_columns.unique.filtered_row_count": got["filtered"]})
        else:  # foldable() keeps other types out
            raise FoldError(cfg.type)
    return out


def validate_suite(conn: psycopg.Connection, vd, run_id, done: dict | None = None):
    """The suite of validation definition `vd` against its batch, as GX's ExpectationSuiteValidationResult."""
    from great_expectations import __version__ as gx_version
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.validator.validator import calc_validation_statistics

    suite = vd.suite
    asset = vd.batch_definition.data_asset
    expectations = list(suite.expectations)
    try:
        metrics = _metrics(conn, expectations, asset, suite.name, done)
    except psycopg.Error as exc:
        raise FoldError(str(exc)) from exc
    runtime = {"result_format": {"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL_UNEXPECTED_COUNT}}
    results = []
    for e, m in zip(expectations, metrics, strict=True):
        cfg = e.configuration
        if cfg.type == "expect_table_columns_to_match_set":
            out = e._validate_sqlalchemy(m)
        else:
            out = e._validate(metrics=m, runtime_configuration=dict(runtime))
        if isinstance(out, ExpectationValidationResult):
            out.expectation_config = cfg
            results.append(out)
        else:
            results.append(ExpectationValidationResult(expectation_config=cfg, **out))
    stats = calc_validation_statistics(results)
    batch_id = f"{asset.datasource.name}-{asset.name}"
    return ExpectationSuiteValidationResult(
        results=results, success=stats.success, suite_name=suite.name,
        statistics={"evaluated_expectations": stats.evaluated_expectations,
                    "successful_expectations": stats.successful_expectations,
                    "unsuccessful_expectations": stats.unsuccessful_expectations,
                    "success_percent": stats.success_percent},
        meta={"great_expectations_version": gx_version,
              "batch_spec": {"data_asset_name": asset.name, "query": getattr(asset, "query", None),
                             "table_name": getattr(asset, "table_name", None),
                             "validated_by": "ecrm.quality.fold (one scan per suite)"},
              "batch_markers": {}, "active_batch_definition": {"datasource_name": asset.datasource.name,
                                                               "data_asset_name": asset.name,
                                                               "batch_definition_name": vd.batch_definition.name},
              "validation_id": vd.id, "checkpoint_id": None, "run_id": run_id,
              "validation_time": run_id.run_time, "batch_parameters": None},
        batch_id=batch_id)


def workers() -> int:
    """Connections the gate's statements run on at once (ECRM_GATE_WORKERS, default 2: the machine's cores)."""
    from .config import GateConfigError

    raw = os.environ.get("ECRM_GATE_WORKERS") or "2"
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= 16:
        raise GateConfigError(f"ECRM_GATE_WORKERS must be a whole number from 1 to 16, not {raw!r}")
    return n


def _connect(url: str, settings: dict[str, str]) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    for name, value in settings.items():
        conn.execute("select set_config(%s, %s, false)", (name, value))
    return conn


def _run_statements(url: str, settings: dict[str, str], jobs: list[tuple[str, str, tuple]], n: int) -> dict:
    """Run independent statements on `n` connections; (suite, key) -> value or the exception it raised."""
    pool: queue.SimpleQueue = queue.SimpleQueue()
    conns = [_connect(url, settings) for _ in range(min(n, len(jobs)) or 1)]
    for conn in conns:
        pool.put(conn)

    def one(job: tuple[str, str, tuple]):
        suite, _, statement = job
        conn = pool.get()
        try:
            return execute(conn, suite, statement)
        except psycopg.Error as exc:
            return exc
        finally:
            pool.put(conn)

    try:
        with ThreadPoolExecutor(max_workers=len(conns)) as executor:
            values = list(executor.map(one, jobs))
    finally:
        for conn in conns:
            conn.close()
    return {(suite, key): v for (suite, key, _), v in zip(jobs, values, strict=True)}


def run(context, checkpoint, url: str, settings: dict[str, str], scrub=str) -> dict:
    """Validate every suite of `checkpoint`; store each result as a checkpoint run would.

    Returns {ValidationResultIdentifier: ExpectationSuiteValidationResult}, in the checkpoint's order.
    `settings` are the ecrm.* session settings the suites' SQL reads (run date, thresholds); `scrub`
    takes addresses out of an error's text before it is logged (the gate's own, passed in: gate
    imports this module). The
    suites' statements (scans, uniqueness, custom SQL) are independent: they run on `workers()`
    connections at once; a failed check's sample is fetched afterwards.
    """
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run_id = RunIdentifier(run_time=datetime.datetime.now(datetime.UTC))
    last_timings.clear()
    store = context.validation_results_store
    definitions = list(checkpoint.validation_definitions)
    jobs: list[tuple[str, str, tuple]] = []
    planned: dict[str, Exception | None] = {}
    for vd in definitions:
        if not foldable(vd.suite):
            continue
        try:
            todo = statements(list(vd.suite.expectations), vd.batch_definition.data_asset)
        except Exception as exc:  # noqa: BLE001 - a suite the fold cannot read: GX validates it
            planned[vd.suite.name] = exc
            continue
        planned[vd.suite.name] = None
        jobs += [(vd.suite.name, key, statement) for key, statement in todo.items()]
    values = _run_statements(url, settings, jobs, workers())
    out = {}
    with _connect(url, settings) as conn:
        for vd in definitions:
            name, result, problem = vd.suite.name, None, None
            if name in planned:
                done = {key: v for (s, key), v in values.items() if s == name}
                problem = planned[name] or next((v for v in done.values() if isinstance(v, Exception)), None)
                if problem is None:
                    try:
                        result = validate_suite(conn, vd, run_id, done)
                    except Exception as exc:  # noqa: BLE001 - GX validates it instead, and reports its errors its way
                        problem = exc
                if problem is not None:
                    log.warning("suite %s validated by GX: its folded queries failed (%s)", name,
                                scrub(str(problem).splitlines()[0][:200]) if str(problem) else type(problem).__name__)
            suite_id = ExpectationSuiteIdentifier(name=name)
            if result is None:
                started = time.perf_counter()
                result = vd.run(checkpoint_id=checkpoint.id, run_id=run_id,
                                result_format=checkpoint.result_format)  # GX stores it itself
                last_timings.append((name, "validated by GX", time.perf_counter() - started))
                key = ValidationResultIdentifier(expectation_suite_identifier=suite_id, run_id=run_id,
                                                 batch_identifier=result.batch_id)
            else:
                result.meta["checkpoint_id"] = checkpoint.id
                key = ValidationResultIdentifier(expectation_suite_identifier=suite_id, run_id=run_id,
                                                 batch_identifier=result.batch_id)
                store.store_validation_results(suite_validation_result=result, suite_validation_result_identifier=key,
                                               expectation_suite_identifier=suite_id)
            out[key] = result
    return out
