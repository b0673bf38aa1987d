"""Dashboards as code: the Superset bundle in bi/superset, its checks, and `ecrm bi deploy` (docs/bi.md).

The bundle (metadata.yaml, databases/, datasets/, charts/, dashboards/, stable UUIDs) is the source of
truth. `deploy` installs Superset in its own virtual environment (.superset-venv: its pins clash with
Airflow's and MetricFlow's), initialises its metadata, starts it when nothing answers at
ECRM_SUPERSET_URL, and imports the bundle through `POST /api/v1/assets/import/`, which overwrites
every asset of the bundle (a changed chart is updated; `superset import-dashboards` keeps the old one).
The database connection is a login that has only the `ecrm_bi_reader` role (ECRM_BI_READER_URL); its
password goes in the import request and is stored by Superset encrypted, never in git.

`check_bundle` is the static part of the test suite's check: every chart field is a column or saved
metric of its dataset, no dataset or chart exposes an identifier, every ratio is a MetricFlow metric
(never a hand-written division, never avg of a rate), and each dashboard reads exactly its dbt exposure's tables at the exposure's URL.

Metrics defined once (docs/metrics.md): a dataset metric named like a MetricFlow metric keeps only the
placeholder `metricflow('<name>')` in git; `resolve_metrics` writes its SQL from dbt's semantic manifest
(target/semantic_manifest.json of `dbt parse`) before the import, and `check_bundle` fails a metric it
cannot generate for its dataset's table or whose hand-written SQL differs from the generated one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from .settings import dbt_target_dir, project_root

DATABASE_FILE = "databases/ecrm_warehouse.yaml"
BI_ROLE = "ecrm_bi_reader"  # dbt var bi_reader_role
DEFAULT_URL = "http://localhost:8088"
MASK = "XXXXXXXXXX"  # Superset's placeholder for a password that is not in the file
# Row-level keys: a chart grouped by one of them lists individual people (or their sessions, orders).
# The direct identifiers (var pii_columns in dbt_project.yml) are added by identifier_columns().
KEY_COLUMNS = ("customer_id", "visitor_id", "session_id", "campaign_recipient_id", "order_id", "customer_token")
# form_data keys that name columns / saved metrics
COLUMN_KEYS = ("groupby", "columns", "all_columns", "x_axis", "series", "entity", "source", "target",
               "granularity_sqla", "order_by_cols")
METRIC_KEYS = ("metrics", "metric", "percent_metrics", "timeseries_limit_metric", "secondary_metric", "x", "y", "size")


class BiError(RuntimeError):
    """A deploy that cannot go on; the message says what to set or fix."""


@dataclass
class Bundle:
    root: Path
    database: dict
    datasets: dict[str, dict] = field(default_factory=dict)    # uuid -> dataset yaml
    charts: dict[str, dict] = field(default_factory=dict)      # uuid -> chart yaml
    dashboards: dict[str, dict] = field(default_factory=dict)  # uuid -> dashboard yaml
    files: dict[str, str] = field(default_factory=dict)        # path in the bundle -> text
    paths: dict[str, str] = field(default_factory=dict)        # uuid -> path in the bundle

    def dataset_of(self, chart: dict) -> dict | None:
        return self.datasets.get(chart.get("dataset_uuid", ""))

    def dashboard_charts(self, dashboard: dict) -> list[dict]:
        uuids = [node["meta"]["uuid"] for node in dashboard.get("position", {}).values()
                 if isinstance(node, dict) and node.get("type") == "CHART"]
        return [self.charts[u] for u in uuids if u in self.charts]


def bundle_dir() -> Path:
    return Path(os.environ.get("ECRM_SUPERSET_BUNDLE") or project_root() / "bi" / "superset")


def load_bundle(root: Path | None = None) -> Bundle:
    root = Path(root or bundle_dir())
    files = {p.relative_to(root).as_posix(): p.read_text()
             for p in sorted(root.rglob("*.yaml")) if p.relative_to(root).parts[0] in
             ("metadata.yaml", "databases", "datasets", "charts", "dashboards")}
    if "metadata.yaml" not in files or DATABASE_FILE not in files:
        raise BiError(f"{root} is not a Superset bundle (metadata.yaml and {DATABASE_FILE} expected)")
    bundle = Bundle(root, yaml.safe_load(files[DATABASE_FILE]), files=files)
    for name, text in files.items():
        kind, doc = name.split("/")[0], yaml.safe_load(text)
        if kind in ("datasets", "charts", "dashboards"):
            getattr(bundle, kind)[doc["uuid"]] = doc
            bundle.paths[doc["uuid"]] = name
    return bundle


def identifier_columns(root: Path | None = None) -> set[str]:
    """Columns no dashboard may show or group by: dbt's pii_columns plus the row-level keys."""
    project = yaml.safe_load(((root or project_root()) / "dbt_project" / "dbt_project.yml").read_text())
    return {c.lower() for c in project["vars"]["pii_columns"]} | set(KEY_COLUMNS)


def exposures(root: Path | None = None) -> dict[str, dict]:
    """Dashboard exposures by name: {"url": ..., "depends_on": {model, ...}}."""
    doc = yaml.safe_load(((root or project_root()) / "dbt_project" / "models" / "exposures.yml").read_text())
    out = {}
    for exp in doc.get("exposures", []):
        if exp.get("type") != "dashboard":
            continue
        refs = {m.group(1) for d in exp.get("depends_on", []) if (m := re.match(r"ref\('([^']+)'\)", d))}
        out[exp["name"]] = {"url": exp.get("url", ""), "depends_on": refs}
    return out


def dashboard_path(slug: str) -> str:
    return f"/superset/dashboard/{slug}/"


def _names(value) -> list:
    if value is None or value == "" or value == []:
        return []
    return list(value) if isinstance(value, list) else [value]


def chart_fields(params: dict) -> tuple[list, list]:
    """(columns, metrics) a chart's form data refers to: names, or dicts for ad-hoc SQL."""
    columns = [c for key in COLUMN_KEYS for c in _names(params.get(key))]
    columns += [f.get("subject") for f in params.get("adhoc_filters") or [] if f.get("expressionType") == "SIMPLE"]
    metrics = [m for key in METRIC_KEYS for m in _names(params.get(key))]
    return columns, metrics


def dataset_fields(dataset: dict) -> tuple[dict[str, str | None], dict[str, str]]:
    """({column: calculated SQL or None}, {metric: SQL}) of a dataset."""
    return ({c["column_name"]: c.get("expression") or None for c in dataset.get("columns", [])},
            {m["metric_name"]: m["expression"] for m in dataset.get("metrics", [])})


def _reads(expr: str | None, column: str) -> bool:
    """The SQL expression names the column (string literals such as 'email' do not count)."""
    return bool(expr) and re.search(rf"\b{column}\b", re.sub(r"'(?:[^']|'')*'", "''", expr), re.IGNORECASE) is not None


_AVG_OF_RATE = re.compile(r"\bavg\s*\(\s*[\w.\"]*(rate|share|lift)\w*", re.IGNORECASE)


def check_bundle(bundle: Bundle, exposure_map: dict[str, dict] | None = None,
                 identifiers: set[str] | None = None, semantic: dict | None = None) -> list[str]:
    """Everything wrong with the bundle, one sentence each (empty: fine). `semantic`: dbt's semantic
    manifest (default: `semantic_manifest()`, parsed again when a model file is newer)."""
    exposure_map = exposures() if exposure_map is None else exposure_map
    identifiers = identifier_columns() if identifiers is None else identifiers
    semantic = semantic_manifest() if semantic is None else semantic
    _, problems = metricflow_metrics(bundle, semantic)
    defined = {m["name"] for m in semantic.get("metrics", [])}  # a hand-written one: metricflow_metrics says so
    for ds in bundle.datasets.values():
        name = ds["table_name"]
        if ds.get("database_uuid") != bundle.database["uuid"]:
            problems.append(f"dataset {name}: not on the bundle's database")
        if ds.get("sql"):
            problems.append(f"dataset {name}: virtual (SQL) datasets hide their tables from the exposure check")
        columns, metrics = dataset_fields(ds)
        metrics = {m: e for m, e in metrics.items() if not placeholder(e)}  # checked by metricflow_metrics
        for col, expr in columns.items():
            if col.lower() in identifiers:
                problems.append(f"dataset {name}: column {col} is an identifier")
            for ident in identifiers:
                if _reads(expr, ident):
                    problems.append(f"dataset {name}: calculated column {col} reads identifier {ident}")
        for met, expr in metrics.items():
            if "/" in expr and met not in defined:
                problems.append(f"dataset {name}: metric {met} is a ratio written by hand ({expr}); define it once "
                                f"as a dbt metric and set its expression to {PLACEHOLDER.format(name=met)}")
            if _AVG_OF_RATE.search(expr):
                problems.append(f"dataset {name}: metric {met} averages a rate ({expr}); use sum(num)/nullif(sum(den), 0)")
            for ident in identifiers:
                if _reads(expr, ident):
                    problems.append(f"dataset {name}: metric {met} reads identifier {ident}")
    for chart in bundle.charts.values():
        title, ds = chart["slice_name"], bundle.dataset_of(chart)
        if ds is None:
            problems.append(f"chart {title!r}: dataset {chart.get('dataset_uuid')} is not in the bundle")
            continue
        columns, metrics = dataset_fields(ds)
        used_cols, used_mets = chart_fields(chart.get("params") or {})
        for col in used_cols:
            if not isinstance(col, str):
                problems.append(f"chart {title!r}: ad-hoc SQL column {col!r}; add it to the dataset")
            elif col.lower() in identifiers:
                problems.append(f"chart {title!r}: shows identifier column {col}")
            elif col not in columns:
                problems.append(f"chart {title!r}: column {col} is not in dataset {ds['table_name']}")
        for met in used_mets:
            if not isinstance(met, str):
                problems.append(f"chart {title!r}: ad-hoc metric {met!r}; ratios and sums belong in the dataset")
            elif met not in metrics:
                problems.append(f"chart {title!r}: metric {met} is not in dataset {ds['table_name']}")
    by_url = {urlsplit(e["url"]).path: (name, e) for name, e in exposure_map.items()}
    in_dashboards = set()
    for dash in bundle.dashboards.values():
        path = dashboard_path(dash["slug"])
        charts = bundle.dashboard_charts(dash)
        in_dashboards |= {c["uuid"] for c in charts}
        positioned = [n for n in dash.get("position", {}).values() if isinstance(n, dict) and n.get("type") == "CHART"]
        if len(charts) != len(positioned):
            problems.append(f"dashboard {dash['slug']}: a chart of its layout is not in the bundle")
        if path not in by_url:
            problems.append(f"dashboard {dash['slug']}: no dbt exposure has its URL (path {path})")
            continue
        name, exp = by_url[path]
        tables = {bundle.dataset_of(c)["table_name"] for c in charts if bundle.dataset_of(c)}
        if tables - exp["depends_on"]:
            problems.append(f"dashboard {dash['slug']}: reads {sorted(tables - exp['depends_on'])}, "
                            f"not in exposure {name}'s depends_on")
        if exp["depends_on"] - tables:
            problems.append(f"dashboard {dash['slug']}: exposure {name} depends on "
                            f"{sorted(exp['depends_on'] - tables)}, which no chart reads")
    for chart in bundle.charts.values():
        if chart["uuid"] not in in_dashboards:
            problems.append(f"chart {chart['slice_name']!r} is on no dashboard")
    return problems


def reader_queries(bundle: Bundle) -> list[tuple[str, str]]:
    """(label, SQL) reading every column and metric of every dataset, and every chart's own query."""
    out = []
    for ds in bundle.datasets.values():
        table = f'{ds["schema"]}.{ds["table_name"]}'
        columns, metrics = dataset_fields(ds)
        cols = ", ".join(f'({expr}) as "{c}"' if expr else f'"{c}"' for c, expr in columns.items())
        out.append((f"dataset {ds['table_name']} columns", f"select {cols} from {table} limit 5"))
        mets = ", ".join(f'({expr}) as "{m}"' for m, expr in metrics.items())
        out.append((f"dataset {ds['table_name']} metrics", f"select {mets} from {table}"))
    for chart in bundle.charts.values():
        ds = bundle.dataset_of(chart)
        columns, metrics = dataset_fields(ds)
        used_cols, used_mets = chart_fields(chart.get("params") or {})
        dims = [f'({columns[c]})' if columns.get(c) else f'"{c}"' for c in dict.fromkeys(used_cols) if c in columns]
        mets = [f'({metrics[m]})' for m in dict.fromkeys(used_mets) if m in metrics]
        select = ", ".join(dims + mets) or "count(*)"
        group = f" group by {', '.join(str(i + 1) for i in range(len(dims)))}" if dims and mets else ""
        out.append((f"chart {chart['slice_name']!r}",
                    f'select {select} from {ds["schema"]}.{ds["table_name"]}{group} limit 50'))
    return out


# ---------------------------------------------------------------- metrics from MetricFlow

PLACEHOLDER = "metricflow('{name}')"  # a dataset metric's expression in git when dbt defines the metric
_PLACEHOLDER = re.compile(r"^\s*metricflow\(\s*'([^']*)'\s*\)\s*$", re.IGNORECASE)
# MetricFlow's measure aggregations a Superset metric can carry as one SQL aggregate
_AGG = {"sum": "sum({})", "min": "min({})", "max": "max({})", "average": "avg({})", "count": "count({})",
        "count_distinct": "count(distinct {})", "sum_boolean": "sum(case when {} then 1 else 0 end)"}


class MetricError(ValueError):
    """A MetricFlow metric that has no single-table SQL expression (filters, offsets, cumulative...)."""


def placeholder(expr: str | None) -> str | None:
    """The metric name of a `metricflow('name')` placeholder, None for any other expression."""
    m = _PLACEHOLDER.match(expr or "")
    return m.group(1) if m else None


def semantic_manifest_path(project_dir: Path | None = None) -> Path:
    return dbt_target_dir(project_dir or project_root() / "dbt_project") / "semantic_manifest.json"


def parse_project(project_dir: Path | None = None) -> Path:
    """`dbt parse` in-process (no warehouse connection): writes target/semantic_manifest.json."""
    from dbt.cli.main import dbtRunner

    from .settings import dbt_env
    from .transform import dbt_environment

    project_dir = Path(project_dir or project_root() / "dbt_project")
    # the connection is not opened by a parse; profiles.yml only needs its variables set
    env = {k: os.environ.get(k) or v for k, v in dbt_env("postgresql://postgres@127.0.0.1:5432/ecrm").items()}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = os.environ.get("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    with dbt_environment(env):
        result = dbtRunner().invoke(["parse", "--quiet", "--project-dir", str(project_dir),
                                     "--profiles-dir", str(project_dir)])
    if not result.success:
        raise BiError(f"`dbt parse` of {project_dir} failed: {result.exception}")
    return semantic_manifest_path(project_dir)


def semantic_manifest(project_dir: Path | None = None, parse: bool | None = None) -> dict:
    """dbt's semantic manifest. parse=None: `dbt parse` only when it is missing or older than a file of
    models/ or dbt_project.yml; True: always (deploy); False: never."""
    project_dir = Path(project_dir or project_root() / "dbt_project")
    path = semantic_manifest_path(project_dir)
    if parse is None:
        sources = [project_dir / "dbt_project.yml", *(project_dir / "models").rglob("*.yml")]
        parse = not path.exists() or max(p.stat().st_mtime for p in sources) > path.stat().st_mtime
    if parse:
        parse_project(project_dir)
    elif not path.exists():
        raise BiError(f"{path} is missing: run `dbt parse` in {project_dir}")
    return json.loads(path.read_text())


def metric_sql(manifest: dict, name: str) -> tuple[str, set[tuple[str, str]]]:
    """(the SQL aggregate of MetricFlow metric `name` over one row set, {(schema, table)} it reads).

    simple: its measure's agg(expr); ratio: numerator * 1.0 / nullif(denominator, 0); derived: its
    expression with each input metric's SQL in place. Raises MetricError for what SQL cannot carry."""
    measures = {m["name"]: (m, sm) for sm in manifest.get("semantic_models", []) for m in sm.get("measures") or []}
    metrics = {m["name"]: m for m in manifest.get("metrics", [])}

    def build(metric_name: str, seen: tuple) -> tuple[str, set, bool]:  # sql, tables, one aggregate call
        if metric_name not in metrics:
            raise MetricError(f"dbt has no metric {metric_name}")
        if metric_name in seen:
            raise MetricError(f"metric {metric_name} refers to itself")
        metric, seen = metrics[metric_name], (*seen, metric_name)
        kind, params = metric["type"], metric["type_params"]
        if metric.get("filter"):
            raise MetricError(f"metric {metric_name} has a filter")
        if kind == "simple":
            ref = params["measure"]
            if ref.get("filter") or ref.get("join_to_timespine") or ref.get("fill_nulls_with") is not None:
                raise MetricError(f"metric {metric_name}'s measure has a filter or a time-spine join")
            measure, model = measures[ref["name"]]
            if measure["agg"] not in _AGG or measure.get("non_additive_dimension"):
                raise MetricError(f"measure {measure['name']} ({measure['agg']}) is not one SQL aggregate")
            relation = model["node_relation"]
            sql = _AGG[measure["agg"]].format(" ".join((measure.get("expr") or measure["name"]).split()))
            return sql, {(relation["schema_name"], relation["alias"])}, True

        def inputs(refs: list[dict]) -> dict[str, tuple[str, set, bool]]:
            out = {}
            for ref in refs:
                if ref.get("filter") or ref.get("offset_window") or ref.get("offset_to_grain"):
                    raise MetricError(f"metric {metric_name}'s input {ref['name']} has a filter or an offset")
                out[ref.get("alias") or ref["name"]] = build(ref["name"], seen)
            return out

        def term(part: tuple[str, set, bool]) -> str:
            return part[0] if part[2] else f"({part[0]})"
        if kind == "ratio":
            parts = inputs([params["numerator"], params["denominator"]])
            (num, den) = parts.values()
            return f"{term(num)} * 1.0 / nullif({den[0]}, 0)", num[1] | den[1], False
        if kind == "derived":
            parts = inputs(params["metrics"])
            pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(parts, key=len, reverse=True))) + r")\b")
            expr = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", " ".join(params["expr"].split())))
            sql = pattern.sub(lambda m: term(parts[m.group(1)]), expr)
            return sql, set().union(*(p[1] for p in parts.values())), False
        raise MetricError(f"metric {metric_name} is a {kind} metric")

    sql, tables, _ = build(name, ())
    return sql, tables


def _same_sql(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return re.sub(r"\s*([(),*/+-])\s*", r"\1", " ".join(s.lower().split()))
    return norm(a) == norm(b)


def metricflow_metrics(bundle: Bundle, manifest: dict) -> tuple[dict[tuple[str, str], str], list[str]]:
    """({(dataset uuid, metric): generated SQL}, problems) for the dataset metrics named like a
    MetricFlow metric. A metric on another table than its semantic model's, one MetricFlow cannot
    express in SQL, or a hand-written expression that differs from the generated one is a problem."""
    defined = {m["name"] for m in manifest.get("metrics", [])}
    generated, problems = {}, []
    for uuid, ds in bundle.datasets.items():
        table, label = (ds["schema"], ds["table_name"]), f"dataset {ds['table_name']}"
        for met in ds.get("metrics", []):
            name, expr = met["metric_name"], met.get("expression") or ""
            named = placeholder(expr)
            if named is not None and named != name:
                problems.append(f"{label}: metric {name}'s placeholder names another metric ({expr})")
                continue
            if name not in defined:
                if named is not None or not expr.strip():
                    problems.append(f"{label}: metric {name} has no expression and dbt defines no metric {name}")
                continue
            try:
                sql, tables = metric_sql(manifest, name)
            except MetricError as exc:
                problems.append(f"{label}: metric {name} cannot be generated from MetricFlow: {exc}")
                continue
            if tables != {table}:
                where = ", ".join(sorted(f"{s}.{t}" for s, t in tables))
                problems.append(f"{label}: metric {name} is MetricFlow's metric on {where}, not on "
                                f"{table[0]}.{table[1]}: it cannot be generated here (rename the Superset metric)")
                continue
            if named is None and expr.strip() and not _same_sql(expr, sql):
                problems.append(f"{label}: metric {name} is written by hand ({expr}) and differs from MetricFlow's "
                                f"definition ({sql}); set its expression to {PLACEHOLDER.format(name=name)}")
                continue
            generated[uuid, name] = sql
    return generated, problems


def resolve_metrics(bundle: Bundle, manifest: dict | None = None) -> Bundle:
    """The bundle with every generatable MetricFlow metric's expression written from the semantic
    manifest (datasets and their files); what cannot be generated is left as it is (check_bundle says so)."""
    import copy

    generated, _ = metricflow_metrics(bundle, semantic_manifest() if manifest is None else manifest)
    out = copy.deepcopy(bundle)
    for uuid, ds in out.datasets.items():
        changed = False
        for met in ds.get("metrics", []):
            if (uuid, met["metric_name"]) in generated:
                changed |= met.get("expression") != generated[uuid, met["metric_name"]]
                met["expression"] = generated[uuid, met["metric_name"]]
        if changed:
            out.files[out.paths[uuid]] = yaml.safe_dump(ds, sort_keys=False)
    return out


# ---------------------------------------------------------------- the reader login

def reader_url() -> str:
    url = os.environ.get("ECRM_BI_READER_URL")
    if not url:
        raise BiError("set ECRM_BI_READER_URL to the BI login's warehouse URL, e.g. "
                      "postgresql://ecrm_superset:PASSWORD@host:5432/ecrm (a login with only ecrm_bi_reader; "
                      "`ecrm bi login` creates it)")
    return url


def superset_uri(url: str) -> tuple[str, str | None]:
    """(SQLAlchemy URI for Superset with the password masked, the password or None)."""
    parts = urlsplit(url)
    password = parts.password
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}{':' + MASK if password is not None else ''}@{host}{':' + str(parts.port) if parts.port else ''}"
    return urlunsplit(("postgresql+psycopg2", netloc, parts.path, parts.query, "")), (
        None if password is None else _unquote(password))


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def reader_roles(url: str) -> tuple[bool, list[str]]:
    """(the login is privileged (superuser, createrole, createdb, bypassrls), the roles it is a member of)."""
    import psycopg

    with psycopg.connect(url) as conn:
        privileged, = conn.execute(
            "select rolsuper or rolcreaterole or rolcreatedb or rolbypassrls from pg_roles "
            "where rolname = current_user").fetchone()
        roles = [r for r, in conn.execute(
            "select r.rolname from pg_auth_members as m join pg_roles as r on r.oid = m.roleid "
            "join pg_roles as u on u.oid = m.member where u.rolname = current_user order by 1")]
    return privileged, roles


def check_reader(url: str) -> None:
    privileged, roles = reader_roles(url)
    if privileged or roles != [BI_ROLE]:
        raise BiError(f"the BI login must have only the {BI_ROLE} role (it is a member of {roles or 'nothing'}"
                      f"{', and privileged' if privileged else ''}): `ecrm bi login` creates such a login")


def create_login(admin_url: str, url: str) -> str:
    """Create (or reset the password of) ECRM_BI_READER_URL's login, with only ecrm_bi_reader."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    if not parts.username:
        raise BiError("ECRM_BI_READER_URL names no user")
    login = parts.username
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_roles where rolname = %s", (BI_ROLE,)).fetchone():
            raise BiError(f"role {BI_ROLE} does not exist yet: build the marts first (`ecrm build DAY`)")
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (login,)).fetchone()
        verb = "alter" if exists else "create"
        pw = sql.SQL(" password {}").format(sql.Literal(_unquote(parts.password))) if parts.password else sql.SQL("")
        conn.execute(sql.SQL(verb + " role {} login nosuperuser nocreatedb nocreaterole inherit{}").format(
            sql.Identifier(login), pw))
        for role, in conn.execute(
                "select r.rolname from pg_auth_members as m join pg_roles as r on r.oid = m.roleid "
                "join pg_roles as u on u.oid = m.member where u.rolname = %s and r.rolname <> %s",
                (login, BI_ROLE)).fetchall():
            conn.execute(sql.SQL("revoke {} from {}").format(sql.Identifier(role), sql.Identifier(login)))
        conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(BI_ROLE), sql.Identifier(login)))
    return login


# ---------------------------------------------------------------- Superset: venv, metadata, server

@dataclass(frozen=True)
class SupersetConfig:
    url: str
    admin_user: str
    admin_password: str
    secret_key: str
    home: Path
    venv: Path

    @classmethod
    def from_env(cls) -> SupersetConfig:
        root = project_root()
        missing = [k for k in ("ECRM_SUPERSET_ADMIN_PASSWORD", "SUPERSET_SECRET_KEY") if not os.environ.get(k)]
        if missing:
            raise BiError(f"set {' and '.join(missing)} (Superset's admin password and its secret key; "
                          "never commit them)")
        return cls(url=os.environ.get("ECRM_SUPERSET_URL", DEFAULT_URL).rstrip("/"),
                   admin_user=os.environ.get("ECRM_SUPERSET_ADMIN_USER", "admin"),
                   admin_password=os.environ["ECRM_SUPERSET_ADMIN_PASSWORD"],
                   secret_key=os.environ["SUPERSET_SECRET_KEY"],
                   home=superset_home(),
                   venv=Path(os.environ.get("ECRM_SUPERSET_VENV") or root / ".superset-venv"))

    def __repr__(self) -> str:  # no secrets in logs
        return f"SupersetConfig(url={self.url!r}, admin_user={self.admin_user!r}, home={str(self.home)!r})"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ECRM_WAREHOUSE"))}
        env.update({"SUPERSET_CONFIG_PATH": str(bundle_dir() / "superset_config.py"),
                    "SUPERSET_SECRET_KEY": self.secret_key, "ECRM_SUPERSET_HOME": str(self.home),
                    "FLASK_APP": "superset", "SUPERSET_HOME": str(self.home), "PYTHONUNBUFFERED": "1"})
        return env

    @property
    def superset(self) -> Path:
        return self.venv / "bin" / "superset"


def install(venv: Path | None = None, quiet: bool = True) -> Path:
    """Superset's own venv from bi/superset/requirements.txt (skipped when that file did not change), with
    its metadata template (build_template)."""
    venv = Path(venv or os.environ.get("ECRM_SUPERSET_VENV") or project_root() / ".superset-venv")
    requirements = bundle_dir() / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    marker = venv / ".installed"
    if not (marker.exists() and marker.read_text().strip() == digest and (venv / "bin" / "superset").exists()):
        (venv / TEMPLATE).unlink(missing_ok=True)  # made by the Superset being replaced
        python = venv / "bin" / "python"
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        q = ["-q"] if quiet else []
        try:
            subprocess.run([sys.executable, "-m", "uv", "pip", "install", *q, "--python", str(python),
                            "--compile-bytecode", "-r", str(requirements)], check=True)
        except (subprocess.CalledProcessError, FileNotFoundError):
            subprocess.run([str(python), "-m", "pip", "install", *q, "-r", str(requirements)], check=True)
        marker.write_text(digest + "\n")
    if not (venv / TEMPLATE).exists():
        build_template(venv)
    return venv


def build_template(venv: Path) -> Path:
    """The venv's SQLite metadata template: `superset db upgrade` + `superset init` in a scratch folder."""
    import secrets
    import tempfile

    with tempfile.TemporaryDirectory(prefix="superset-template-") as scratch:
        cfg = SupersetConfig(url=DEFAULT_URL, admin_user="", admin_password="", secret_key=secrets.token_urlsafe(32),
                             home=Path(scratch), venv=venv)
        # the template is always SQLite in the scratch folder, whatever metadata URI the caller set
        env = {k: v for k, v in cfg.env().items() if k != "ECRM_SUPERSET_METADATA_URI"}
        _superset(cfg, "db", "upgrade", env=env)
        _superset(cfg, "init", env=env)
        shutil.copyfile(cfg.home / "superset.db", venv / ".template.tmp")
        os.replace(venv / ".template.tmp", venv / TEMPLATE)  # never half a template
    return venv / TEMPLATE


def _superset(cfg: SupersetConfig, *args: str, env: dict[str, str] | None = None) -> str:
    res = subprocess.run([str(cfg.superset), *args], env=env or cfg.env(), cwd=cfg.home, capture_output=True,
                         text=True)
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-15:])
        raise BiError(f"`superset {args[0]}` failed ({res.returncode}):\n{tail}")
    return res.stdout + res.stderr


TEMPLATE = "metadata-template.db"  # in the venv: SQLite metadata after `db upgrade` + `init`, no users


def init_metadata(cfg: SupersetConfig) -> None:
    """`superset db upgrade` and `superset init`, then the admin user from ECRM_SUPERSET_ADMIN_*; idempotent.

    With SQLite metadata (the default), a new metadata file starts as a copy of the venv's template:
    the migrations and `init` depend only on the installed Superset, and take 40 s to 4 min here."""
    cfg.home.mkdir(parents=True, exist_ok=True)
    sqlite = not os.environ.get("ECRM_SUPERSET_METADATA_URI")
    metadata, template = cfg.home / "superset.db", cfg.venv / TEMPLATE
    if sqlite and not metadata.exists() and template.exists():
        shutil.copyfile(template, metadata)
    else:
        _superset(cfg, "db", "upgrade")
        _superset(cfg, "init")
    out = _superset(cfg, "fab", "create-admin", "--username", cfg.admin_user, "--firstname", "Superset",
                    "--lastname", "Admin", "--email", f"{cfg.admin_user}@example.invalid",
                    "--password", cfg.admin_password)
    if "already exist" in out:  # an admin that existed keeps its old password: set the configured one
        _superset(cfg, "fab", "reset-password", "--username", cfg.admin_user, "--password", cfg.admin_password)


def healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=3).text.strip() == "OK"
    except httpx.HTTPError:
        return False


def start(cfg: SupersetConfig, timeout: float = 180) -> int:
    """`superset run` on ECRM_SUPERSET_URL's port, in its own process group; returns its pid."""
    parts = urlsplit(cfg.url)
    if parts.hostname not in ("localhost", "127.0.0.1"):
        raise BiError(f"nothing answers at {cfg.url} and it is not on this machine: start Superset there")
    log = open(cfg.home / "superset.log", "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen([str(cfg.superset), "run", "-h", "127.0.0.1", "-p", str(parts.port or 80),
                             "--with-threads"], env=cfg.env(), cwd=cfg.home, stdout=log, stderr=log,
                            start_new_session=True)
    (cfg.home / "superset.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while not healthy(cfg.url):
        if proc.poll() is not None:
            raise BiError(f"Superset exited ({proc.returncode}); see {cfg.home / 'superset.log'}")
        if time.monotonic() > deadline:
            raise BiError(f"Superset did not answer at {cfg.url}/health within {timeout:.0f} s")
        time.sleep(1)
    return proc.pid


def superset_home() -> Path:
    return Path(os.environ.get("ECRM_SUPERSET_HOME") or project_root() / ".superset")


def stop(home: Path | None = None) -> bool:
    """Stop the Superset `start` left running (its process group); False when there is none."""
    pid_file = Path(home or superset_home()) / "superset.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    pid_file.unlink()
    return True


# ---------------------------------------------------------------- the import

def bundle_zip(bundle: Bundle, sqlalchemy_uri: str) -> bytes:
    """The bundle as Superset's import ZIP (one top folder), the connection URI set from the environment."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in bundle.files.items():
            if name == DATABASE_FILE:
                doc = dict(bundle.database, sqlalchemy_uri=sqlalchemy_uri)
                text = yaml.safe_dump(doc, sort_keys=False)
            z.writestr(f"ecrm_bundle/{name}", text)
    return buf.getvalue()


def api_headers(client, user: str, password: str) -> dict[str, str]:
    """Headers for Superset's REST API: a JWT from /api/v1/security/login and the CSRF token (the
    client keeps the session cookie the token belongs to)."""
    r = client.post("/api/v1/security/login",
                    json={"username": user, "password": password, "provider": "db", "refresh": True})
    if r.status_code != 200:
        raise BiError(f"Superset login as {user} failed ({r.status_code}): check ECRM_SUPERSET_ADMIN_*")
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    csrf = client.get("/api/v1/security/csrf_token/", headers=headers)
    csrf.raise_for_status()
    return headers | {"X-CSRFToken": csrf.json()["result"], "Referer": str(client.base_url)}


def import_bundle(url: str, user: str, password: str, bundle: Bundle, reader: str) -> dict:
    """POST /api/v1/assets/import/ (JWT + CSRF token); overwrites every asset of the bundle."""
    import httpx

    uri, db_password = superset_uri(reader)
    with httpx.Client(base_url=url, timeout=120) as client:
        headers = api_headers(client, user, password)
        data = {"overwrite": "true"}
        if db_password is not None:
            data["passwords"] = json.dumps({DATABASE_FILE: db_password})
        r = client.post("/api/v1/assets/import/", headers=headers, data=data,
                        files={"bundle": ("ecrm_bundle.zip", bundle_zip(bundle, uri), "application/zip")})
        if r.status_code != 200:
            raise BiError(f"the assets import was refused ({r.status_code}): {r.text[:2000]}")
        return r.json()


def prepared_bundle(project_dir: Path | None = None, root: Path | None = None, check: bool = True) -> Bundle:
    """The bundle as deploy sends it: `dbt parse` of the project, every MetricFlow metric's expression
    generated from the semantic manifest, and (check) the bundle's checks passed."""
    manifest = semantic_manifest(project_dir, parse=True)  # the metrics as dbt defines them now
    bundle = resolve_metrics(load_bundle(root), manifest)
    if check and (problems := check_bundle(bundle, semantic=manifest)):
        raise BiError("the bundle fails its checks:\n  " + "\n  ".join(problems))
    return bundle


def deploy(cfg: SupersetConfig | None = None, start_if_down: bool = True, check: bool = True) -> list[str]:
    """Check the bundle and the reader login, bring Superset up when needed, import; the dashboards' URLs."""
    cfg = cfg or SupersetConfig.from_env()
    bundle = prepared_bundle(check=check)
    reader = reader_url()
    check_reader(reader)
    if not healthy(cfg.url):
        if not start_if_down:
            raise BiError(f"nothing answers at {cfg.url}/health")
        install(cfg.venv)
        init_metadata(cfg)
        start(cfg)
    import_bundle(cfg.url, cfg.admin_user, cfg.admin_password, bundle, reader)
    return [f"{cfg.url}{dashboard_path(d['slug'])}" for d in bundle.dashboards.values()]
