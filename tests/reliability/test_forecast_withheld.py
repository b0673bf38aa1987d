"""Issue 26, defect 7: a forecast that cannot be fitted withholds only what depends on it.

A new shop whose every order fell on its first day (no customer has a second purchase day) has a
lifetime-value fit that cannot converge: the `predictions` suite's fits_converged fails. That must not
stop the RFM segments and the other audiences: the gate withholds the forecast (recorded in
ops.quality_results and ops.publish_runs, shown in the report), the forecast's audience
high_value_at_risk is not published from it (an audience published before stays frozen at its last
members), and the safety checks (suppression, consent, holdout) still block everything.
"""

from __future__ import annotations

import csv
import os
import shutil
import uuid
from datetime import date, timedelta

import psycopg
import pytest
from test_quality_gate import DAY1, DAY2, ROOT, assert_blocked

from ecrm.intervals import day_interval

FORECAST_CHECKS = {"fits_converged", "parameters_within_bounds"}


@pytest.fixture(scope="module")
def first_day_shop(warehouse, tmp_path_factory):
    """A shop on its first day through the real pipeline (simulator -> loaders -> dbt + forecast): its
    customers exist, but its order history is empty and its export holds only the day (no overlap with
    the day before), so every order is of day 1: nobody has a second purchase day."""
    from ecrm.pipeline import SOURCES, build_marts, ingest_initial, ingest_interval
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("new-shop")
    env = {"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"), "ECRM_OUTBOX": str(data / "outbox"),
           "ECRM_GX_PROJECT_DIR": str(data / "expectations")}
    shutil.copytree(ROOT / "expectations", data / "expectations", ignore=shutil.ignore_patterns("uncommitted"))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    day = date(2026, 10, 1)
    try:
        url = warehouse.create_database(f"new_shop_{uuid.uuid4().hex[:8]}")
        sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=day,
                            customers=400, seed=23, orders_per_day=250, delivery="weblogs")
        sim.write_initial()
        initial = data / "landing" / "shop" / "initial"
        for name in ("orders.csv", "order_lines.csv"):  # no order before the first day: a new shop
            with (initial / name).open() as handle:
                header = next(csv.reader(handle))
            (initial / name).write_text(",".join(header) + "\n")
        ingest_initial(day, url=url)
        sim.write_day(day)
        _only_orders_placed_on(data / "landing" / "shop" / day.isoformat() / "orders.csv", day)
        for source in SOURCES:
            ingest_interval(source, *day_interval(day), url=url)
        build_marts(*day_interval(day), url=url)
        yield url, day, data
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _only_orders_placed_on(path, day: date) -> None:
    """Drop the export's rows of orders placed before `day` (status updates of a history this shop does
    not have); every other line, malformed ones included, stays as written."""
    lines = path.read_text().splitlines(keepends=True)
    header = next(csv.reader(lines[:1]))
    created = header.index("created_at")
    kept = [lines[0]]
    for line in lines[1:]:
        row = next(csv.reader([line]), [])
        if len(row) == len(header) and row[created][:10] < day.isoformat():
            continue
        kept.append(line)
    path.write_text("".join(kept))


def _withheld_results(conn, day: date) -> dict[str, tuple]:
    return {e: (passed, blocking, withheld) for e, passed, blocking, withheld in conn.execute(
        "select expectation, passed, blocking, withheld from ops.quality_results where run_date = %s "
        "and suite = 'predictions' and withheld is not null", (day,))}


def test_a_first_day_shop_whose_forecast_cannot_converge_publishes_everything_but_the_forecast(
        first_day_shop, monkeypatch):
    from ecrm.pipeline import publish_segments
    from ecrm.report import write_report

    url, day, data = first_day_shop
    for key, value in {"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"),
                       "ECRM_OUTBOX": str(data / "outbox"), "ECRM_GX_PROJECT_DIR": str(data / "expectations")}.items():
        monkeypatch.setenv(key, value)
    with psycopg.connect(url, autocommit=True) as conn:
        repeaters = conn.execute("select count(*) from marts.fct_customer_predictions_daily where snapshot_date = %s "
                                 "and repeat_purchases > 0", (day,)).fetchone()[0]
        unconverged = conn.execute("select count(*) from marts.fct_clv_model_fits where fit_date = %s "
                                   "and not converged", (day,)).fetchone()[0]
        assert repeaters == 0 and unconverged >= 1  # the shop this defect is about

        detail = publish_segments(*day_interval(day), url=url)  # used to raise QualityGateFailed

        results = _withheld_results(conn, day)
        assert "fits_converged" in results and set(results) <= FORECAST_CHECKS | {"not_all_in_one_churn_band"}
        assert set(results.values()) == {(False, False, "forecast")}
        assert conn.execute("select count(*) from ops.quality_results where run_date = %s and blocking "
                            "and not passed", (day,)).fetchone()[0] == 0
        # RFM segments and the other audiences are published; the forecast's audience is not
        assert {d for (d,) in conn.execute("select distinct snapshot_date from published.customer_segments")} == {day}
        audiences = dict(conn.execute("select audience, count(*) from published.audience_members group by 1"))
        built = dict(conn.execute("select audience, count(*) from sync.sync_audience_members group by 1"))
        assert audiences and "high_value_at_risk" not in audiences
        assert audiences == {a: n for a, n in built.items() if a != "high_value_at_risk"}
        withheld = conn.execute("select withheld from ops.publish_runs where as_of_date = %s", (day,)).fetchone()[0]
        assert "predictions.fits_converged" in withheld["forecast"]["checks"]
        assert "fits_converged" in withheld["forecast"]["reason"]
        assert withheld["forecast"]["audiences"] == {"high_value_at_risk": 0}
        assert detail["withheld"]["forecast"]["checks"] == withheld["forecast"]["checks"]
        manifest = data / "outbox" / day.isoformat() / "manifest.json"
        assert manifest.exists() and "high_value_at_risk" not in manifest.read_text()

    written = write_report(day, url, out=data / "reports")
    for part in ("index", "email"):
        html = open(written[part]).read()
        assert 'data-forecast="withheld"' in html and 'data-health="forecast-withheld"' in html
        assert "predictions.fits_converged failed" in html


def test_an_untrusted_forecast_freezes_the_audience_published_before(gate_day2):
    """Day 1 published high_value_at_risk; day 2's fits did not converge: the day's RFM segments and
    audiences are published, high_value_at_risk keeps its day-1 members (minus anyone no longer
    contactable), and the push adds nobody to it."""
    from test_quality_gate import run_day

    url, conn, outbox = gate_day2
    before = set(conn.execute("select customer_id from published.audience_members "
                              "where audience = 'high_value_at_risk'").fetchall())
    assert before
    conn.execute("update marts.fct_clv_model_fits set converged = false where fit_date = %s and model = 'gamma_gamma'",
                 (DAY2,))
    conn.execute("update marts.fct_clv_model_fits set parameters = jsonb_set(parameters, '{alpha}', '1e9') "
                 "where fit_date = %s and model = 'bgnbd'", (DAY2,))

    run_day(url)

    assert set(_withheld_results(conn, DAY2)) == FORECAST_CHECKS
    frozen = set(conn.execute("select customer_id from published.audience_members "
                              "where audience = 'high_value_at_risk' and as_of_date = %s", (DAY2,)).fetchall())
    contactable = set(conn.execute("select customer_id from marts.dim_customers where is_contactable "
                                   "and not is_holdout").fetchall())
    assert frozen == before & contactable and frozen
    others = set(conn.execute("select audience, customer_id from published.audience_members "
                              "where audience <> 'high_value_at_risk'").fetchall())
    assert others == set(conn.execute("select audience, customer_id from sync.sync_audience_members "
                                      "where audience <> 'high_value_at_risk'").fetchall())
    assert {d for (d,) in conn.execute("select distinct snapshot_date from published.customer_segments")} == {DAY2}
    added = conn.execute("select count(*) from mailer.sync_changes c join mailer.sync_runs r using (run_id, audience) "
                         "where r.day = %s and c.audience = 'high_value_at_risk' and c.action in ('add', 'update')",
                         (DAY2,)).fetchone()[0]
    assert added == 0
    kept = conn.execute("select withheld -> 'forecast' -> 'audiences' from ops.publish_runs where as_of_date = %s",
                        (DAY2,)).fetchone()[0]
    assert kept == {"high_value_at_risk": len(frozen)}
    rows = list(csv.DictReader((outbox / DAY2.isoformat() / "high_value_at_risk.csv").read_text().splitlines()))
    assert {(r["customer_id"],) for r in rows} <= before


def test_safety_checks_still_block_everything_when_the_forecast_is_withheld(gate_day2):
    _, conn, _ = gate_day2
    conn.execute("update marts.fct_clv_model_fits set converged = false where fit_date = %s", (DAY2,))
    customer_id, email = conn.execute("select customer_id, email from sync.sync_audience_members "
                                      "where audience <> 'high_value_at_risk' order by customer_id limit 1").fetchone()
    conn.execute("insert into raw.email_events (event_id, event, email, occurred_at, _file, _line, _load_id) "
                 "values ('t26-d7-unsub', 'unsubscribe', %s, %s, 'injected', 1, 0)",
                 (email, day_interval(DAY2)[0] + timedelta(hours=9)))
    assert_blocked(gate_day2, {"audience_members.no_suppressed_member"})
    assert set(_withheld_results(conn, DAY2)) == {"fits_converged"}
    assert conn.execute("select count(*) from ops.publish_runs where as_of_date = %s", (DAY2,)).fetchone()[0] == 0
    assert DAY1 < DAY2 and customer_id
