"""`ecrm.predict`: fit the lifetime-value models and score every customer as of one run date.

Reads the valid orders as of the run date (intermediate.int_orders_as_of, built by dbt), turns
them into the papers' summary per customer in days (a purchase = a distinct day with a valid order;
x = purchase days after the first, t_x = first to last purchase day, T = first purchase day to the
end of the run date, m = mean value of the repeat purchase days), fits BG/NBD and Gamma-Gamma on the
distinct summaries (or reuses the last fit, ECRM_CLV_REFIT_DAYS), and replaces the run date's rows of

- marts.fct_clv_model_fits             one row per fit date and model,
- marts.fct_customer_predictions_daily per customer and snapshot date,
- marts.fct_clv_forecast_daily         the shop's next 30 and 90 days,
- marts.fct_clv_backtest_runs, marts.fct_clv_backtest   with each refit: the models fitted on the
  history before the last ECRM_CLV_BACKTEST_HOLDOUT_DAYS days, their predictions for those days
  against what customers really did (or why there was no backtest),

in one transaction. Nothing here reads the clock: the run date is the argument.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import psycopg

from ..warehouse.migrate import require_migrated
from . import btyd
from .bounds import within_bounds

log = logging.getLogger(__name__)

SUMMARY_SQL = """
with purchase_days as (
    select customer_id, (ordered_at at time zone 'UTC')::date as purchase_day, sum(total_amount) as day_value
    from intermediate.int_orders_as_of
    where is_valid_order and ordered_at < %(as_of_end)s
    group by 1, 2
),
firsts as (
    select customer_id, min(purchase_day) as first_day from purchase_days group by 1
)
select
    p.customer_id,
    count(*) - 1 as x,
    max(p.purchase_day) - f.first_day as t_x,
    %(run_date)s::date + 1 - f.first_day as t,
    coalesce(avg(p.day_value) filter (where p.purchase_day > f.first_day), 0)::float8 as m
from purchase_days as p
inner join firsts as f using (customer_id)
group by p.customer_id, f.first_day
order by p.customer_id
"""


@dataclass(frozen=True)
class PredictSettings:
    refit_days: int = 1              # refit when the last fit is this many days old or more
    monthly_discount: float = 0.01   # CLV discount rate per month
    churn_high_below: float = 0.3    # p_alive below: high churn risk
    churn_medium_below: float = 0.7  # p_alive below: medium
    backtest_holdout_days: int = 28        # the backtest predicts the last N days of the history ...
    backtest_calibration_days: int = 365   # ... from customers who first bought in the N days before them
    backtest_min_calibration_days: int = 56  # fewer days of history before the holdout: skipped (recorded)

    @classmethod
    def from_env(cls) -> PredictSettings:
        env = os.environ
        return cls(int(env.get("ECRM_CLV_REFIT_DAYS", "1")), float(env.get("ECRM_CLV_MONTHLY_DISCOUNT", "0.01")),
                   float(env.get("ECRM_CHURN_HIGH_BELOW", "0.3")), float(env.get("ECRM_CHURN_MEDIUM_BELOW", "0.7")),
                   int(env.get("ECRM_CLV_BACKTEST_HOLDOUT_DAYS", "28")),
                   int(env.get("ECRM_CLV_BACKTEST_CALIBRATION_DAYS", "365")),
                   int(env.get("ECRM_CLV_BACKTEST_MIN_CALIBRATION_DAYS", "56")))


def summary(conn: psycopg.Connection, run_date: date) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """customer ids and x, t_x, T, m (days) of every customer with a valid order by the end of run_date."""
    as_of_end = f"{(run_date + timedelta(days=1)).isoformat()}T00:00:00+00:00"
    ids, rows = [], []
    with conn.cursor() as cur:
        cur.execute(SUMMARY_SQL, {"as_of_end": as_of_end, "run_date": run_date})
        for customer_id, x, t_x, t, m in cur:
            ids.append(customer_id)
            rows.append((x, t_x, t, m))
    data = np.array(rows, dtype=float).reshape(-1, 4)
    return ids, data[:, 0], data[:, 1], data[:, 2], data[:, 3]


def _mean_purchase_day_value(conn: psycopg.Connection, run_date: date) -> float:
    """The mean value of a purchase day (valid orders of a customer on one day, summed) up to run_date."""
    as_of_end = f"{(run_date + timedelta(days=1)).isoformat()}T00:00:00+00:00"
    return float(conn.execute(
        "select coalesce(avg(day_value), 0)::float8 from (select sum(total_amount) as day_value "
        "from intermediate.int_orders_as_of where is_valid_order and ordered_at < %s "
        "group by customer_id, (ordered_at at time zone 'UTC')::date) as days", (as_of_end,)).fetchone()[0])


def _grouped(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, counts = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
    return rows, counts


def _last_fit(conn, run_date: date, refit_days: int) -> tuple[date, dict, dict] | None:
    row = conn.execute(
        "select fit_date, max(parameters::text) filter (where model = 'bgnbd'), "
        "max(parameters::text) filter (where model = 'gamma_gamma') from marts.fct_clv_model_fits "
        "where fit_date <= %s and fit_date > %s and converged group by fit_date order by fit_date desc limit 1",
        (run_date, run_date - timedelta(days=refit_days))).fetchone()
    if row is None or row[1] is None or row[2] is None:
        return None
    return row[0], json.loads(row[1]), json.loads(row[2])


# The Gamma-Gamma fit's fallback when plain maximum likelihood runs off to its bounds (btyd.fit_gamma_gamma;
# on 300 simulated customers without spread of spend: q 1.2e7 -> 66, the mean within 0.1%; tests/test_predict.py).
GG_FALLBACK_PENALIZER = 0.1
# BG/NBD's, when a history too short to show dropout sends b (or a) off to its bound: seen on a test shop's
# first day (b 1.1e7); on 2,000 simulated customers with 1-3 days each, 8 of 8 fallbacks converge
# within the gate's bounds (tests/test_predict.py).
BG_FALLBACK_PENALIZER = 0.1
BACKTEST_TOP_GROUP = 7  # the papers' table: 0, 1, ..., 6 and "7 or more" calibration repeat purchases
BACKTEST_MIN_CUSTOMERS = 100  # fewer customers in the calibration cohort: skipped (a fit on a handful says nothing)

HOLDOUT_SQL = """
select customer_id, count(distinct (ordered_at at time zone 'UTC')::date)
from intermediate.int_orders_as_of
where is_valid_order and ordered_at >= %(start)s and ordered_at < %(end)s
group by 1
"""


def backtest_table(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, actual: np.ndarray, holdout_days: float
                   ) -> tuple[btyd.Fit, list[tuple[int, int, float, float]]]:
    """Fit BG/NBD on the calibration summaries (x, t_x, T), predict each customer's purchases in
    the holdout, and compare with `actual` per number of calibration repeat purchases (0 … 6, 7+):
    the fit and rows (group, customers, mean predicted, mean actual)."""
    rows, counts = _grouped(x, t_x, T)
    fit = btyd.fit_bgnbd(rows[:, 0], rows[:, 1], rows[:, 2], weights=counts)
    params = [fit.parameters[k] for k in ("r", "alpha", "a", "b")]
    rows, index = np.unique(np.stack([x, t_x, T], axis=1), axis=0, return_inverse=True)
    predicted = btyd.expected_purchases(params, holdout_days, rows[:, 0], rows[:, 1], rows[:, 2])[index.reshape(-1)]
    group = np.minimum(x, BACKTEST_TOP_GROUP).astype(int)
    table = [(g, int((group == g).sum()), float(predicted[group == g].mean()), float(actual[group == g].mean()))
             for g in range(BACKTEST_TOP_GROUP + 1) if (group == g).any()]
    return fit, table


def backtest(conn: psycopg.Connection, run_date: date, settings: PredictSettings) -> dict:
    """The backtest of run_date on the warehouse's own history: calibration = the customers whose
    first purchase day lies in the backtest_calibration_days before the holdout, summarised as of
    its last day; holdout = the backtest_holdout_days ending with run_date. Returns what to store
    (status `skipped` with the reason when the history is too short). Orders count with their
    status as of run_date (a later cancellation of a calibration order is known)."""
    holdout = settings.backtest_holdout_days
    calibration_end = run_date - timedelta(days=holdout)
    out = {"snapshot_date": run_date, "holdout_days": holdout, "calibration_end": calibration_end, "rows": []}
    if holdout <= 0:
        return {**out, "status": "skipped", "skipped_reason": "turned off (ECRM_CLV_BACKTEST_HOLDOUT_DAYS=0)",
                "customers": 0}
    ids, x, t_x, T, _ = summary(conn, calibration_end)
    history = int(T.max()) if len(T) else 0  # days from the first purchase day to the end of calibration_end
    if history < settings.backtest_min_calibration_days:
        reason = (f"{history} day(s) of order history before the {holdout}-day holdout; the backtest needs at "
                  f"least {settings.backtest_min_calibration_days} (ECRM_CLV_BACKTEST_MIN_CALIBRATION_DAYS)")
        return {**out, "status": "skipped", "skipped_reason": reason, "customers": 0}
    window = min(history, settings.backtest_calibration_days)
    cohort = T <= window  # first purchase day within the calibration window
    if cohort.sum() < BACKTEST_MIN_CUSTOMERS:
        reason = (f"{int(cohort.sum())} customer(s) first bought in the {window} calibration day(s); the backtest "
                  f"needs at least {BACKTEST_MIN_CUSTOMERS}")
        return {**out, "status": "skipped", "skipped_reason": reason, "customers": 0}
    with conn.cursor() as cur:
        cur.execute(HOLDOUT_SQL, {"start": f"{(calibration_end + timedelta(days=1)).isoformat()}T00:00:00+00:00",
                                  "end": f"{(run_date + timedelta(days=1)).isoformat()}T00:00:00+00:00"})
        later = dict(cur.fetchall())
    actual = np.array([later.get(customer_id, 0) for customer_id in ids], dtype=float)
    fit, table = backtest_table(x[cohort], t_x[cohort], T[cohort], actual[cohort], float(holdout))
    return {**out, "status": "done", "skipped_reason": None, "customers": int(cohort.sum()),
            "calibration_start": calibration_end - timedelta(days=window - 1), "rows": table,
            "parameters": {k: round(v, 8) for k, v in fit.parameters.items()}, "converged": fit.converged}


def _write_backtest(conn: psycopg.Connection, result: dict) -> None:
    day = result["snapshot_date"]
    conn.execute("delete from marts.fct_clv_backtest where snapshot_date = %s", (day,))
    conn.execute("delete from marts.fct_clv_backtest_runs where snapshot_date = %s", (day,))
    conn.execute(
        "insert into marts.fct_clv_backtest_runs (snapshot_date, status, skipped_reason, calibration_start, "
        "calibration_end, holdout_days, customers, parameters, converged) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (day, result["status"], result["skipped_reason"], result.get("calibration_start"),
         result["calibration_end"], result["holdout_days"], result["customers"],
         json.dumps(result["parameters"]) if result.get("parameters") else None, result.get("converged")))
    for group, customers, predicted, actual in result["rows"]:
        conn.execute("insert into marts.fct_clv_backtest values (%s, %s, %s, %s, %s)",
                     (day, group, customers, round(predicted, 6), round(actual, 6)))


def fit_bgnbd_or_fallback(x, t_x, T, weights=None, run_date: date | None = None) -> btyd.Fit:
    """The plain BG/NBD fit, or the penalised one when the plain fit runs off (not converged, or outside the
    gate's bounds): a history too short to show dropout has no finite maximum (a and b run off)."""
    fit = btyd.fit_bgnbd(x, t_x, T, weights=weights)
    if fit.converged and within_bounds("bgnbd", fit.parameters):
        return fit
    log.warning("predict %s: BG/NBD ran off (%s; %s); refitting with penalizer %s", run_date, fit.message,
                {k: f"{v:.3g}" for k, v in fit.parameters.items()}, BG_FALLBACK_PENALIZER)
    return btyd.fit_bgnbd(x, t_x, T, weights=weights, penalizer=BG_FALLBACK_PENALIZER)


def fit_gamma_gamma_or_fallback(x, m, weights=None, run_date: date | None = None) -> btyd.Fit:
    """The plain Gamma-Gamma fit, or the penalised one when it runs off (no spread of spend between customers)."""
    fit = btyd.fit_gamma_gamma(x, m, weights=weights)
    if fit.converged and within_bounds("gamma_gamma", fit.parameters):
        return fit
    log.warning("predict %s: Gamma-Gamma ran off to its bounds (%s); refitting with penalizer %s",
                run_date, fit.message, GG_FALLBACK_PENALIZER)
    return btyd.fit_gamma_gamma(x, m, weights=weights, penalizer=GG_FALLBACK_PENALIZER)


def run(conn: psycopg.Connection, run_date: date, settings: PredictSettings | None = None) -> dict:
    """Fit (or reuse the last fit) and score as of run_date; returns counts and timings."""
    settings = settings or PredictSettings.from_env()
    began = time.perf_counter()
    require_migrated(conn)  # the forecast's tables: migration 0003
    ids, x, t_x, T, m = summary(conn, run_date)
    if not ids:
        log.info("predict %s: no customer with a valid order yet", run_date)
        return {"day": run_date.isoformat(), "customers": 0}
    read_s = time.perf_counter() - began
    fits: list[tuple[btyd.Fit, int, float]] = []
    reused = None if settings.refit_days <= 1 else _last_fit(conn, run_date, settings.refit_days)
    if reused:
        fit_date, bg_params, gg_params = reused
    else:
        fit_date = run_date
        t0 = time.perf_counter()
        rows, counts = _grouped(x, t_x, T)
        bg = fit_bgnbd_or_fallback(rows[:, 0], rows[:, 1], rows[:, 2], counts, run_date)
        fits.append((bg, len(rows), time.perf_counter() - t0))
        t0 = time.perf_counter()
        repeat = x > 0
        gg_rows, gg_counts = _grouped(x[repeat], np.round(m[repeat], 2))
        gg = fit_gamma_gamma_or_fallback(gg_rows[:, 0], gg_rows[:, 1], gg_counts, run_date)
        fits.append((gg, len(gg_rows), time.perf_counter() - t0))
        bg_params, gg_params = bg.parameters, gg.parameters
    # the backtest goes with each refit: it tells whether the fitted model can be trusted
    tested = backtest(conn, run_date, settings) if fits else None
    if tested and tested["status"] == "skipped":
        log.warning("predict %s: backtest skipped: %s", run_date, tested["skipped_reason"])
    fit_s = time.perf_counter() - began - read_s
    bgp = [bg_params[k] for k in ("r", "alpha", "a", "b")]
    ggp = [gg_params[k] for k in ("p", "q", "gamma")]
    population_mean = None
    if ggp[1] <= 1:  # q <= 1: Gamma-Gamma's population mean p gamma / (q - 1) is undefined (few repeat buyers)
        population_mean = _mean_purchase_day_value(conn, run_date)
        log.warning("predict %s: Gamma-Gamma q = %.3g <= 1: order values from the shop's mean purchase day "
                    "(%.2f); the fit stays unconverged for the gate", run_date, ggp[1], population_mean)
    scored = btyd.score(bgp, ggp, x, t_x, T, m, monthly_discount=settings.monthly_discount,
                        population_mean=population_mean)
    alive, value, clv, wait = scored["p_alive"], scored["expected_order_value"], scored["clv_12m"], scored["days_to_next"]
    e30, e90, e365 = (scored[f"expected_orders_{days}d"] for days in (30, 90, 365))
    risk = np.where(alive < settings.churn_high_below, "high",
                    np.where(alive < settings.churn_medium_below, "medium", "low"))
    # defined only for customers more likely alive than not, and within a year (else: no date)
    next_day = [None if not (a >= 0.5 and w == w and w <= 365) else run_date + timedelta(days=math.ceil(w))
                for a, w in zip(alive, wait, strict=True)]
    score_s = time.perf_counter() - began - read_s - fit_s
    with conn.transaction():
        conn.execute("delete from marts.fct_customer_predictions_daily where snapshot_date = %s", (run_date,))
        conn.execute("delete from marts.fct_clv_forecast_daily where snapshot_date = %s", (run_date,))
        if fits:
            conn.execute("delete from marts.fct_clv_model_fits where fit_date = %s", (run_date,))
            for fit, distinct, _ in fits:
                conn.execute(
                    "insert into marts.fct_clv_model_fits (fit_date, model, parameters, time_unit, log_likelihood, "
                    "customers, distinct_summaries, converged, calibration_start, calibration_end, penalizer) "
                    "values (%s, %s, %s, 'days', %s, %s, %s, %s, %s, %s, %s)",
                    (run_date, fit.model, json.dumps({k: round(v, 8) for k, v in fit.parameters.items()}),
                     fit.log_likelihood, fit.customers, distinct, fit.converged,
                     run_date - timedelta(days=int(T.max()) - 1), run_date, fit.penalizer))
        with conn.cursor().copy(
                "copy marts.fct_customer_predictions_daily (snapshot_date, customer_id, repeat_purchases, p_alive, "
                "expected_orders_30d, expected_orders_90d, expected_orders_365d, expected_order_value, clv_12m, "
                "churn_risk, expected_next_order_date, fit_date) from stdin") as copy:
            for i, customer_id in enumerate(ids):
                copy.write_row((run_date, customer_id, int(x[i]), round(float(alive[i]), 6), round(float(e30[i]), 6),
                                round(float(e90[i]), 6), round(float(e365[i]), 6), round(float(value[i]), 4),
                                round(float(clv[i]), 4), str(risk[i]), next_day[i], fit_date))
        if tested:
            _write_backtest(conn, tested)
        for horizon, expected in ((30, e30), (90, e90)):
            total = float(expected.sum())
            # the count of orders is a sum of many small, nearly independent counts: Poisson-like, so a
            # 95% interval of about 1.96 sqrt(mean) (approximate; docs/marts.md)
            spread = 1.96 * math.sqrt(max(total, 0.0))
            conn.execute(
                "insert into marts.fct_clv_forecast_daily values (%s, %s, %s, %s, %s, %s, %s, %s)",
                (run_date, horizon, float(alive.sum()), total, max(total - spread, 0.0), total + spread,
                 float((expected * value).sum()), len(ids)))
    result = {"day": run_date.isoformat(), "customers": len(ids), "refit": bool(fits),
              "fit_date": fit_date.isoformat(), "seconds": {"read": round(read_s, 2), "fit": round(fit_s, 2),
                                                           "score_write": round(time.perf_counter() - began
                                                                                - read_s - fit_s, 2)},
              "score_seconds": round(score_s, 2),
              "fit_seconds": {fit.model: round(seconds, 3) for fit, _, seconds in fits},
              "backtest": None if tested is None else {"status": tested["status"], "customers": tested["customers"],
                                                       "skipped_reason": tested["skipped_reason"]}}
    log.info("predict %s: %d customers, refit %s, %s", run_date, len(ids), bool(fits), result["seconds"])
    return result
