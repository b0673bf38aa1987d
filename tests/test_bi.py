"""Dashboards as code (bi/superset, docs/bi.md), tested as the BI login and as a person who opens them.

One small warehouse built by the real pipeline (simulator -> loaders -> dbt -> gate -> publish, three
days: the weekly campaign goes out on the second, its e-mail events reach the marts on the third), and a login that has only `ecrm_bi_reader`
(`ecrm.bi.create_login`, as `ecrm bi login` makes it). Fast: the bundle passes its checks (every
chart field is a column or saved metric of its dataset, no identifier, each dashboard reads exactly
its dbt exposure's tables at the exposure's URL), every dataset column and metric and every chart's
query runs as the BI login, the ratio metrics equal the marts' own rates, and the checks fail a
chart on an identifier or a table outside the exposure. Metrics defined once: every ratio a dashboard
shows is generated from dbt's semantic manifest (a `dbt parse`, no warehouse), a changed metric in the
semantic yml changes what deploy sends, and a hand-written metric that differs from MetricFlow's fails. Slow (`slow`): Superset from its own venv
on a free port with SQLite metadata in a temp folder, the bundle deployed through the REST assets
import, every dashboard opened at its exposure's URL in headless Chromium (no chart error, every
chart with rows, no request to another host; the telemetry pixel refused by the CSP), a changed chart
re-deployed and updated, and the connection proven to be the BI login (identifiers refused).
"""

from __future__ import annotations

import copy
import io
import json
import os
import secrets
import shutil
import socket
import time
import zipfile
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml

from ecrm import bi
from ecrm.intervals import day_interval
from ecrm.settings import dbt_target_dir

ROOT = Path(__file__).resolve().parents[1]
START = date(2026, 10, 1)
DAYS = [START + timedelta(days=n) for n in range(3)]
CHROMIUM = "/usr/bin/chromium"
ENV = ("ECRM_DATA_DIR", "ECRM_LANDING", "ECRM_OUTBOX", "ECRM_GX_PROJECT_DIR")
READER = "ecrm_superset_test"


def _with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


@pytest.fixture(scope="module")
def built(warehouse, tmp_path_factory):
    """Three days built, gated and published, and the BI login: (admin url, reader url)."""
    from ecrm.pipeline import SOURCES, build_marts, ingest_initial, ingest_interval, publish_segments
    from ecrm.simulate import ShopSimulator
    from ecrm.simulate.campaigns import DiscountPlan

    data = tmp_path_factory.mktemp("bi-data")
    gx_dir = data / "expectations"
    shutil.copytree(ROOT / "expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update({"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"),
                       "ECRM_OUTBOX": str(data / "outbox"), "ECRM_GX_PROJECT_DIR": str(gx_dir)})
    try:
        url = warehouse.create_database("bi_base")
        # a loyalty program, and a code in the first weekly campaign (day 2): every chart has data
        sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                            customers=400, seed=16, loyalty=True, discounts=DiscountPlan(every=1, offset=0))
        sim.write_initial()
        ingest_initial(START, url=url)
        for day in DAYS:
            sim.write_day(day)
            for source in SOURCES:
                ingest_interval(source, *day_interval(day), url=url)
            build_marts(*day_interval(day), url=url)
            publish_segments(*day_interval(day), url=url)
        reader = _with_user(url, READER, secrets.token_hex(12))
        assert bi.create_login(url, reader) == READER
        yield url, reader
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def semantic() -> dict:
    """dbt's semantic manifest (`dbt parse` when target/ is missing or older than a model file)."""
    return bi.semantic_manifest()


def _resolved() -> bi.Bundle:
    return bi.resolve_metrics(bi.load_bundle())


@pytest.fixture
def bundle_copy(tmp_path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bi.bundle_dir(), target, ignore=shutil.ignore_patterns("*.py", "*.txt", "*.in"))
    return target


def _edit(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


# ---------------------------------------------------------------- fast: the bundle and the BI login

def test_the_bundle_passes_its_checks_and_each_dashboard_is_its_exposure():
    bundle = bi.load_bundle()
    assert bi.check_bundle(bundle) == []
    exposures = bi.exposures()
    slugs = {d["slug"] for d in bundle.dashboards.values()}
    assert slugs == {"crm", "campaigns", "site", "discounts-loyalty"}
    assert {urlsplit(e["url"]).path for e in exposures.values()} == {bi.dashboard_path(s) for s in slugs}
    uuids = [d["uuid"] for kind in ("datasets", "charts", "dashboards") for d in getattr(bundle, kind).values()]
    assert len(uuids) == len(set(uuids)) == len(bundle.datasets) + len(bundle.charts) + len(bundle.dashboards)
    # the connection's password is never in the repository: Superset gets it in the import request
    assert urlsplit(bundle.database["sqlalchemy_uri"]).password == bi.MASK
    assert "password" not in bundle.database
    # the named ratios are sum(numerator) / nullif(sum(denominator), 0), never an average of a rate
    metrics = [(m["metric_name"], m["expression"]) for ds in _resolved().datasets.values() for m in ds["metrics"]]
    names = {"bounce_rate", "session_conversion_rate", "open_rate", "click_rate", "buyer_rate", "repeat_rate",
             "top_customers_revenue_share", "holdout_lift"}
    assert names <= {name for name, _ in metrics}
    for name, expr in metrics:
        if name in names or name.endswith(("_rate", "_share")):
            assert expr.lstrip("(").startswith("sum(") and "/ nullif(" in expr and "avg(" not in expr.lower(), name


def test_every_ratio_a_dashboard_shows_is_generated_from_the_semantic_manifest(semantic):
    bundle = bi.load_bundle()
    generated, problems = bi.metricflow_metrics(bundle, semantic)
    assert problems == []
    resolved = bi.resolve_metrics(bundle, semantic)
    used = {(chart["dataset_uuid"], name) for dash in bundle.dashboards.values()
            for chart in bundle.dashboard_charts(dash) for name in bi.chart_fields(chart["params"])[1]}
    ratios = {(uuid, name) for uuid, name in used if "/" in bi.dataset_fields(resolved.datasets[uuid])[1][name]}
    assert len(ratios) >= 15, ratios  # rates, shares, lifts and their intervals of the three dashboards
    assert ratios <= set(generated), sorted(ratios - set(generated))
    for uuid, name in ratios:  # in git they carry only the placeholder: nothing to drift
        assert bi.dataset_fields(bundle.datasets[uuid])[1][name] == bi.PLACEHOLDER.format(name=name)
    by_name = {(resolved.datasets[u]["table_name"], n): bi.dataset_fields(resolved.datasets[u])[1][n]
               for u, n in generated}
    # the ratio of MetricFlow's measures, the derived lift from its input metrics
    assert by_name["fct_web_kpis_daily", "bounce_rate"] == "sum(bounced_sessions) * 1.0 / nullif(sum(sessions), 0)"
    assert by_name["dim_customers", "repeat_rate"] == (
        "sum(case when is_repeat_buyer then 1 else 0 end) * 1.0 "
        "/ nullif(sum(case when valid_order_count >= 1 then 1 else 0 end), 0)")
    assert by_name["fct_campaign_kpis", "holdout_lift"] == (
        "(sum(converters) * 1.0 / nullif(sum(delivered), 0)) "
        "- (sum(holdout_converters) * 1.0 / nullif(sum(holdout_customers), 0))")
    # and what deploy imports is the resolved bundle: the dataset files carry the generated SQL
    sent = yaml.safe_load(resolved.files[resolved.paths[next(
        u for u, d in resolved.datasets.items() if d["table_name"] == "fct_web_kpis_daily")]])
    assert {m["metric_name"]: m["expression"] for m in sent["metrics"]}["bounce_rate"] == by_name[
        "fct_web_kpis_daily", "bounce_rate"]


def test_a_metric_changed_in_the_semantic_yml_changes_what_deploy_sends(tmp_path, semantic, monkeypatch):
    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "target").mkdir()  # dbt's saved parse (the semantic fixture made it): the copy parses partially
    for saved in dbt_target_dir(ROOT / "dbt_project").glob("partial_parse.msgpack"):
        shutil.copy2(saved, project / "target")
    monkeypatch.setenv("DBT_TARGET_PATH", "target")  # the copy's own target/, not the repository's parse

    def sent(project_dir: Path) -> dict[str, str]:
        bundle = bi.prepared_bundle(project_dir)  # dbt parse + generation + checks, as deploy does
        with zipfile.ZipFile(io.BytesIO(bi.bundle_zip(bundle, "postgresql+psycopg2://x@h/db"))) as z:
            doc = yaml.safe_load(z.read("ecrm_bundle/datasets/ecrm_warehouse/fct_campaign_kpis.yaml"))
        return {m["metric_name"]: m["expression"] for m in doc["metrics"]}

    before = sent(project)
    assert before["open_rate"] == "sum(human_openers) * 1.0 / nullif(sum(delivered), 0)"
    semantic_yml = project / "models" / "marts" / "campaigns" / "_campaigns__semantic.yml"
    text = semantic_yml.read_text()
    old = "      numerator: human_openers\n      denominator: delivered\n"
    assert text.count(old) == 1
    # open rate redefined as click-to-open: clickers / human openers
    semantic_yml.write_text(text.replace(old, "      numerator: clickers\n      denominator: human_openers\n"))
    after = sent(project)
    assert after["open_rate"] == "sum(clickers) * 1.0 / nullif(sum(human_openers), 0)"
    assert {k: v for k, v in after.items() if k != "open_rate"} == {k: v for k, v in before.items() if k != "open_rate"}
    # the repository's own manifest is untouched by the copy's parse
    monkeypatch.undo()  # DBT_TARGET_PATH: this process's target/ again
    assert bi.semantic_manifest(parse=False)["metrics"] == semantic["metrics"]


def test_a_hand_written_metric_named_like_a_metricflow_metric_fails_the_check(bundle_copy, semantic):
    datasets = bundle_copy / "datasets" / "ecrm_warehouse"
    generated = "sum(bounced_sessions) * 1.0 / nullif(sum(sessions), 0)"

    def set_metric(name, expression):
        def change(doc):
            next(m for m in doc["metrics"] if m["metric_name"] == name)["expression"] = expression
        return change
    # a re-exported bundle carries the generated SQL itself: that passes (same definition)
    _edit(datasets / "fct_web_kpis_daily.yaml", set_metric("bounce_rate", generated.upper().replace(" ", "  ")))
    assert bi.check_bundle(bi.load_bundle(bundle_copy), semantic=semantic) == []
    # a ratio re-derived by hand, differently: fails, and says what to write instead
    _edit(datasets / "fct_web_kpis_daily.yaml",
          set_metric("bounce_rate", "sum(bounced_sessions) * 1.0 / nullif(sum(page_views), 0)"))
    _edit(datasets / "fct_campaign_kpis.yaml", set_metric("holdout_lift", "avg(absolute_lift)"))
    # a metric named like MetricFlow's on another table than its semantic model's
    _edit(datasets / "fct_web_sessions.yaml", set_metric("channel_bounce_rate", "metricflow('bounce_rate')"))

    def add_bounce(doc):
        doc["metrics"].append(dict(doc["metrics"][0], metric_name="bounce_rate", expression=generated))
    _edit(datasets / "fct_web_sessions.yaml", add_bounce)
    problems = bi.check_bundle(bi.load_bundle(bundle_copy), semantic=semantic)
    assert ("dataset fct_web_kpis_daily: metric bounce_rate is written by hand (sum(bounced_sessions) * 1.0 / "
            "nullif(sum(page_views), 0)) and differs from MetricFlow's definition (" + generated + "); set its "
            "expression to metricflow('bounce_rate')") in problems
    assert any(p.startswith("dataset fct_campaign_kpis: metric holdout_lift is written by hand (avg(absolute_lift))")
               for p in problems), problems
    assert ("dataset fct_web_sessions: metric bounce_rate is MetricFlow's metric on marts.fct_web_kpis_daily, not on "
            "marts.fct_web_sessions: it cannot be generated here (rename the Superset metric)") in problems
    assert ("dataset fct_web_sessions: metric channel_bounce_rate's placeholder names another metric "
            "(metricflow('bounce_rate'))") in problems
    assert ("dataset fct_campaign_kpis: metric holdout_lift averages a rate (avg(absolute_lift)); "
            "use sum(num)/nullif(sum(den), 0)") in problems
    assert len(problems) == 5, problems
    # deploy leaves what it cannot generate as it is, and refuses the bundle
    resolved = bi.resolve_metrics(bi.load_bundle(bundle_copy), semantic)
    assert bi.check_bundle(resolved, semantic=semantic) == problems


def test_every_dataset_and_chart_reads_as_the_bi_login(built):
    _, reader = built
    bi.check_reader(reader)  # only ecrm_bi_reader, nothing privileged
    empty, failed = [], []
    with psycopg.connect(reader) as conn:
        for label, query in bi.reader_queries(_resolved()):
            try:
                rows = conn.execute(query).fetchall()
            except psycopg.Error as exc:
                conn.rollback()
                failed.append(f"{label}: {exc}")
                continue
            if label.startswith("chart") and not rows:
                empty.append(label)
    assert failed == []
    assert empty == [], "charts without a row on a three-day warehouse"


def test_the_ratio_metrics_equal_the_marts_rates(built):
    """Each dataset metric, grouped as the mart's grain, gives the mart's own rate column."""
    url, reader = built
    bundle = _resolved()  # the expressions deploy sends, generated from the semantic manifest
    metric = {(ds["table_name"], m["metric_name"]): m["expression"]
              for ds in bundle.datasets.values() for m in ds["metrics"]}
    cases = [("fct_web_kpis_daily", "kpi_date", "bounce_rate", "bounce_rate"),
             ("fct_web_kpis_daily", "kpi_date", "session_conversion_rate", "session_conversion_rate"),
             ("fct_web_kpis_daily", "kpi_date", "engagement_rate", "engagement_rate"),
             ("fct_campaign_kpis", "campaign_id", "open_rate", "open_rate"),
             ("fct_campaign_kpis", "campaign_id", "click_rate", "click_rate"),
             ("fct_campaign_kpis", "campaign_id", "buyer_rate", "conversion_rate"),
             ("fct_campaign_kpis", "campaign_id", "holdout_buyer_rate", "holdout_conversion_rate"),
             ("fct_campaign_kpis", "campaign_id", "holdout_lift", "absolute_lift"),
             ("fct_campaign_kpis", "campaign_id", "holdout_lift_ci_lower", "absolute_lift_ci_lower"),
             ("fct_campaign_kpis", "campaign_id", "holdout_lift_ci_upper", "absolute_lift_ci_upper"),
             ("fct_flow_kpis", "flow, entry_date", "flow_treated_conversion_rate", "treated_conversion_rate"),
             ("fct_flow_kpis", "flow, entry_date", "flow_holdout_conversion_rate", "holdout_conversion_rate"),
             ("fct_flow_kpis", "flow, entry_date", "flow_holdout_lift", "absolute_lift"),
             ("fct_flow_kpis", "flow, entry_date", "flow_holdout_lift_ci_lower", "absolute_lift_ci_lower"),
             ("fct_flow_kpis", "flow, entry_date", "flow_holdout_lift_ci_upper", "absolute_lift_ci_upper"),
             ("fct_segment_summary_daily", "snapshot_date, segment", "customer_share", "customer_share"),
             ("fct_segment_summary_daily", "snapshot_date, segment", "revenue_share", "revenue_share"),
             ("fct_rfm_kpis_daily", "snapshot_date", "top_customers_revenue_share", "top_customers_revenue_share"),
             ("fct_attribution_daily", "order_date", "attributed_revenue_share", "attributed_revenue_share")]
    with psycopg.connect(url) as conn:
        for table, grain, name, column in cases:
            rows = conn.execute(f"select {grain}, round(({metric[table, name]})::numeric, 6), "
                                f"round(max({column})::numeric, 6) from marts.{table} group by {grain}").fetchall()
            assert rows, table
            assert all(r[-2] == r[-1] for r in rows), (name, rows)
        # the per-session rates (any grouping: channel, landing page), grouped by day, are the daily mart's
        per_day = conn.execute(
            f"select sessions.session_date, round(({metric['fct_web_sessions', 'channel_bounce_rate']})::numeric, 6),"
            f" round(({metric['fct_web_sessions', 'channel_conversion_rate']})::numeric, 6),"
            f" max(kpis.bounce_rate), max(kpis.session_conversion_rate) from marts.fct_web_sessions as sessions"
            f" join marts.fct_web_kpis_daily as kpis on kpis.kpi_date = sessions.session_date"
            f" group by sessions.session_date").fetchall()
        assert per_day and all(r[1] == r[3] and r[2] == r[4] for r in per_day), per_day
        # repeat rate: repeat buyers among customers with a valid order
        ours, = conn.execute(f"select {metric['dim_customers', 'repeat_rate']} from marts.dim_customers").fetchone()
        theirs, = conn.execute("select count(*) filter (where valid_order_count >= 2)::numeric "
                               "/ count(*) filter (where valid_order_count >= 1) from marts.dim_customers").fetchone()
        assert round(ours, 9) == round(theirs, 9)


def test_a_chart_on_an_identifier_fails_the_check(built, bundle_copy):
    _, reader = built
    charts = bundle_copy / "charts"
    _edit(charts / "crm_lifecycle_over_time.yaml", lambda d: d["params"].update(groupby=["customer_id"]))
    _edit(charts / "crm_churn_bands.yaml", lambda d: d["params"].update(groupby=["email"]))
    dataset = bundle_copy / "datasets" / "ecrm_warehouse" / "dim_customers.yaml"

    def add_email(doc):
        col = copy.deepcopy(doc["columns"][0])
        doc["columns"].append(dict(col, column_name="email", type="TEXT", is_dttm=False))
    _edit(dataset, add_email)
    bundle = bi.resolve_metrics(bi.load_bundle(bundle_copy))
    problems = bi.check_bundle(bundle)
    assert "dataset dim_customers: column email is an identifier" in problems
    assert "chart 'Customers per lifecycle stage over time': shows identifier column customer_id" in problems
    assert any(p.startswith("chart 'Churn risk bands") and p.endswith("shows identifier column email")
               for p in problems), problems
    # and the database agrees: the BI login cannot read the e-mail column the chart would show
    failed = []
    with psycopg.connect(reader) as conn:
        for label, query in bi.reader_queries(bundle):
            try:
                conn.execute(query).fetchall()
            except psycopg.errors.InsufficientPrivilege:
                conn.rollback()
                failed.append(label)
    assert sorted(failed) == ["chart 'Churn risk bands: customers, expected revenue, repeat rate'",
                              "dataset dim_customers columns"]


def test_a_dashboard_off_its_exposure_or_an_averaged_rate_fails_the_check(bundle_copy):
    exposures = bi.exposures()
    shrunk = copy.deepcopy(exposures)
    shrunk["site_dashboard"]["depends_on"].discard("fct_web_sessions")
    shrunk["crm_dashboard"]["depends_on"].add("fct_web_pages_daily")
    problems = bi.check_bundle(bi.load_bundle(), shrunk)
    assert problems == ["dashboard crm: exposure crm_dashboard depends on ['fct_web_pages_daily'], which no chart reads",
                        "dashboard site: reads ['fct_web_sessions'], not in exposure site_dashboard's depends_on"]
    moved = copy.deepcopy(exposures)
    moved["site_dashboard"]["url"] = "http://localhost:8088/superset/dashboard/web/"
    assert "dashboard site: no dbt exposure has its URL (path /superset/dashboard/site/)" in bi.check_bundle(
        bi.load_bundle(), moved)

    def average(doc):
        doc["metrics"].append(dict(doc["metrics"][0], metric_name="avg_bounce", expression="avg(bounce_rate)"))
        doc["metrics"].append(dict(doc["metrics"][0], metric_name="views_per_session",
                                   expression="sum(page_views) * 1.0 / nullif(sum(sessions), 0)"))
    _edit(bundle_copy / "datasets" / "ecrm_warehouse" / "fct_web_kpis_daily.yaml", average)
    _edit(bundle_copy / "charts" / "site_sessions.yaml", lambda d: d["params"]["metrics"].append(
        {"expressionType": "SQL", "sqlExpression": "avg(bounce_rate)", "label": "bounce"}))
    problems = bi.check_bundle(bi.load_bundle(bundle_copy))
    assert any("metric avg_bounce averages a rate" in p for p in problems), problems
    assert any("metric views_per_session is a ratio written by hand" in p for p in problems), problems
    assert any(p.startswith("chart 'Sessions and page views per day': ad-hoc metric") for p in problems), problems


def test_a_login_with_more_than_the_bi_role_is_refused(built):
    url, _ = built  # the warehouse's superuser
    with pytest.raises(bi.BiError, match="only the ecrm_bi_reader role"):
        bi.check_reader(url)


def test_deploy_without_its_settings_or_with_a_wide_login_stops_with_exit_23(built, monkeypatch, capsys):
    from ecrm.cli import main

    url, reader = built
    for key in ("ECRM_BI_READER_URL", "ECRM_SUPERSET_ADMIN_PASSWORD", "SUPERSET_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(SystemExit) as stop:
        main(["bi", "deploy"])
    assert stop.value.code == 23
    assert "ECRM_SUPERSET_ADMIN_PASSWORD and SUPERSET_SECRET_KEY" in capsys.readouterr().err
    monkeypatch.setenv("ECRM_SUPERSET_ADMIN_PASSWORD", "not-used")
    monkeypatch.setenv("SUPERSET_SECRET_KEY", "not-used")
    monkeypatch.setenv("ECRM_SUPERSET_URL", f"http://127.0.0.1:{_free_port()}")  # nothing there, nothing started
    monkeypatch.setenv("ECRM_BI_READER_URL", url)  # the warehouse's superuser: refused before anything starts
    with pytest.raises(SystemExit) as stop:
        main(["bi", "deploy", "--no-start"])
    assert stop.value.code == 23
    err = capsys.readouterr().err
    assert "must have only the ecrm_bi_reader role" in err and "privileged" in err
    monkeypatch.setenv("ECRM_BI_READER_URL", reader)
    main(["bi", "check"])  # the bundle's checks and every query, as the BI login
    assert "bundle ok" in capsys.readouterr().out


# ---------------------------------------------------------------- slow: Superset and Chromium

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def superset(built, tmp_path_factory):
    """Superset 6.1 from .superset-venv (installed when missing), SQLite metadata in a temp folder,
    `superset run` on a free port; the bundle deployed as `ecrm bi deploy` does."""
    _, reader = built
    started = time.monotonic()
    venv = bi.install()
    installed = time.monotonic()
    cfg = bi.SupersetConfig(url=f"http://127.0.0.1:{_free_port()}", admin_user="admin",
                            admin_password=secrets.token_urlsafe(12), secret_key=secrets.token_urlsafe(32),
                            home=tmp_path_factory.mktemp("superset"), venv=venv)
    bi.init_metadata(cfg)
    initialised = time.monotonic()
    bi.start(cfg)
    try:
        assert bi.import_bundle(cfg.url, cfg.admin_user, cfg.admin_password, bi.prepared_bundle(), reader) == {
            "message": "OK"}
        print(f"\nsuperset: venv {installed - started:.0f} s, metadata {initialised - installed:.0f} s, "
              f"up and deployed {time.monotonic() - initialised:.0f} s")
        yield cfg
    finally:
        bi.stop(cfg.home)


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium is missing ({CHROMIUM}): install it with `apt-get install -y chromium` "
                    "(`make test` does this when run as root).", pytrace=False)
    return CHROMIUM


@pytest.mark.slow
def test_every_dashboard_renders_in_chromium_with_data_and_nothing_from_outside(superset, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    bundle = bi.load_bundle()
    host = superset.url
    outside, csp_refused, results = [], [], {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})

            def route(r):
                if r.request.url.startswith(host + "/"):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: "Content Security Policy" in m.text and csp_refused.append(m.text))
            chart_data = []

            def response(r):
                if "/api/v1/chart/data" in r.url:
                    chart_data.append((r.status, r.json()))
            page.on("response", response)
            page.goto(f"{host}/login/")
            page.fill("#username", superset.admin_user)
            page.fill("#password", superset.admin_password)
            page.keyboard.press("Enter")
            page.wait_for_url("**/superset/welcome/**", timeout=90_000)
            policy = page.request.get(f"{host}/login/").headers["content-security-policy"]
            for exposure in bi.exposures().values():
                dash = next(d for d in bundle.dashboards.values()
                            if bi.dashboard_path(d["slug"]) == urlsplit(exposure["url"]).path)
                expected = len(bundle.dashboard_charts(dash))
                chart_data.clear()
                page.goto(host + urlsplit(exposure["url"]).path)  # the exposure's URL on this server
                page.wait_for_function(
                    f"() => document.querySelectorAll('.dashboard-component-chart-holder').length === {expected}",
                    timeout=90_000)
                page.wait_for_function(
                    "() => ![...document.querySelectorAll('.dashboard-component-chart-holder')].some("
                    "h => h.querySelector('.loading, [aria-label=loading]') || !h.querySelector('canvas, svg, table, "
                    ".header-line, [role=alert], .ant-alert'))", timeout=90_000)
                deadline = time.monotonic() + 60
                while len(chart_data) < expected and time.monotonic() < deadline:
                    page.wait_for_timeout(250)
                drawn = page.eval_on_selector_all(
                    ".dashboard-component-chart-holder",
                    "els => els.map(e => [e.querySelectorAll('[role=alert], .ant-alert-error').length, "
                    "e.querySelectorAll('canvas, svg, table, .header-line').length, e.innerText.slice(0, 60)])")
                results[dash["slug"]] = (expected, list(chart_data), drawn)
                page.screenshot(path=str(tmp_path / f"{dash['slug']}.png"), full_page=True)
        finally:
            browser.close()
    assert set(results) == {"crm", "campaigns", "site", "discounts-loyalty"}
    for slug, (expected, data, drawn) in results.items():
        assert len(drawn) == expected and all(errors == 0 and marks > 0 for errors, marks, _ in drawn), (slug, drawn)
        assert len(data) >= expected, (slug, len(data), expected)  # a chart may ask twice, never less
        for status, body in data:
            result = body["result"][0]
            assert status == 200 and result.get("error") is None and result["rowcount"] > 0, (slug, body)
    assert outside == [], f"the dashboards asked for outside resources: {outside}"
    # Superset's UI does ask for its telemetry pixel: the shipped CSP is what refuses it
    assert any("scarf.sh" in m for m in csp_refused), csp_refused
    assert "img-src 'self' blob: data:" in policy and "scarf" not in policy


@pytest.mark.slow
def test_redeploying_a_changed_chart_updates_it_and_the_connection_is_the_bi_login(superset, built, bundle_copy):
    import httpx

    _, reader = built
    _edit(bundle_copy / "charts" / "site_sessions.yaml", lambda d: (
        d.update(slice_name="Sessions per day (changed)"), d["params"].update(metrics=["sessions"])))
    changed = bi.prepared_bundle(root=bundle_copy)
    uuid = next(c["uuid"] for c in changed.charts.values() if c["slice_name"] == "Sessions per day (changed)")
    assert bi.import_bundle(superset.url, superset.admin_user, superset.admin_password, changed, reader) == {
        "message": "OK"}
    with httpx.Client(base_url=superset.url, timeout=60) as client:
        headers = bi.api_headers(client, superset.admin_user, superset.admin_password)
        q = {"filters": [{"col": "uuid", "opr": "eq", "value": uuid}], "columns": ["slice_name", "params"]}
        charts = client.get("/api/v1/chart/", headers=headers, params={"q": json.dumps(q)}).json()["result"]
        assert [c["slice_name"] for c in charts] == ["Sessions per day (changed)"]
        assert json.loads(charts[0]["params"])["metrics"] == ["sessions"]
        total = client.get("/api/v1/chart/", headers=headers, params={"q": json.dumps({"page_size": 100})}).json()
        assert total["count"] == len(changed.charts)  # updated in place, not added
        databases = client.get("/api/v1/database/", headers=headers).json()["result"]
        assert [d["database_name"] for d in databases] == ["ecrm_warehouse"]

        def sql(text):
            return client.post("/api/v1/sqllab/execute/", headers=headers, json={
                "database_id": databases[0]["id"], "sql": text, "runAsync": False, "schema": "marts"})
        uri = client.get(f"/api/v1/database/{databases[0]['id']}/connection", headers=headers).json()["result"]
        assert urlsplit(uri["sqlalchemy_uri"]).username == READER  # and Superset shows no password
        assert urlsplit(uri["sqlalchemy_uri"]).password in (None, bi.MASK)
        counted = sql("select count(*) as n from marts.fct_web_kpis_daily")
        assert counted.status_code == 200 and counted.json()["data"][0]["n"] > 0, counted.text
        denied = sql("select email from marts.dim_customers limit 1")
        assert denied.status_code != 200 and "permission denied" in denied.text
