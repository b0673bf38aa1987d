"""The forecast as the warehouse runs it: fits and predictions of a simulated shop as of a run date,
a rerun that replaces the day, and predictions that rank customers like the simulator's true rates."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import psycopg
import pytest

from ecrm.intervals import day_interval

START = date(2026, 10, 1)
DAYS = 2


@pytest.fixture(scope="module")
def shop(warehouse, tmp_path_factory):
    import os

    from ecrm.pipeline import SOURCES, build_marts, ingest_initial, ingest_interval
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("predict")
    saved = {k: os.environ.get(k) for k in ("ECRM_LANDING", "ECRM_DATA_DIR", "ECRM_OUTBOX")}
    os.environ.update({"ECRM_LANDING": str(data / "landing"), "ECRM_DATA_DIR": str(data),
                       "ECRM_OUTBOX": str(data / "outbox")})
    try:
        url = warehouse.create_database("predict_stage")
        sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                            customers=3000, seed=17)
        sim.write_initial()
        ingest_initial(START, url=url)
        for offset in range(DAYS):
            day = START + timedelta(days=offset)
            sim.write_day(day)
            for source in SOURCES:
                ingest_interval(source, *day_interval(day), url=url)
        last = START + timedelta(days=DAYS - 1)
        build_marts(*day_interval(last), url=url)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return url, sim, last


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks = [np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(float) for v in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def test_a_run_writes_fits_predictions_and_the_shop_forecast(shop):
    from ecrm.predict.stage import run

    url, sim, day = shop
    with psycopg.connect(url, autocommit=True) as conn:
        result = run(conn, day)
        fits = conn.execute("select model, converged, customers, parameters from marts.fct_clv_model_fits "
                            "where fit_date = %s order by model", (day,)).fetchall()
        buyers = conn.execute("select count(distinct customer_id) from intermediate.int_orders_as_of "
                              "where is_valid_order").fetchone()[0]
        stats = conn.execute(
            "select count(*), min(p_alive), max(p_alive), min(expected_orders_30d), min(clv_12m), "
            "bool_and(expected_orders_365d >= expected_orders_90d and expected_orders_90d >= expected_orders_30d), "
            "count(distinct churn_risk) from marts.fct_customer_predictions_daily where snapshot_date = %s",
            (day,)).fetchone()
        forecast = conn.execute("select horizon_days, expected_orders_low <= expected_orders and "
                                "expected_orders <= expected_orders_high, expected_active_customers "
                                "from marts.fct_clv_forecast_daily where snapshot_date = %s order by 1",
                                (day,)).fetchall()
    assert [(m, c) for m, c, *_ in fits] == [("bgnbd", True), ("gamma_gamma", True)]
    assert set(fits[0][3]) == {"r", "alpha", "a", "b"} and set(fits[1][3]) == {"p", "q", "gamma"}
    assert fits[0][2] == buyers == result["customers"] > 1000
    count, p_min, p_max, e_min, clv_min, monotone, bands = stats
    assert count == buyers and 0 <= p_min <= p_max <= 1 and e_min >= 0 and clv_min >= 0 and monotone
    assert bands >= 2, "everyone in one churn-risk band"
    assert [(h, ok) for h, ok, _ in forecast] == [(30, True), (90, True)] and 0 < forecast[0][2] <= buyers


def test_predictions_rank_customers_like_their_true_purchase_rates(shop):
    from ecrm.predict.stage import run
    from ecrm.simulate.population import customer_number

    url, sim, day = shop
    with psycopg.connect(url, autocommit=True) as conn:
        run(conn, day)
        rows = conn.execute("select customer_id, expected_orders_90d from marts.fct_customer_predictions_daily "
                            "where snapshot_date = %s", (day,)).fetchall()
    future = [day + timedelta(days=k) for k in range(1, 91)]
    true_rate = sum(sim.population.daily_prob(d)[: len(sim.population.as_of(day)["raw_rate"])] for d in future)
    numbers = np.array([customer_number(cid) for cid, _ in rows])
    predicted = np.array([e for _, e in rows])
    rho = spearman(predicted, true_rate[numbers - 1])
    print(f"\n[predict] Spearman rank correlation of expected 90-day orders with the simulator's true rates: "
          f"{rho:.3f} over {len(rows)} customers")
    assert rho > 0.5


def test_a_rerun_replaces_the_day_and_a_later_day_reuses_the_fit_when_asked(shop, monkeypatch):
    from ecrm.predict.stage import PredictSettings, run

    url, _, day = shop
    with psycopg.connect(url, autocommit=True) as conn:
        run(conn, day)
        first = conn.execute("select md5(string_agg(t::text, ',' order by customer_id)) from "
                             "marts.fct_customer_predictions_daily t where snapshot_date = %s", (day,)).fetchone()
        run(conn, day)
        again = conn.execute("select md5(string_agg(t::text, ',' order by customer_id)) from "
                             "marts.fct_customer_predictions_daily t where snapshot_date = %s", (day,)).fetchone()
        assert first == again
        later = day + timedelta(days=1)
        result = run(conn, later, PredictSettings(refit_days=7))
        assert result["refit"] is False and result["fit_date"] == day.isoformat()
        assert conn.execute("select count(*) from marts.fct_clv_model_fits where fit_date = %s",
                            (later,)).fetchone()[0] == 0
