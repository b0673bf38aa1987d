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
DAYS = [START + timedelta(days=k) for k in range(9)]  # past vip_thanks' 7-day window
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
    yield {"url": url, "outbox": data / "outbox", "published": published, "truth": data / "truth"}
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
    assert kpis and all(open_ for *_, open_ in kpis)  # 9 days < 14-day windows
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
    # members leave (an order, the window's end) and the circuit breaker lets flow audiences turn over
    assert fetch(url, "select count(*) from mailer.sync_changes where action = 'remove' and result = 'sent' "
                      "and audience like 'flow\\_%%'")[0][0] > 0
    assert not fetch(url, "select day, audience from mailer.sync_runs where status <> 'succeeded'")
    files = sorted(p.name for p in (world["outbox"] / last.isoformat()).glob("flow_*.csv"))
    assert files, "the flow audiences reach the outbox"
    # a rerun of the day sends nothing
    sent_before = fetch(url, "select count(*) from mailer.sync_changes where result = 'sent'")
    publish_segments(*day_interval(last), url=url)
    assert fetch(url, "select count(*) from mailer.sync_changes where result = 'sent'") == sent_before


def test_demo_summary_shows_each_flow_with_its_lift(world, tmp_path, capsys):
    from ecrm.demo import print_flows

    print_flows(world["url"], DAYS[-1], tmp_path)  # no truth file: the truth column says "-"
    out = capsys.readouterr().out
    entered = {f for (f,) in fetch(world["url"], "select distinct flow from marts.fct_flow_entrants")}
    assert "Lifecycle flows" in out and all(flow in out for flow in entered), out


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


@pytest.mark.slow
@pytest.mark.timeout(1800)  # eight builds: the global 900 s counts fixture set-up too, on a loaded machine
def test_flow_lift_interval_covers_the_simulator_truth(warehouse, tmp_path, monkeypatch):
    """Seven days of flow entries pushed through the outbox; the simulator gives every pushed
    (treated) entrant a known daily uplift for 14 days; measured when every cohort's window closed.

    A large uplift (0.04 a day) keeps the interval informative with the few dozen entrants a
    flow gets in a week of a 6,000-customer shop; conversion counts valid orders only, the truth
    any order (cancellations and refunds, ~7% of orders, shrink the measured lift a little)."""
    import json

    from ecrm.pipeline import SOURCES, build_marts, ingest_initial, ingest_interval, publish_segments
    from ecrm.simulate import ShopSimulator

    gx_dir = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    for key, value in {"ECRM_DATA_DIR": tmp_path, "ECRM_LANDING": tmp_path / "landing",
                       "ECRM_OUTBOX": tmp_path / "outbox", "ECRM_GX_PROJECT_DIR": gx_dir}.items():
        monkeypatch.setenv(key, str(value))
    url = warehouse.create_database("flows_truth")
    sim = ShopSimulator(landing=tmp_path / "landing", outbox=tmp_path / "outbox", truth=tmp_path / "truth",
                        start=START, customers=6000, seed=5, flow_daily_uplift=0.04)
    sim.write_initial()
    ingest_initial(START, url=url)
    entry_days = [START + timedelta(days=k) for k in range(7)]
    measured = entry_days[-1] + timedelta(days=15)  # the last cohort's 14-day window has closed
    day = START
    while day <= measured:
        sim.write_day(day)
        for source in SOURCES:
            ingest_interval(source, *day_interval(day), url=url)
        if day in entry_days:
            build_marts(*day_interval(day), url=url)
            publish_segments(*day_interval(day), url=url)
        day += timedelta(days=1)
    build_marts(*day_interval(measured), url=url)

    truth = {(c["flow"], c["entry_day"]): c
             for c in json.loads((tmp_path / "truth" / "flows.json").read_text())["cohorts"]}
    cohorts = fetch(url, "select flow, entry_date, treated_entrants, holdout_entrants, treated_converters, "
                         "holdout_converters, absolute_lift_ci_lower, absolute_lift_ci_upper, is_window_open "
                         "from marts.fct_flow_kpis where entry_date <= %s order by flow, entry_date",
                    (entry_days[-1],))
    assert cohorts and not any(row[-1] for row in cohorts)
    pooled: dict[str, list[float]] = {}
    covered = measurable = 0
    for flow, entry, n_t, n_h, c_t, c_h, lower, upper, _ in cohorts:
        record = truth.get((flow, entry.isoformat()))
        # every treated entrant was pushed exactly once, and only they were (all held out: no push)
        assert (record["treated"] if record else 0) == n_t, (flow, entry, n_t, record)
        if record is None:
            record = {"true_uplift": 0.0}
        measurable += lower is not None
        covered += lower is not None and float(lower) <= record["true_uplift"] <= float(upper)
        acc = pooled.setdefault(flow, [0, 0, 0, 0, 0.0])
        for i, v in enumerate((n_t, n_h, c_t, c_h, record["true_uplift"] * n_t)):
            acc[i] += v
    pooled["all flows"] = [sum(acc[i] for acc in pooled.values()) for i in range(5)]
    checked = []
    for flow, (n_t, n_h, c_t, c_h, weighted_truth) in sorted(pooled.items()):
        if n_t < 20 or n_h < 5:  # too few for the normal approximation
            print(f"\n{flow}: treated={n_t} holdout={n_h}: too few to check")
            continue
        p_t, p_h = c_t / n_t, c_h / n_h
        se = (p_t * (1 - p_t) / n_t + p_h * (1 - p_h) / n_h) ** 0.5  # Wald on the pooled cohorts (large enough)
        lift, true_uplift = p_t - p_h, weighted_truth / n_t
        print(f"\n{flow}: treated={n_t} holdout={n_h} lift={lift:.3f} 95% CI [{lift - 1.96 * se:.3f}, "
              f"{lift + 1.96 * se:.3f}] truth={true_uplift:.3f}")
        checked.append((flow, lift - 1.96 * se <= true_uplift <= lift + 1.96 * se, lift - 1.96 * se > 0))
    print(f"per cohort: truth inside the 95% interval in {covered} of {measurable} cohorts with both groups "
          f"({len(cohorts)} cohorts)")
    assert checked, pooled
    assert all(inside for _, inside, _ in checked), checked
    assert any(informative for *_, informative in checked), "no interval excludes 0: not informative"
