"""How often the holdout lift's 95% interval covers the true lift (issue 29, item 6): a first probe.

Simulates many campaigns with a known conversion rate in the holdout and a known true lift, draws the
converters of both groups, and counts how often the interval covers the truth, for the marts' method
(the marts' former method: unpooled Wald, 1.96 standard errors) and for Agresti-Caffo (one success and
one failure added to each group), over three mixes of group sizes. numpy only, a few seconds; the
interval arithmetic is written again here. The calibration check that runs the marts' own SQL is
tests/test_lift_calibration.py; it led the marts to Newcombe's interval (docs/marts.md "Calibration").

    .venv/bin/python benchmarks/lift_coverage.py [--campaigns 4000] [--seed 1]
"""

from __future__ import annotations

import argparse

import numpy as np

MIXES = {  # name: (treated sizes, holdout sizes, holdout conversion, true lift), each [low, high)
    "demo-like (270 treated, 30 held out)": ((250, 300), (27, 33), (0.02, 0.15), (0.0, 0.06)),
    "mixed (100-5,000 treated, 20-600 held out)": ((100, 5000), (20, 600), (0.01, 0.30), (0.0, 0.08)),
    "large (2,000-20,000 treated, 10%)": ((2000, 20000), (200, 2000), (0.02, 0.20), (0.0, 0.05)),
}


def coverage(rng: np.random.Generator, mix: tuple, campaigns: int, agresti_caffo: bool) -> float:
    (t_lo, t_hi), (h_lo, h_hi), (p_lo, p_hi), (l_lo, l_hi) = mix
    n_t, n_h = rng.integers(t_lo, t_hi, campaigns), rng.integers(h_lo, h_hi, campaigns)
    p_h = rng.uniform(p_lo, p_hi, campaigns)
    p_t = np.minimum(p_h + rng.uniform(l_lo, l_hi, campaigns), 1.0)
    x_t, x_h = rng.binomial(n_t, p_t), rng.binomial(n_h, p_h)
    add = 1 if agresti_caffo else 0
    a, b = (x_t + add) / (n_t + 2 * add), (x_h + add) / (n_h + 2 * add)
    se = np.sqrt(a * (1 - a) / (n_t + 2 * add) + b * (1 - b) / (n_h + 2 * add))
    truth = p_t - p_h
    return float(np.mean((a - b - 1.96 * se <= truth) & (truth <= a - b + 1.96 * se)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaigns", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{'mix':<46} {'Wald (before)':>13} {'Agresti-Caffo':>14}   ({args.campaigns:,} campaigns each)")
    for name, mix in MIXES.items():
        wald, ac = coverage(rng, mix, args.campaigns, False), coverage(rng, mix, args.campaigns, True)
        print(f"{name:<46} {wald:>12.1%} {ac:>14.1%}")


if __name__ == "__main__":
    main()
