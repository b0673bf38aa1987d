"""Can the lift intervals be trusted? (issue 29, item 6). Simulated campaigns with a known effect, drawn
customer by customer, go through the marts' own SQL (the dbt macros fct_campaign_kpis, fct_flow_kpis and
fct_discount_campaigns compute their intervals with, compiled by dbt and run on a real PostgreSQL); the
share of 95% intervals that cover the true effect must lie between 92% and 98% in every mix of sizes.

The mixes span what shops run: the demo's ~270 treated vs ~30 held out, mid-size campaigns with a 10-20%
holdout, and rare conversions. Each campaign's members have their own baseline (a beta-distributed
conversion probability, a gamma-distributed order rate) and the truth is the expected difference over
the campaign's audience: mean(p_i + lift) - mean(p_i) for conversion, the mean added orders and net
revenue for a discount code that raises each member's order rate by a known share. 1,000 campaigns per mix keep the coverage's own noise near 0.7 pp.
docs/marts.md "Calibration" reports the figures this prints."""

from __future__ import annotations

import io

import numpy as np
import psycopg
import pytest

from ecrm.transform import run_dbt

CAMPAIGNS = 1000  # per mix; the issue asks for at least 200 in all
LOW, HIGH = 0.92, 0.98
MIXES = {  # treated [lo, hi), holdout [lo, hi), mean baseline conversion [lo, hi), true lift [lo, hi)
    "demo-like: 250-300 treated, 27-33 held out": ((250, 300), (27, 33), (0.02, 0.15), (0.0, 0.06)),
    "mid-size: 300-3,000 treated, 10-20% held out": ((300, 3000), (0.10, 0.20), (0.02, 0.25), (0.0, 0.05)),
    "rare: 800-2,000 treated, 80-200 held out, 0.5-2% baseline": ((800, 2000), (80, 200), (0.005, 0.02),
                                                                    (0.0, 0.01)),
}
ORDER_VALUE = 60.0  # mean net order value of the discount simulation (lognormal, sigma 0.6)


def simulate(rng: np.random.Generator, mix: tuple, first_id: int) -> tuple[list[tuple], dict[int, dict]]:
    """(member rows (campaign_id, arm, converted, orders, net), truth per campaign)."""
    (t_lo, t_hi), holdout, (p_lo, p_hi), (l_lo, l_hi) = mix
    rows, truth = [], {}
    for campaign in range(first_id, first_id + CAMPAIGNS):
        n_t = int(rng.integers(t_lo, t_hi))
        n_h = int(rng.integers(*holdout)) if holdout[0] >= 1 else max(2, round(n_t * rng.uniform(*holdout)))
        n = n_t + n_h
        # conversion: each member's own probability (beta with the campaign's mean), a known additive lift
        mean_p, lift = rng.uniform(p_lo, p_hi), rng.uniform(l_lo, l_hi)
        p = rng.beta(2.0, 2.0 * (1 - mean_p) / mean_p, n)
        treated = np.zeros(n, dtype=bool)
        treated[rng.choice(n, n_t, replace=False)] = True  # the random holdout split
        p_treated = np.minimum(p + lift, 1.0)
        converted = rng.random(n) < np.where(treated, p_treated, p)
        # a discount code: orders are Poisson with a gamma rate per member (mean: the campaign's baseline),
        # the code raises each member's rate by a known share; net revenue is orders x a lognormal value
        rate = rng.gamma(0.5, 2 * mean_p, n)
        uplift = rng.uniform(0.0, 0.6)
        orders = rng.poisson(np.where(treated, rate * (1 + uplift), rate))
        net = np.array([rng.lognormal(np.log(ORDER_VALUE) - 0.18, 0.6, k).sum() for k in orders])
        added = float(np.mean(rate)) * uplift  # expected added orders per customer of the audience
        truth[campaign] = {"lift": float(np.mean(p_treated - p)), "orders": added,
                           "net": added * ORDER_VALUE * n_t}
        rows += [(campaign, "treated" if t else "holdout", bool(c), int(o), round(float(v), 2))
                 for t, c, o, v in zip(treated, converted, orders, net, strict=True)]
    return rows, truth


# The marts' arithmetic: rates as fct_campaign_kpis computes them, then its macros; member sums as
# fct_discount_campaigns computes them, then its macros.
INLINE = """
with

arms as (

    select
        campaign_id,
        count(*) filter (where arm = 'treated') as n_treated,
        count(*) filter (where arm = 'holdout') as n_holdout,
        (count(*) filter (where arm = 'treated' and converted))::numeric
        / nullif(count(*) filter (where arm = 'treated'), 0) as p_treated,
        (count(*) filter (where arm = 'holdout' and converted))::numeric
        / nullif(count(*) filter (where arm = 'holdout'), 0) as p_holdout,
        {%- for figure in ['orders_window', 'net_window'] %}
        {%- for arm in ['treated', 'holdout'] %}
        coalesce(sum({{ figure }}) filter (where arm = '{{ arm }}'), 0) as {{ figure }}_sum_{{ arm }},
        coalesce(sum({{ figure }} ^ 2) filter (where arm = '{{ arm }}'), 0) as {{ figure }}_sumsq_{{ arm }},
        {%- endfor %}
        {%- endfor %}
        0 as unused

    from calibration.members
    group by campaign_id

),

lift as (

    select
        *,
        {{ proportion_lift('p_treated', 'p_holdout', 'n_treated', 'n_holdout') }},
        {{ mean_difference('incremental_orders_per_treated', 'orders_window') }},
        {{ mean_difference('incremental_net_revenue', 'net_window', 'n_treated') }}

    from arms

)

select
    campaign_id,
    {{ proportion_lift_columns() }},
    {{ mean_difference_columns('incremental_orders_per_treated', 'lift') }},
    {{ mean_difference_columns('incremental_net_revenue', 'lift') }}
from lift
order by campaign_id
"""


@pytest.fixture(scope="module")
def calibrated(warehouse):
    """Every mix's campaigns loaded into calibration.members and run through the marts' SQL."""
    url = warehouse.create_database("lift_calibration")
    rng = np.random.default_rng(29)
    mixes, rows = {}, []
    for name, mix in MIXES.items():
        mix_rows, truth = simulate(rng, mix, first_id=len(mixes) * CAMPAIGNS)
        rows += mix_rows
        mixes[name] = truth
    with psycopg.connect(url) as conn:
        conn.execute("create schema calibration")
        conn.execute("create table calibration.members (campaign_id int, arm text, converted boolean, "
                     "orders_window int, net_window numeric(14, 2))")
        buffer = io.StringIO("".join(f"{c}\t{a}\t{v}\t{o}\t{n}\n" for c, a, v, o, n in rows))
        with conn.cursor().copy("copy calibration.members from stdin") as copy:
            copy.write(buffer.getvalue())
    result = run_dbt(["compile", "--inline", INLINE], url)
    sql = result.result.results[0].node.compiled_code
    with psycopg.connect(url) as conn:
        cur = conn.execute(sql)
        names = [d.name for d in cur.description]
        measured = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    return mixes, measured, len(rows)


def _coverage(truth: dict[int, dict], measured: dict[int, dict], key: str, column: str) -> float:
    covered = [float(measured[c][f"{column}_ci_lower"]) <= t[key] <= float(measured[c][f"{column}_ci_upper"])
               for c, t in truth.items()]
    return sum(covered) / len(covered)


@pytest.mark.parametrize(("key", "column"), [("lift", "absolute_lift"),
                                             ("orders", "incremental_orders_per_treated"),
                                             ("net", "incremental_net_revenue")])
def test_95_percent_intervals_cover_the_true_effect_92_to_98_percent_of_the_time(calibrated, key, column):
    mixes, measured, members = calibrated
    coverage = {name: _coverage(truth, measured, key, column) for name, truth in mixes.items()}
    print(f"\n[calibration] {column}: " + "; ".join(f"{name}: {c:.1%}" for name, c in coverage.items())
          + f" ({CAMPAIGNS:,} campaigns each, {members:,} members)")
    assert len(measured) == CAMPAIGNS * len(MIXES) >= 200
    outside = {name: f"{c:.1%}" for name, c in coverage.items() if not LOW <= c <= HIGH}
    assert not outside, f"{column}: the 95% interval's coverage is outside [{LOW:.0%}, {HIGH:.0%}]: {outside}"
