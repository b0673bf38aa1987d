"""Metrics defined once (dbt semantic models + MetricFlow, docs/metrics.md): `mf validate-configs` passes
against a built warehouse, and `mf query` gives the figures the marts publish and the daily report shows,
per day and per campaign; over several days a rate pools its sums (never an average of daily rates)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT
from ecrm.intervals import day_interval
from ecrm.settings import dbt_env, dbt_target_dir

START = date(2026, 10, 1)
DAY1, DAY2 = START, START + timedelta(days=1)
MF_PROJECT: dict[str, Path] = {}  # the built fixture's url -> the project copy `mf` runs in
ENV = ("ECRM_DATA_DIR", "ECRM_LANDING", "ECRM_OUTBOX", "ECRM_GX_PROJECT_DIR", "ECRM_REPORTS")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(warehouse, tmp_path_factory):
    """Two simulated days loaded and built, day 1 gated, published and pushed (day 2 holds its campaign)."""
    from ecrm.pipeline import SOURCES, build_marts, ingest_initial, ingest_interval, publish_segments
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("metrics-data")
    gx_dir = data / "expectations"
    shutil.copytree(ROOT / "expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update({"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"),
                       "ECRM_OUTBOX": str(data / "outbox"), "ECRM_GX_PROJECT_DIR": str(gx_dir),
                       "ECRM_REPORTS": str(data / "reports")})
    try:
        url = warehouse.create_database("metrics")
        # exact UTC days (no delivery delays): day 1's push comes back as day 2's campaign events
        sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                            customers=400, seed=16, delivery="none")
        sim.write_initial()
        ingest_initial(START, url=url)
        for day in (DAY1, DAY2):
            sim.write_day(day)
            for source in SOURCES:
                ingest_interval(source, *day_interval(day), url=url)
            build_marts(*day_interval(day), url=url)
            if day == DAY1:
                publish_segments(*day_interval(day), url=url)
        # MetricFlow reads <project>/target/semantic_manifest.json, whatever DBT_TARGET_PATH says: mf
        # runs in a copy of the project holding the manifest of this process's last build (this one)
        project = data / "dbt_project"
        shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
        (project / "target").mkdir()
        shutil.copy2(dbt_target_dir(ROOT / "dbt_project") / "semantic_manifest.json", project / "target")
        MF_PROJECT[url] = project
        yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def mf(url: str, *args: str) -> subprocess.CompletedProcess:
    """The MetricFlow CLI on the repository's dbt project against `url`."""
    project = MF_PROJECT[url]
    env = {**os.environ, **dbt_env(url), "DBT_PROFILES_DIR": str(project), "DBT_PROJECT_DIR": str(project),
           "DBT_TARGET_PATH": "target",
           "ECRM_RUN_DATE": DAY2.isoformat(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    return subprocess.run([str(Path(sys.executable).parent / "mf"), *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)


def query(url: str, tmp_path: Path, metrics: list[str], group_by: str | None = None) -> list[dict]:
    out = tmp_path / f"{'_'.join(metrics)[:60]}.csv"
    done = mf(url, "query", "--metrics", ",".join(metrics), *(["--group-by", group_by] if group_by else []),
              "--csv", str(out))
    assert done.returncode == 0 and out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    with out.open() as f:
        return list(csv.DictReader(f))


def close(a, b) -> bool:
    """Equal up to the marts' rounding to 6 places (None/empty for a rate over nothing)."""
    if a in (None, "") or b in (None, ""):
        return a in (None, "") and b in (None, "")
    return abs(float(a) - float(b)) <= 6e-7


def test_mf_validate_configs_passes_against_the_warehouse(built):
    done = mf(built, "validate-configs")
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-4000:]
    assert "ERROR:" not in text and "Successfully validated metrics against data warehouse" in text, text[-4000:]


def test_daily_metrics_equal_the_marts_and_the_report(built, tmp_path):
    from ecrm.report.data import load

    rows = query(built, tmp_path, ["bounce_rate", "session_conversion_rate", "sessions", "top_customers_revenue_share",
                                   "repeat_rate"], "metric_time__day")
    by_day = {date.fromisoformat(r["metric_time__day"][:10]): r for r in rows}
    with psycopg.connect(built, autocommit=True) as conn:
        web = {r[0]: r[1:] for r in conn.execute(
            "select kpi_date, sessions, bounce_rate, session_conversion_rate from marts.fct_web_kpis_daily")}
        pareto = dict(conn.execute("select snapshot_date, top_customers_revenue_share from marts.fct_rfm_kpis_daily"))
        repeat = conn.execute("select as_of_date, count(*) filter (where is_repeat_buyer)::numeric "
                              "/ count(*) filter (where valid_order_count >= 1) from marts.dim_customers "
                              "group by as_of_date").fetchall()
        report = load(conn, DAY2)
    assert web and pareto and set(pareto) == {DAY1, DAY2}
    for day, (sessions, bounce, conversion) in web.items():
        assert int(float(by_day[day]["sessions"])) == sessions, day
        assert close(by_day[day]["bounce_rate"], bounce), day
        assert close(by_day[day]["session_conversion_rate"], conversion), day
    for day, share in pareto.items():
        assert close(by_day[day]["top_customers_revenue_share"], share), day
    [(as_of, repeat_rate)] = repeat
    assert as_of == DAY2 and close(by_day[DAY2]["repeat_rate"], repeat_rate)
    # the report shows the same figures for its day and the day before
    for day in (DAY1, DAY2):
        assert close(by_day[day]["top_customers_revenue_share"], report.headline[day]["top_customers_revenue_share"])
        if day in report.web:
            assert close(by_day[day]["bounce_rate"], report.web[day]["bounce_rate"])
            assert close(by_day[day]["session_conversion_rate"], report.web[day]["session_conversion_rate"])


def test_a_rate_over_several_days_pools_its_sums(built, tmp_path):
    [row] = query(built, tmp_path, ["bounce_rate", "session_conversion_rate"])
    with psycopg.connect(built) as conn:
        pooled = conn.execute("select sum(bounced_sessions)::numeric / sum(sessions), "
                              "sum(converting_sessions)::numeric / sum(sessions), count(*) "
                              "from marts.fct_web_kpis_daily").fetchone()
    assert pooled[2] >= 2, "the test needs several days of sessions"
    assert abs(float(row["bounce_rate"]) - float(pooled[0])) < 1e-9
    assert abs(float(row["session_conversion_rate"]) - float(pooled[1])) < 1e-9


def test_campaign_metrics_equal_the_marts_and_the_report(built, tmp_path):
    from ecrm.report.data import load

    names = ["open_rate", "click_rate", "buyer_rate", "holdout_buyer_rate", "holdout_lift", "holdout_relative_lift",
             "holdout_lift_ci_lower", "holdout_lift_ci_upper"]
    rows = {r["campaign"]: r for r in query(built, tmp_path, names, "campaign")}
    columns = {"open_rate": "open_rate", "click_rate": "click_rate", "buyer_rate": "conversion_rate",
               "holdout_buyer_rate": "holdout_conversion_rate", "holdout_lift": "absolute_lift",
               "holdout_relative_lift": "relative_lift", "holdout_lift_ci_lower": "absolute_lift_ci_lower",
               "holdout_lift_ci_upper": "absolute_lift_ci_upper"}
    with psycopg.connect(built, autocommit=True) as conn:
        marts = conn.execute(f"select campaign_id, {', '.join(columns.values())} from marts.fct_campaign_kpis").fetchall()
        report = load(conn, DAY2)
    assert marts, "no campaign was built: the test needs day 1's push to come back on day 2"
    assert set(rows) == {m[0] for m in marts}
    for campaign_id, *values in marts:
        for metric, value in zip(columns, values, strict=True):
            assert close(rows[campaign_id][metric], value), (campaign_id, metric, rows[campaign_id][metric], value)
    assert report.campaigns
    for shown in report.campaigns:
        got = rows[shown["campaign_id"]]
        for metric, column in (("open_rate", "open_rate"), ("click_rate", "click_rate"),
                               ("buyer_rate", "conversion_rate"), ("holdout_relative_lift", "relative_lift"),
                               ("holdout_lift_ci_lower", "absolute_lift_ci_lower")):
            assert close(got[metric], shown[column]), (metric, got[metric], shown[column])


def test_each_campaign_says_what_its_holdout_can_detect(built):
    """The minimum detectable lift (80% power, two-sided 5%, pooled rate), recomputed here from the
    mart's counts, is the mart's column and the report's words next to each campaign's lift, with the
    holdout a 2 pp lift would need (issue 29: a holdout of 30 answers nothing, and says so)."""
    from math import ceil, sqrt

    from ecrm.report.data import load
    from ecrm.report.render import view

    with psycopg.connect(built, autocommit=True) as conn:
        rows = conn.execute("select campaign_id, delivered, holdout_customers, converters, holdout_converters, "
                            "minimum_detectable_lift, holdout_needed_for_target_lift from marts.fct_campaign_kpis"
                            ).fetchall()
        shown = {c["campaign_id"]: c["detectable"] for c in view(load(conn, DAY2))["campaigns"]}
    assert rows, "the test needs a campaign"
    for campaign, n_t, n_h, x_t, x_h, mde, needed in rows:
        pooled = (x_t + x_h) / (n_t + n_h)
        expected = 2.8016 * sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_h)) if 0 < pooled < 1 else None
        assert (mde is None) == (expected is None), (campaign, mde, expected)
        if expected is None:
            assert shown[campaign] == "no conversion yet: nothing to detect"
            continue
        assert abs(float(mde) - expected) < 1e-6
        inverse = (0.02 / 2.8016) ** 2 / (pooled * (1 - pooled)) - 1 / n_t
        assert needed == (ceil(1 / inverse) if inverse > 0 else None)
        assert shown[campaign].startswith(f"this holdout can only detect lifts above {expected * 100:.1f} pp")
        if expected > 0.02:
            assert (f"would need a holdout of {needed:,}" if needed else "needs a larger audience") in shown[campaign]
