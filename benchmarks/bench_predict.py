"""Lifetime-value fit and scoring at shop scale: 1M customers in one run.

    .venv/bin/python benchmarks/bench_predict.py [--customers 1000000]

Customers are drawn from the BG/NBD and Gamma-Gamma models themselves (a real store's parameters,
in days, two years of history, times rounded to whole days as the warehouse counts purchase days).
Printed, each in the same run: the grouped fit the warehouse uses (distinct (x, t_x, T) rows with
counts), the same likelihood fitted over every customer (what `lifetimes` and most hand-written
fits do), the scoring of every customer (P(alive), expected orders 30/90/365 days, expected value,
12-month CLV), and the peak memory. The issue's budget: fit and scoring under 60 s.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from ecrm.predict import btyd

TRUTH = {"r": 0.6, "alpha": 80.0, "a": 0.7, "b": 3.0}      # a real store, in days
VALUE = {"p": 6.0, "q": 4.0, "gamma": 15.0}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--skip-ungrouped", action="store_true", help="skip the fit over every customer")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    n = args.customers
    t0 = time.perf_counter()
    x, t_x, T = btyd.simulate_bgnbd(rng, n, **TRUTH, T=np.floor(rng.uniform(1, 730, n)))
    t_x = np.floor(t_x)
    m = np.round(btyd.simulate_gamma_gamma(rng, x, **VALUE), 2)
    print(f"simulated {n:,} customers in {time.perf_counter() - t0:.1f} s ({int((x > 0).sum()):,} with repeat "
          f"purchases); peak {peak_mb():,.0f} MB")

    t0 = time.perf_counter()
    rows, counts = np.unique(np.stack([x, t_x, T], axis=1), axis=0, return_counts=True)
    bg = btyd.fit_bgnbd(rows[:, 0], rows[:, 1], rows[:, 2], weights=counts)
    repeat = x > 0
    gg_rows, gg_counts = np.unique(np.stack([x[repeat], m[repeat]], axis=1), axis=0, return_counts=True)
    gg = btyd.fit_gamma_gamma(gg_rows[:, 0], gg_rows[:, 1], weights=gg_counts)
    grouped_s = time.perf_counter() - t0
    print(f"grouped fit: {grouped_s:.1f} s over {len(rows):,} distinct (x, t_x, T) and {len(gg_rows):,} (x, m); "
          f"bgnbd {({k: round(v, 3) for k, v in bg.parameters.items()})} converged={bg.converged}; "
          f"gamma_gamma {({k: round(v, 3) for k, v in gg.parameters.items()})} converged={gg.converged}")

    t0 = time.perf_counter()
    bgp, ggp = [bg.parameters[k] for k in ("r", "alpha", "a", "b")], [gg.parameters[k] for k in ("p", "q", "gamma")]
    scored = btyd.score(bgp, ggp, x, t_x, T, m)
    alive, value, clv = scored["p_alive"], scored["expected_order_value"], scored["clv_12m"]
    expected = [scored[f"expected_orders_{days}d"] for days in (30, 90, 365)]
    score_s = time.perf_counter() - t0
    print(f"scoring: {score_s:.1f} s for {n:,} customers (P(alive), 3 horizons, value, 12-month CLV); "
          f"mean p_alive {alive.mean():.3f}, expected orders next 90 days {expected[1].sum():,.0f}, "
          f"mean CLV {clv.mean():.2f}, mean value {value.mean():.2f}")
    print(f"fit + scoring: {grouped_s + score_s:.1f} s (budget 60 s); peak {peak_mb():,.0f} MB")

    if not args.skip_ungrouped:
        t0 = time.perf_counter()
        full = btyd.fit_bgnbd(x, t_x, T)
        full_s = time.perf_counter() - t0
        print(f"BG/NBD over every customer (no grouping): {full_s:.1f} s, log-likelihood {full.log_likelihood:,.1f} "
              f"vs grouped {bg.log_likelihood:,.1f}; grouped is {full_s / max(grouped_s, 1e-9):.1f}x faster "
              "(both fits included in the grouped figure)")


if __name__ == "__main__":
    main()
