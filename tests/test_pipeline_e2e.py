"""The whole daily pipeline through real Airflow runs: simulate days, run all five DAGs per day,
then check what users read (marts, published audiences, outbox) and that a rerun changes nothing."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import psycopg
import pytest

from ecrm import airflow_env

START = date(2026, 10, 1)
DAYS = 3
pytestmark = pytest.mark.slow


def table_digest(url: str, table: str, order_by: str) -> str:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"select * from {table} order by {order_by}").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def pipeline(warehouse, tmp_path_factory, airflow_home):
    """Run DAYS simulated days through all DAGs; yields (url, data_dir, dags, runs)."""
    import os

    from ecrm.pipeline import ingest_initial
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("data")
    url = warehouse.create_database("e2e")
    os.environ.update({"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"),
                       "ECRM_OUTBOX": str(data / "outbox")})
    airflow_env.configure(url, home=airflow_home)  # the home Airflow was first imported with
    sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                        customers=800, seed=7)
    sim.write_initial()
    ingest_initial(START, url=url)
    dags = airflow_env.load_dags()
    runs = {}
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        sim.write_day(day)
        for dag_id in airflow_env.DAG_ORDER:
            runs[(day, dag_id)] = str(airflow_env.run_day(dags, dag_id, day).state)
    yield url, data, dags, runs, sim


def test_every_dag_run_succeeds(pipeline):
    _, _, _, runs, _ = pipeline
    failed = {key: state for key, state in runs.items() if state != "success"}
    assert not failed
    assert len(runs) == DAYS * 5


def test_loads_reconcile_and_quarantine_is_exercised(pipeline):
    url = pipeline[0]
    with psycopg.connect(url) as conn:
        bad = conn.execute("select count(*) from ops.load_ledger where status = 'succeeded' "
                           "and rows_read <> rows_loaded + rows_quarantined").fetchone()[0]
        sources = dict(conn.execute("select source, sum(rows_quarantined) from ops.load_ledger "
                                    "where status = 'succeeded' group by source").fetchall())
        quarantined = conn.execute("select count(*) from quarantine.rejected_rows").fetchone()[0]
    assert bad == 0
    assert {"orders", "web_logs", "email_events"} <= set(sources)
    assert quarantined == sum(sources.values()) and quarantined > 0


def test_rfm_history_has_one_row_per_customer_per_day(pipeline):
    url = pipeline[0]
    with psycopg.connect(url) as conn:
        per_day = conn.execute("select snapshot_date, count(*), count(distinct customer_id) "
                               "from marts.fct_customer_rfm_daily group by 1 order by 1").fetchall()
        customers = conn.execute("select count(*) from marts.dim_customers").fetchone()[0]
    assert [d for d, *_ in per_day] == [START + timedelta(days=i) for i in range(DAYS)]
    for _, rows, distinct in per_day:
        assert rows == distinct
    assert per_day[-1][1] == customers


def test_published_audiences_reach_the_outbox_without_suppressed_or_holdout(pipeline):
    import csv
    import json

    url, data = pipeline[0], pipeline[1]
    last = START + timedelta(days=DAYS - 1)
    folder = data / "outbox" / last.isoformat()
    manifest = json.loads((folder / "manifest.json").read_text())
    with psycopg.connect(url) as conn:
        excluded = {r[0] for r in conn.execute(
            "select customer_id from marts.dim_customers where is_holdout or is_suppressed")}
        published = conn.execute("select count(*) from published.audience_members").fetchone()[0]
    pushed = 0
    for audience, entry in manifest["audiences"].items():
        rows = list(csv.DictReader((folder / entry["file"]).open()))
        assert len(rows) == entry["rows"], audience
        assert not {r["customer_id"] for r in rows} & excluded, f"{audience} holds a suppressed/holdout member"
        pushed += len(rows)
    assert pushed == published > 0
    assert excluded, "the holdout must not be empty"
    # the forecast audience is pushed like the others: its members are the day's high-risk, high-value buyers
    assert manifest["audiences"].get("high_value_at_risk", {}).get("rows", 0) > 0, manifest["audiences"].keys()
    rows = list(csv.DictReader((folder / manifest["audiences"]["high_value_at_risk"]["file"]).open()))
    with psycopg.connect(url) as conn:
        risky = {r[0] for r in conn.execute(
            "select customer_id from marts.fct_customer_predictions_daily where snapshot_date = %s "
            "and churn_risk = 'high'", (last,))}
    assert {r["customer_id"] for r in rows} <= risky


def test_every_day_has_its_forecast(pipeline):
    url = pipeline[0]
    with psycopg.connect(url) as conn:
        days = conn.execute("select snapshot_date, count(*), bool_and(p_alive between 0 and 1) "
                            "from marts.fct_customer_predictions_daily group by 1 order by 1").fetchall()
        fits = conn.execute("select count(*) filter (where converged) from marts.fct_clv_model_fits").fetchone()[0]
    assert [d for d, *_ in days] == [START + timedelta(days=i) for i in range(DAYS)]
    assert all(n > 0 and ok for _, n, ok in days) and fits == 2 * DAYS
    with psycopg.connect(url) as conn:
        # dim_customers carries the forecast of its own run date (built after the forecast: two dbt invocations)
        stale = conn.execute("select count(*) from marts.dim_customers c left join marts.fct_customer_predictions_daily p "
                             "on p.customer_id = c.customer_id and p.snapshot_date = c.as_of_date "
                             "where c.p_alive is distinct from p.p_alive").fetchone()[0]
        backtests = conn.execute("select count(*) from marts.fct_clv_backtest_runs where status = 'done'").fetchone()[0]
    assert stale == 0 and backtests == DAYS


def test_campaign_loop_closes(pipeline):
    """Day 1's push becomes day 2's campaign, whose events come back and show in the KPIs."""
    url = pipeline[0]
    with psycopg.connect(url) as conn:
        campaigns = conn.execute("select campaign_id, recipients, delivered from marts.fct_campaign_kpis").fetchall()
    assert campaigns, "no campaign results in marts.fct_campaign_kpis"
    campaign_id, recipients, delivered = campaigns[0]
    assert campaign_id.startswith(f"cmp-{(START + timedelta(days=1)).isoformat()}")
    assert recipients > 0 and 0 < delivered <= recipients


def test_rerunning_a_day_changes_nothing(pipeline):
    url, data, dags, _, _ = pipeline
    last = START + timedelta(days=DAYS - 1)
    tables = {"marts.fct_customer_rfm_daily": "snapshot_date, customer_id", "marts.dim_customers": "customer_id",
              "raw.orders": "order_id", "raw.web_requests": "_file, _line", "raw.email_events": "event_id",
              "published.audience_members": "audience, customer_id", "marts.fct_campaign_kpis": "campaign_id"}
    before = {t: table_digest(url, t, o) for t, o in tables.items()}
    outbox = data / "outbox" / last.isoformat()
    files_before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in outbox.iterdir()}
    for dag_id in airflow_env.DAG_ORDER:
        assert str(airflow_env.run_day(dags, dag_id, last).state) == "success", dag_id
    assert {t: table_digest(url, t, o) for t, o in tables.items()} == before
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in outbox.iterdir()} == files_before


def test_rerunning_a_past_day_audits_it_but_does_not_roll_back_published_audiences(pipeline):
    """A backfill of an old day must not push older segments over today's (nor trip the breaker)."""
    url, data, dags, _, _ = pipeline
    with psycopg.connect(url) as conn:
        syncs_before = conn.execute("select count(*) from mailer.sync_runs").fetchone()[0]
    published_before = table_digest(url, "published.audience_members", "audience, customer_id")
    for dag_id in airflow_env.DAG_ORDER:
        assert str(airflow_env.run_day(dags, dag_id, START).state) == "success", dag_id
    assert table_digest(url, "published.audience_members", "audience, customer_id") == published_before
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from mailer.sync_runs").fetchone()[0] == syncs_before
        detail = conn.execute("select detail from ops.stage_runs where stage = 'publish_segments' "
                              "and run_date = %s", (START,)).fetchone()[0]
    assert "already published" in detail["skipped"]
