"""Run the GX checkpoint that guards publishing, record every result, quarantine the failing rows.

The suites, validation definitions and checkpoint are GX's own JSON in expectations/gx/ (a GX
file context), so data people read and edit them without touching Python. The warehouse
connection string reaches GX as ${ECRM_GX_WAREHOUSE_URL}, a run-time variable of the context
(set_warehouse_url), never written into those files or into the process environment.

Every check is about one run date. GX has no run-date parameter for SQL query assets, so the gate
opens GX's connections with session settings (`-c ecrm.run_date=...` plus the thresholds of
expectations/gate.yml) and the suites' SQL reads them through small functions
(ops.gate_run_date(), ops.gate_day_start(), ops.gate_day_end(), ops.gate_setting(name), created by
the warehouse's migrations; so are ops.quality_results and ops.quality_quarantine). A
session setting belongs to one connection, so two gates of different days never see each other's
date, and rerunning an old day checks that day. All checks run in PostgreSQL; nothing is pulled
into pandas.

Severity overrides (config.py) are resolved against the suites before GX runs: an unknown or
ambiguous name, or a safety check downgraded, is a GateConfigError; every override in force is
recorded with the result rows of the run.

A blocking check whose suite JSON says meta.withholds = "<part>" (WITHHOLDABLE: "forecast") does not
block the publish when it fails: it withholds that part (the forecast's audiences, ecrm.publish) and
the rest is published. Its result row is recorded with blocking = false and withheld = the part;
enforce() returns the results, and `withheld(results)` says what to withhold and why. A safety check
can never withhold instead of blocking.

No e-mail address (or other direct identifier, PII_COLUMNS) reaches an error message, a log line,
ops.quality_results or ops.quality_quarantine.row_data: sample values of such columns become
`sha256:<12 hex>` fingerprints and anything shaped like an address is fingerprinted too.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from ..settings import get_settings
from ..warehouse.migrate import require_migrated
from .config import GateConfig, GateConfigError, load_config

# Checks that keep people who must not be mailed out of the audiences: they always block. An
# expectation can also be marked with meta.safety = true in its suite's JSON.
SAFETY_CHECKS = frozenset({
    "audience_members.no_suppressed_member",   # unsubscribed, complained, hard-bounced
    "audience_members.no_holdout_member",      # the measurement holdout
    "audience_members.no_flow_holdout_member",  # a lifecycle flow's own holdout
    "audience_members.member_is_contactable",  # marketing consent and a valid address
})
# Direct identifiers: their values are fingerprinted wherever the gate writes or raises them.
PII_COLUMNS = frozenset({"email", "first_name", "last_name", "phone", "remote_addr", "ip", "user_agent",
                         "customer_token"})
_ADDRESS = re.compile(r"""[^\s'"<>(),;\[\]{}]*@[^\s'"<>(),;\[\]{}]*""")

# What a failed check may withhold instead of blocking everything (meta.withholds in a suite's JSON).
WITHHOLDABLE = frozenset({"forecast"})
CHECKPOINT = "publish_gate"
GX_URL_VARIABLE = "ECRM_GX_WAREHOUSE_URL"  # the `warehouse` data source's ${...} in gx/great_expectations.yml
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
    meta: dict = field(default_factory=dict)
    default_severity: str = "blocking"
    override: ResolvedOverride | None = None
    withholds: str | None = None  # meta.withholds: failing withholds this part instead of blocking
    withheld: str | None = None   # set when it failed and did withhold (then blocking is False)


@dataclass(frozen=True)
class ResolvedOverride:
    """An override matched to one check of one suite."""

    suite: str
    check: str
    from_severity: str
    to_severity: str
    source: str
    reason: str | None
    by: str | None
    written_as: str


def fingerprint(value: object) -> str:
    """A short, stable stand-in for an identifier: lets people correlate rows without seeing the value."""
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:12]


def scrub(text: str) -> str:
    """Replace anything shaped like an e-mail address (anything around an '@') by its fingerprint."""
    return _ADDRESS.sub(lambda m: fingerprint(m.group(0)), text)


def suites_dir(project_dir: Path | None = None) -> Path:
    return (project_dir or gx_project_dir()) / "gx" / "expectations"


def check_catalog(project_dir: Path | None = None) -> dict[tuple[str, str], dict]:
    """(suite, check) -> {"severity": default, "safety": bool}, read from the suites' JSON (no GX import)."""
    catalog: dict[tuple[str, str], dict] = {}
    for path in sorted(suites_dir(project_dir).glob("*.json")):
        suite = json.loads(path.read_text())
        for expectation in suite.get("expectations", []):
            meta = expectation.get("meta") or {}
            name = meta.get("name") or expectation["type"]
            key = (suite["name"], name)
            catalog[key] = {"severity": meta.get("severity", "blocking"),
                            "safety": bool(meta.get("safety")) or f"{key[0]}.{key[1]}" in SAFETY_CHECKS,
                            "withholds": meta.get("withholds")}
    return catalog


def resolve_overrides(config: GateConfig, catalog: dict[tuple[str, str], dict] | None = None,
                      ) -> dict[tuple[str, str], ResolvedOverride]:
    """Match every override to exactly one check; raise GateConfigError for anything unclear or unsafe.

    Also refuses a safety check whose suite JSON itself says `warning`: that is a downgrade too.
    """
    catalog = check_catalog() if catalog is None else catalog
    errors = [f"{s}.{c} is a safety check: its meta.severity must be blocking, not {info['severity']}"
              for (s, c), info in catalog.items() if info["safety"] and info["severity"] != "blocking"]
    errors += [f"{s}.{c}: meta.withholds must be one of {sorted(WITHHOLDABLE)}, not {info['withholds']!r}"
               for (s, c), info in catalog.items() if info.get("withholds") not in (None, *WITHHOLDABLE)]
    errors += [f"{s}.{c} is a safety check: it blocks everything and cannot carry meta.withholds"
               for (s, c), info in catalog.items() if info["safety"] and info.get("withholds")]
    full_names = sorted(f"{s}.{c}" for s, c in catalog)
    by_check: dict[str, list[str]] = {}
    for s, c in catalog:
        by_check.setdefault(c, []).append(s)
    resolved: dict[tuple[str, str], ResolvedOverride] = {}
    for o in config.overrides:
        suite, dot, check = o.check.rpartition(".")
        if dot:
            key = (suite, check)
            if key not in catalog:
                near = difflib.get_close_matches(o.check, full_names, n=3, cutoff=0.6)
                errors.append(f"{o.check} ({o.source}) is not a check of any suite"
                              + (f"; did you mean {', '.join(near)}?" if near else
                                 "; checks are named <suite>.<meta.name> (ops.quality_results suite, expectation)"))
                continue
        else:
            suites = sorted(by_check.get(check, []))
            if not suites:
                near = difflib.get_close_matches(check, full_names + sorted(by_check), n=3, cutoff=0.6)
                errors.append(f"{o.check} ({o.source}) is not a check of any suite"
                              + (f"; did you mean {', '.join(near)}?" if near else ""))
                continue
            if len(suites) > 1:
                errors.append(f"{o.check} ({o.source}) is a check of {len(suites)} suites: name one of "
                              + ", ".join(f"{s}.{check}" for s in suites))
                continue
            key = (suites[0], check)
        info = catalog[key]
        if info["safety"] and o.severity != "blocking":
            errors.append(f"{key[0]}.{key[1]} ({o.source}) is a safety check (holdout, suppression, consent) "
                          "and cannot be downgraded")
            continue
        resolved[key] = ResolvedOverride(key[0], key[1], info["severity"], o.severity, o.source, o.reason, o.by,
                                         o.check)
    if errors:
        raise GateConfigError("quality gate configuration refused: " + "; ".join(errors))
    return resolved


def gx_project_dir() -> Path:
    """The GX file context: expectations/ of the project, or ECRM_GX_PROJECT_DIR (tests use a copy, so their
    results and Data Docs never land in the developer's expectations/gx/uncommitted)."""
    return Path(os.environ.get("ECRM_GX_PROJECT_DIR") or get_settings().expectations_dir)


# One GX context (and its checkpoints) per project folder and process: the demo and the scheduler's
# long-lived workers run many days in one process, and building a context costs ~1 s (reading the
# store, every suite and validation definition). Keyed by the folder and the size and mtime of its
# configuration files, so an edited suite is read again.
_CONTEXTS: dict[tuple, object] = {}
_CHECKPOINTS: dict[tuple, object] = {}


def _gx_fingerprint(root: Path) -> tuple:
    files = [root / "gx" / "great_expectations.yml"]
    for folder in ("expectations", "checkpoints", "validation_definitions"):
        files += sorted((root / "gx" / folder).glob("*.json"))
    stats = []
    for path in files:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        stats.append((path.name, st.st_size, st.st_mtime_ns))
    return (str(root.resolve()), tuple(stats))


def gx_context(project_dir: Path | None = None, cached: bool = True):
    """The GX file context of `project_dir` (default gx_project_dir()), built once per process."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # ~200 INFO lines per run otherwise
    import great_expectations as gx

    root = project_dir or gx_project_dir()
    key = _gx_fingerprint(root)
    context = _CONTEXTS.get(key) if cached else None
    if context is None:
        context = gx.get_context(mode="file", project_root_dir=str(root))
        if cached:
            for old in [k for k in _CONTEXTS if k[0] == key[0]]:  # the folder's files changed: forget the old one
                _CONTEXTS.pop(old, None)
                _CHECKPOINTS.pop(old, None)
            _CONTEXTS[key] = context
    else:
        # GX keeps one "current" context per process; another one may have been made since (tests).
        from great_expectations.data_context.data_context.context_factory import project_manager

        project_manager.set_project(context)
    return context


def _checkpoint(context, name: str, project_dir: Path | None = None):
    key = (_gx_fingerprint(project_dir or gx_project_dir()), name)
    cp = _CHECKPOINTS.get(key)
    if cp is None:
        cp = _CHECKPOINTS[key] = context.checkpoints.get(name)
    return cp


def _reset_engines(context) -> None:
    """Close and forget every data source's engines: the next run opens connections with its own
    URL (the run date and thresholds are libpq options of ${ECRM_GX_WAREHOUSE_URL})."""
    for source in context.data_sources.all().values():
        for attr in ("_engine", "_execution_engine"):
            engine = getattr(source, attr, None)
            target = getattr(engine, "engine", engine)  # an execution engine holds a SQLAlchemy engine
            if target is not None and hasattr(target, "dispose"):
                target.dispose()  # don't keep idle connections (they would also pin the run date)
            if engine is not None:
                setattr(source, attr, None)
        if hasattr(source, "_cached_execution_engine_kwargs"):
            source._cached_execution_engine_kwargs = {}


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


def set_warehouse_url(context, url: str) -> None:
    """Give the context's ${ECRM_GX_WAREHOUSE_URL} its value: GX substitutes it from the context's
    run-time variables, which win over the environment, when it next opens a connection."""
    context.runtime_environment[GX_URL_VARIABLE] = url


GATE_ENGINES = ("folded", "gx")


def gate_engine() -> str:
    """How the checkpoint's suites are validated: `folded` (default: one scan per suite, fold.py) or
    `gx` (GX's own checkpoint run, expectation by expectation); ECRM_GATE_ENGINE chooses."""
    engine = (os.environ.get("ECRM_GATE_ENGINE") or "folded").strip().lower()
    if engine not in GATE_ENGINES:
        raise GateConfigError(f"ECRM_GATE_ENGINE must be one of {', '.join(GATE_ENGINES)}, not {engine!r}")
    return engine


def run_checkpoint(url: str, run_date: date, checkpoint: str = CHECKPOINT, config: GateConfig | None = None,
                   ) -> tuple[list[ExpectationResult], dict[str, dict]]:
    """Run the checkpoint for `run_date`; returns the results and, per suite, its asset (for quarantine)."""
    config = config or load_config()
    overrides = resolve_overrides(config)
    context = gx_context()
    set_warehouse_url(context, gate_url(url, run_date, config))
    cp = _checkpoint(context, checkpoint)
    assets = {vd.suite.name: {"asset": vd.batch_definition.data_asset, "meta": vd.suite.meta or {}}
              for vd in cp.validation_definitions}
    _reset_engines(context)  # a cached context: never reuse connections opened for another day
    try:
        if gate_engine() == "gx":  # GX validates expectation by expectation (the pre-issue-30 path)
            run_results = cp.run().run_results
        else:  # the same suites and GX results, each suite's checks folded into one scan (fold.py)
            from . import fold

            run_results = fold.run(context, cp, url, session_settings(run_date, config), scrub=scrub)
        # Every run's results are stored (uncommitted/validations); the Data Docs site is rendered
        # from them by `ecrm docs`, not by the daily gate (~0.7 s a day here). ECRM_GATE_DATA_DOCS=1
        # renders this run's pages at once (one build, not GX's per-validation UpdateDataDocsAction).
        if os.environ.get("ECRM_GATE_DATA_DOCS", "").lower() in ("1", "true", "yes"):
            context.build_data_docs(resource_identifiers=list(run_results.keys()))
    finally:
        _reset_engines(context)
    rows: list[ExpectationResult] = []
    for validation in run_results.values():
        suite = validation.suite_name
        for er in validation.results:
            cfg = er.expectation_config
            meta = cfg.meta or {}
            name = meta.get("name") or cfg.type
            default = meta.get("severity", "blocking")
            override = overrides.get((suite, name))
            severity = override.to_severity if override else default
            if (bool(meta.get("safety")) or f"{suite}.{name}" in SAFETY_CHECKS) and severity != "blocking":
                raise GateConfigError(f"{suite}.{name} is a safety check and cannot be downgraded")
            column = cfg.kwargs.get("column")
            rows.append(ExpectationResult(
                suite=suite, expectation=name, column=column,
                observed=_observed(er, column), passed=bool(er.success), blocking=severity != "warning",
                type=cfg.type, kwargs=dict(cfg.kwargs), description=cfg.description or "", meta=dict(meta),
                default_severity=default, override=override, withholds=meta.get("withholds")))
    return rows, assets


def _observed(er, column: str | None = None) -> str:
    infos = er.exception_info or {}
    for info in [infos, *[v for v in infos.values() if isinstance(v, dict)]]:
        if info.get("raised_exception"):
            return scrub(f"error: {info.get('exception_message', '')}")[:500]
    res = er.result or {}
    if "observed_value" in res:
        observed = res["observed_value"]
    elif "unexpected_count" in res:
        observed = f"{res.get('unexpected_count')} of {res.get('element_count')} unexpected"
        sample = res.get("partial_unexpected_list") or []
        if sample:
            if column in PII_COLUMNS:  # never the values of an identifying column: their fingerprints
                sample = [None if v is None else fingerprint(v) for v in sample]
            observed += f", e.g. {sample[:5]}"
    else:
        observed = ""
    return scrub(str(observed))[:500]


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
            keys = list(r.meta.get("row_key") or info["meta"].get("row_key") or [])
            table = r.meta.get("table") or info["meta"].get("table", r.suite)
            try:
                with conn.transaction():  # a savepoint: one broken query must not lose the others
                    cur = conn.execute(sql.SQL(
                        "insert into ops.quality_quarantine (run_date, checkpoint, suite, expectation, table_name, "
                        "row_key, row_data, reason, blocking) "
                        "select {d}, {cp}, {s}, {e}, {t}, "
                        "(select nullif(jsonb_object_agg(key, value), '{{}}') from jsonb_each(to_jsonb(q)) where key = any({keys})), "
                        # identifying columns are kept as fingerprints only (the row key names the row)
                        "to_jsonb(q) || (select coalesce(jsonb_object_agg(key, case when value = 'null' then value "
                        "else to_jsonb('sha256:' || left(encode(sha256(convert_to(value #>> '{{}}', 'UTF8')), 'hex'), 12)) "
                        "end), '{{}}') from jsonb_each(to_jsonb(q)) where key = any({pii})), "
                        "{reason}, {blocking} from ({query}) q limit {limit} "
                        "returning row_data, row_key").format(
                            d=sql.Literal(run_date), cp=sql.Literal(checkpoint), s=sql.Literal(r.suite),
                            e=sql.Literal(r.expectation), t=sql.Literal(table),
                            keys=sql.Literal(keys), pii=sql.Literal(sorted(PII_COLUMNS)), reason=sql.Literal(_reason(r)),
                            blocking=sql.Literal(r.blocking), query=query,
                            limit=sql.Literal(config.quarantine_limit)))
                    found = cur.fetchall()
            except psycopg.Error as exc:
                logging.getLogger(__name__).warning("quarantine query for %s.%s failed: %s", r.suite, r.expectation,
                                                    scrub(str(exc)))
                continue
            kept[(r.suite, r.expectation)] = len(found)
            if found and r.type == "unexpected_rows_expectation":
                sample = found[0][1] or found[0][0]  # the row key when the suite has one, else the scrubbed row
                r.observed = scrub(f"{r.observed} row(s), e.g. {json.dumps(sample, default=str)}")[:500]
    return kept


def record(conn: psycopg.Connection, run_date: date, checkpoint: str, rows: list[ExpectationResult]) -> None:
    """Keep the results (a rerun of the day replaces its earlier rows)."""
    with conn.transaction():
        conn.execute("delete from ops.quality_results where run_date = %s and checkpoint = %s", (run_date, checkpoint))
        with conn.cursor().copy("copy ops.quality_results (run_date, checkpoint, suite, expectation, column_name, "
                                "observed_value, passed, blocking, default_severity, override_severity, "
                                "override_source, override_by, override_reason, withheld) from stdin") as copy:
            for r in rows:
                o = r.override
                copy.write_row((run_date, checkpoint, r.suite, r.expectation, r.column, scrub(r.observed), r.passed,
                                r.blocking, r.default_severity, o and o.to_severity, o and o.source, o and o.by,
                                o and o.reason, r.withheld))
        # Beside the checks, what the day's loads quarantined, by source and reason code (suite
        # `quarantine`, informational: never blocking), so one table answers "how was the day's data".
        _record_quarantine_codes(conn, run_date, checkpoint)


def _record_quarantine_codes(conn: psycopg.Connection, run_date: date, checkpoint: str) -> None:
    conn.execute(
        "insert into ops.quality_results (run_date, checkpoint, suite, expectation, column_name, observed_value, "
        "passed, blocking, default_severity) select %s, %s, 'quarantine', l.source || '.' || c.code, null, "
        "sum(c.n::bigint)::text, true, false, 'info' from ops.load_ledger as l, "
        "jsonb_each_text(l.quarantined_by_code) as c (code, n) where l.status = 'succeeded' "
        "and l.interval_start = %s group by l.source, c.code",
        (run_date, checkpoint, datetime.combine(run_date, time(0), tzinfo=UTC)))


def enforce(conn: psycopg.Connection, url: str, run_date: date, checkpoint: str = CHECKPOINT,
            config: GateConfig | None = None) -> list[ExpectationResult]:
    """Audit `run_date`: run the checkpoint, quarantine failing rows, record, and raise if a blocking check failed."""
    config = config or load_config()
    require_migrated(conn)
    rows, assets = run_checkpoint(url, run_date, checkpoint, config)
    for r in rows:  # a failed check that withholds a part (the forecast) instead of blocking the publish
        if not r.passed and r.blocking and r.withholds in WITHHOLDABLE:
            r.blocking, r.withheld = False, r.withholds
    quarantine(conn, run_date, checkpoint, rows, assets, config)
    record(conn, run_date, checkpoint, rows)
    failed = [r for r in rows if not r.passed and r.blocking]
    warned = [r for r in rows if not r.passed and not r.blocking and not r.withheld]
    log = logging.getLogger(__name__)
    for r in rows:
        if r.override and r.override.from_severity != r.override.to_severity:
            log.warning("quality gate override: %s.%s %s -> %s (%s%s%s)%s", r.suite, r.expectation,
                        r.override.from_severity, r.override.to_severity, r.override.source,
                        f", by {r.override.by}" if r.override.by else "",
                        f", reason: {r.override.reason}" if r.override.reason else "",
                        "" if r.passed else " - it failed")
    for r in warned:
        log.warning("quality warning %s.%s(%s) observed %s", r.suite, r.expectation, r.column or "", r.observed)
    for part, why in withheld(rows).items():
        log.warning("quality gate withholds the %s of %s (the rest is published): %s", part, run_date, why["reason"])
    if failed:
        names = "; ".join(f"{r.suite}.{r.expectation}({r.column or ''}) observed {scrub(r.observed)}" for r in failed)
        raise QualityGateFailed(
            f"quality gate {checkpoint} blocked publishing for {run_date}: {len(failed)} blocking expectation(s) "
            f"failed: {names}. Details: ops.quality_results / ops.quality_quarantine where run_date = '{run_date}'",
            failed)
    return rows


def withheld(rows: list[ExpectationResult]) -> dict[str, dict]:
    """Part -> {"checks": [...], "reason": "..."} for each part the run's failed checks withhold."""
    parts: dict[str, dict] = {}
    for r in rows:
        if r.withheld:
            part = parts.setdefault(r.withheld, {"checks": [], "reason": ""})
            part["checks"].append(f"{r.suite}.{r.expectation}")
            observed = f" observed {scrub(r.observed)}" if r.observed else ""
            part["reason"] = "; ".join(filter(None, (part["reason"], f"{r.suite}.{r.expectation} failed{observed}")))
    return parts
