"""Lifecycle flows end to end: simulated days -> loaders -> dbt -> gate -> publish -> outbox push
(ecrm.pipeline, no Airflow). Entrants exist with both groups, a rerun of a day gives the same
entrants, and the mailer pushes each flow member once (a rerun pushes nothing). The SQL rules
themselves (cooldown, priority, cap, exits, holdout, suppression) have dbt unit tests in
dbt_project/models/*/flows/_flows__unit_tests.yml, run here too."""

from __future__ import annotations

import os
import shutil
from datetime import date, timedelta

import psycopg
import pytest

from conftest import ROOT
from ecrm.intervals import day_interval

START = date(2026, 10, 1)
DAYS = [START + timedelta(days=k) for k in range(6)]
ENTRANTS = "select entry_date, flow, customer_id, reason, flow_group, flow_holdout_bucket from marts.fct_flow_entrants"


@pytest.fixture(scope="module")
def world(warehouse, tmp_path_factory):
    from ecrm.pipeline import SOURCES, build_marts, ingest_initial, ingest_interval, publish_segments
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("flows-data")
    gx_dir = data / "expectations"
    shutil.copytree(ROOT / "expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    keys = ("ECRM_DATA_DIR", "ECRM_LANDING", "ECRM_OUTBOX", "ECRM_GX_PROJECT_DIR")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"),
                       "ECRM_OUTBOX": str(data / "outbox"), "ECRM_GX_PROJECT_DIR": str(gx_dir)})
    url = warehouse.create_database("flows_e2e")
    sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                        customers=1500, seed=7)
    sim.write_initial()
    ingest_initial(START, url=url)
    published = {}
    for day in DAYS:
        sim.write_day(day)
        for source in SOURCES:
            ingest_interval(source, *day_interval(day), url=url)
        build_marts(*day_interval(day), url=url)
        published[day] = publish_segments(*day_interval(day), url=url)
    yield {"url": url, "outbox": data / "outbox", "published": published}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def fetch(url: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_flow_entrants_exist_with_holdouts_and_follow_the_rules(world):
    url = world["url"]
    by_group = dict(fetch(url, "select flow_group, count(*) from marts.fct_flow_entrants group by 1"))
    assert by_group.get("treated", 0) > 0 and by_group.get("holdout", 0) > 0, by_group
    flows = {f for (f,) in fetch(url, "select distinct flow from marts.fct_flow_entrants")}
    # first orders and segment / lifecycle moves both trigger (no one slips into At Risk in 6 days)
    assert "welcome" in flows and flows & {"winback", "vip_thanks", "reengage"}, flows
    # one flow per customer and day; nobody suppressed, non-consenting or in the campaign holdout
    assert not fetch(url, "select entry_date, customer_id from marts.fct_flow_entrants "
                          "group by 1, 2 having count(*) > 1")
    assert not fetch(url, "select e.customer_id from marts.fct_flow_entrants e "
                          "join marts.fct_customer_rfm_daily r on r.customer_id = e.customer_id "
                          "and r.snapshot_date = e.entry_date where r.is_holdout or not r.is_contactable")
    # the group is the stable hash of (customer, flow)
    assert not fetch(url, "select 1 from marts.fct_flow_entrants where is_flow_holdout <> "
                          "((('x' || substr(md5('flow:' || flow || ':' || customer_id), 1, 8))::bit(32)::bigint "
                          "% 100) < flow_holdout_pct)")
    kpis = fetch(url, "select flow, entry_date, treated_entrants, holdout_entrants, is_window_open "
                      "from marts.fct_flow_kpis")
    assert kpis and all(open_ for *_, open_ in kpis)  # 6 days < 14-day windows
    assert sum(t + h for _, _, t, h, _ in kpis) == sum(by_group.values())


def test_publish_pushes_flow_members_once(world):
    from ecrm.pipeline import publish_segments

    url, last = world["url"], DAYS[-1]
    # every treated member of a flow audience was published and added exactly once
    adds = fetch(url, "select audience, email_hash, count(*) from mailer.sync_changes "
                      "where action = 'add' and result = 'sent' and audience like 'flow\\_%%' group by 1, 2")
    assert adds and all(n == 1 for *_, n in adds)
    members = fetch(url, "select audience, customer_id from published.audience_members where audience like 'flow\\_%%'")
    assert members
    held_out = fetch(url, "select m.customer_id from published.audience_members m "
                          "join marts.fct_flow_entrants e on e.customer_id = m.customer_id and e.audience = m.audience "
                          "where e.is_flow_holdout")
    assert not held_out
    files = sorted(p.name for p in (world["outbox"] / last.isoformat()).glob("flow_*.csv"))
    assert files, "the flow audiences reach the outbox"
    # a rerun of the day sends nothing
    sent_before = fetch(url, "select count(*) from mailer.sync_changes where result = 'sent'")
    publish_segments(*day_interval(last), url=url)
    assert fetch(url, "select count(*) from mailer.sync_changes where result = 'sent'") == sent_before


def test_rerunning_a_day_gives_the_same_entrants(world):
    from ecrm.pipeline import build_marts

    url = world["url"]
    before = fetch(url, ENTRANTS + " order by entry_date, customer_id")
    for day in (DAYS[3], DAYS[-1]):  # a past day, then the last day again (leaves the world as it was)
        build_marts(*day_interval(day), url=url)
    assert fetch(url, ENTRANTS + " order by entry_date, customer_id") == before


def test_flow_unit_tests_pass(world):
    from ecrm.transform import run_dbt

    result = run_dbt(["test", "--select", "test_type:unit,tag:flows", "--quiet"], world["url"],
                     env={"ECRM_RUN_DATE": DAYS[-1].isoformat()})
    ran = [r for r in result.result.results if r.node.unique_id.startswith("unit_test.")]
    assert ran and all(str(r.status) == "pass" for r in ran), [(r.node.name, str(r.status), r.message) for r in ran]
