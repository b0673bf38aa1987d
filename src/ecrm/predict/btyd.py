"""Buy-till-you-die models: BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way")
for repeat buying and dropout, and Gamma-Gamma (Fader & Hardie 2013) for the value of an order.

Written on scipy rather than a library: `lifetimes` is archived and partly broken on pandas 3, and
pymc-marketing's current releases need Python 3.12 (docs/decisions.md). Every function works on
numpy arrays of the customers' summary as the papers define it:

- x:   repeat purchases (distinct purchase days after the first),
- t_x: time from the first to the last purchase day,
- T:   time from the first purchase day to the as-of date,
- m:   mean value of the repeat purchases (Gamma-Gamma, customers with x > 0 only),

in one time unit (the warehouse uses days). Fits maximise the log-likelihood over the distinct
(x, t_x, T) rows weighted by how many customers share them, so a million customers cost what a few
ten thousand distinct summaries cost. The log-likelihoods use gammaln/betaln and logaddexp (the
sums of the papers overflow in floating point otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special


@dataclass(frozen=True)
class Fit:
    model: str                      # bgnbd | gamma_gamma
    parameters: dict[str, float]
    log_likelihood: float
    customers: int
    converged: bool
    message: str
    penalizer: float = 0.0          # L2 penalty on the log-parameters (0: plain maximum likelihood)


# -- BG/NBD ---------------------------------------------------------------------------------------
def bgnbd_log_likelihood(params, x, t_x, T) -> np.ndarray:
    """Per-row log-likelihood of (x, t_x, T) under BG/NBD with params (r, alpha, a, b) (paper eq. 6)."""
    r, alpha, a, b = params
    x, t_x, T = np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float)
    ln_a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    ln_a2 = special.betaln(a, b + x) - special.betaln(a, b)
    ln_a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    # A4 = a / (b + x - 1) * (alpha + t_x)^-(r + x), only for x > 0 (b + x - 1 > 0 there as b > 0)
    ln_a4 = np.where(repeat, np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
                     -np.inf)
    return ln_a1 + ln_a2 + np.logaddexp(ln_a3, ln_a4)


class _Distinct:
    """A column as its distinct values and an index into them: the special functions and logs of the
    likelihood run once per distinct x, t_x or T (a few hundred) instead of once per row. Per
    evaluation over 425k distinct summaries: 0.26 s -> ~0.03 s (benchmarks/bench_predict.py)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values, self.index = np.unique(values, return_inverse=True)

    def __call__(self, f) -> np.ndarray:
        return f(self.values)[self.index]


def _bgnbd_log_likelihood_fast(params, xs: _Distinct, txs: _Distinct, Ts: _Distinct, repeat: np.ndarray,
                               x: np.ndarray) -> np.ndarray:
    """bgnbd_log_likelihood on precomputed distinct values (same result; tested)."""
    r, alpha, a, b = params
    ln_a1_a2 = xs(lambda v: special.gammaln(r + v) - special.gammaln(r) + r * np.log(alpha)
                  + special.betaln(a, b + v) - special.betaln(a, b))
    ln_a3 = -(r + x) * Ts(lambda v: np.log(alpha + v))
    ln_a4 = np.where(repeat, xs(lambda v: np.log(a) - np.log(np.where(v > 0, b + v - 1, 1.0)))
                     - (r + x) * txs(lambda v: np.log(alpha + v)), -np.inf)
    return ln_a1_a2 + np.logaddexp(ln_a3, ln_a4)


def _minimize(negative, initial, n: int):
    """L-BFGS-B over log-parameters with tight tolerances: the papers' CDNOW fits to 3-4 digits in
    ~100 evaluations (a Nelder-Mead polish after it tripled the evaluations and changed no digit)."""
    result = optimize.minimize(negative, initial, method="L-BFGS-B", bounds=[(-12, 12)] * n,
                               options={"ftol": 1e-14, "gtol": 1e-7, "maxiter": 2000})
    if not result.success:  # e.g. ABNORMAL_TERMINATION_IN_LNSRCH on a flat ridge: try the simplex
        polish = optimize.minimize(negative, result.x, method="Nelder-Mead",
                                   options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 4000})
        return polish if polish.fun <= result.fun else result
    return result


def fit_bgnbd(x, t_x, T, weights=None, start=(1.0, 1.0, 1.0, 1.0), penalizer: float = 0.0) -> Fit:
    """Maximum likelihood over log-parameters (keeps them positive). `penalizer` > 0 adds an L2 penalty
    on the log-parameters (alpha's relative to the time scale), like lifetimes' penalizer_coef: for
    histories too short to show dropout, where the plain fit runs off (b to its bound)."""
    x, t_x, T = np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, float)
    scale = float(np.mean(T)) or 1.0  # alpha lives on the time scale: start it there
    xs, txs, Ts, repeat = _Distinct(x), _Distinct(t_x), _Distinct(T), x > 0
    centre = np.log([1.0, scale, 1.0, 1.0])

    def penalty(log_params):
        return penalizer * np.sum((log_params - centre) ** 2)

    def negative(log_params):
        value = -np.sum(w * _bgnbd_log_likelihood_fast(np.exp(log_params), xs, txs, Ts, repeat, x))
        value += penalty(log_params)
        return value if np.isfinite(value) else 1e300

    initial = np.log([start[0], start[1] * scale, start[2], start[3]])
    best = _minimize(negative, initial, 4)
    r, alpha, a, b = np.exp(best.x)
    return Fit("bgnbd", {"r": r, "alpha": alpha, "a": a, "b": b}, -float(best.fun) + float(penalty(best.x)),
               int(w.sum()), bool(best.success) and np.all(np.abs(best.x) < 11.9), str(best.message), penalizer)


def p_alive(params, x, t_x, T) -> np.ndarray:
    """P(the customer is still alive | x, t_x, T) (paper eq. 13)."""
    r, alpha, a, b = params
    x, t_x, T = np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float)
    repeat = x > 0
    ln_odds = np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(repeat, 1.0 / (1.0 + np.exp(np.minimum(ln_odds, 700))), 1.0)


def expected_purchases(params, t, x, t_x, T) -> np.ndarray:
    """E[number of purchases in the next t | x, t_x, T] (paper eq. 10). The Gaussian hypergeometric
    function is evaluated at z = t / (alpha + T + t) < 1, where its series converges."""
    r, alpha, a, b = params
    # At a = 1 both factors of eq. 10 are 0/0 (the limit is finite): a fit that never moved a from its
    # start value 1 gave inf/NaN predictions. Evaluating next to 1 costs ~1e-10 relative accuracy.
    a = a if abs(a - 1) > 1e-6 else 1 + 1e-6
    x, t_x, T = np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float)
    z = t / (alpha + T + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    ln_ratio = (r + x) * (np.log(alpha + T) - np.log(alpha + T + t))
    numerator = (a + b + x - 1) / (a - 1) * (1 - np.exp(ln_ratio) * hyp)
    return numerator * p_alive(params, x, t_x, T)


def expected_days_to_next(params, x, t_x, T) -> np.ndarray:
    """The expected wait for the next purchase if the customer is alive: E[1/lambda | x, T] =
    (alpha + T) / (r + x - 1) (the posterior of lambda is Gamma(r + x, alpha + T)); NaN where it is
    undefined (r + x <= 1)."""
    r, alpha, _, _ = params
    x, T = np.asarray(x, float), np.asarray(T, float)
    shape = r + x - 1
    return np.where(shape > 0, (alpha + T) / np.where(shape > 0, shape, 1.0), np.nan)


# -- Gamma-Gamma ----------------------------------------------------------------------------------
def gamma_gamma_log_likelihood(params, x, m) -> np.ndarray:
    """Per-customer log-likelihood of the mean repeat value m over x > 0 repeat purchases."""
    p, q, gamma = params
    x, m = np.asarray(x, float), np.asarray(m, float)
    return (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * np.log(gamma)
            + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(gamma + m * x))


def fit_gamma_gamma(x, m, weights=None, penalizer: float = 0.0) -> Fit:
    """Maximum likelihood over log-parameters; `penalizer` > 0 adds penalizer * sum(log(p, q, gamma)^2)
    (like lifetimes' penalizer_coef): when customers' average order values hardly differ more than
    their orders do, the likelihood keeps rising as q and gamma grow together (p gamma / (q - 1), the
    mean, stays put) and the plain fit runs off to its bounds; the penalty keeps it finite. The
    log-likelihood reported is the unpenalised one."""
    x, m = np.asarray(x, float), np.asarray(m, float)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    w = (np.ones_like(x) if weights is None else np.asarray(weights, float)[keep])

    def negative(log_params):
        value = -np.sum(w * gamma_gamma_log_likelihood(np.exp(log_params), x, m)) + penalizer * np.sum(log_params ** 2)
        return value if np.isfinite(value) else 1e300

    initial = np.log([1.0, 1.0, float(np.mean(m)) if len(m) else 1.0])
    best = _minimize(negative, initial, 3)
    p, q, gamma = np.exp(best.x)
    log_likelihood = -float(best.fun) + penalizer * float(np.sum(best.x ** 2))
    return Fit("gamma_gamma", {"p": p, "q": q, "gamma": gamma}, log_likelihood, int(w.sum()),
               bool(best.success) and q > 1 and np.all(np.abs(best.x) < 11.9),
               str(best.message), penalizer)


def expected_order_value(params, x, m, population_mean: float | None = None) -> np.ndarray:
    """E[value of an order | x, m] = (p (gamma + x m)) / (p x + q - 1): shrinks each customer's mean
    towards the population's; customers without repeat purchases get the population mean p gamma / (q - 1).

    For q <= 1 that mean is undefined (a fit with no or too few repeat buyers to measure the spread):
    `population_mean` (the caller's observed mean) replaces it, and a customer whose posterior
    denominator is not positive keeps their own mean; without it the prior is NaN, never a
    negative or infinite value."""
    p, q, gamma = params
    x, m = np.asarray(x, float), np.asarray(m, float)
    if population_mean is not None:
        prior = population_mean
    else:
        prior = p * gamma / (q - 1) if q > 1 else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = p * x + q - 1
        posterior = np.where(denominator > 0, p * (gamma + x * np.nan_to_num(m)) / denominator, m)
    return np.where(x > 0, posterior, prior)


def discounted_purchases(bgnbd_params, x, t_x, T, months: int = 12, month_days: float = 30.4375,
                         monthly_discount: float = 0.01) -> np.ndarray:
    """Expected purchases in each of the next `months` months, each discounted by (1 + rate)^month."""
    total = np.zeros_like(np.asarray(x, float))
    before = np.zeros_like(total)
    for month in range(1, months + 1):
        upto = expected_purchases(bgnbd_params, month * month_days, x, t_x, T)
        total += (upto - before) / (1 + monthly_discount) ** month
        before = upto
    return total


def clv(bgnbd_params, gg_params, x, t_x, T, m, months: int = 12, month_days: float = 30.4375,
        monthly_discount: float = 0.01) -> np.ndarray:
    """Discounted value of the next `months` months: expected purchases in each month times the
    expected order value, discounted by (1 + rate)^month (time unit: days)."""
    return (discounted_purchases(bgnbd_params, x, t_x, T, months, month_days, monthly_discount)
            * expected_order_value(gg_params, x, m))


def score(bgnbd_params, gg_params, x, t_x, T, m, monthly_discount: float = 0.01,
          population_mean: float | None = None) -> dict[str, np.ndarray]:
    """Every per-customer prediction of the warehouse, computed once per distinct (x, t_x, T) and
    spread back (1M customers share ~425k summaries: the hypergeometric function runs 15 times per
    distinct summary instead of per customer)."""
    rows, index = np.unique(np.stack([np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float)], axis=1),
                            axis=0, return_inverse=True)
    index = index.reshape(-1)
    ux, utx, uT = rows[:, 0], rows[:, 1], rows[:, 2]
    value = expected_order_value(gg_params, x, m, population_mean)
    out = {"p_alive": p_alive(bgnbd_params, ux, utx, uT)[index]}
    for days in (30, 90, 365):
        out[f"expected_orders_{days}d"] = expected_purchases(bgnbd_params, days, ux, utx, uT)[index]
    out["expected_order_value"] = value
    out["clv_12m"] = discounted_purchases(bgnbd_params, ux, utx, uT, monthly_discount=monthly_discount)[index] * value
    out["days_to_next"] = expected_days_to_next(bgnbd_params, ux, utx, uT)[index]
    return out


# -- simulation (tests, benchmarks) ---------------------------------------------------------------
def simulate_bgnbd(rng: np.random.Generator, n: int, r: float, alpha: float, a: float, b: float,
                   T: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw n customers' (x, t_x, T) from the BG/NBD story: Poisson purchases at rate lambda ~
    Gamma(r, alpha), after each purchase dropout with p ~ Beta(a, b)."""
    x, t_x, T, _ = simulate_bgnbd_holdout(rng, n, r, alpha, a, b, T, 0.0)
    return x, t_x, T


def simulate_bgnbd_holdout(rng: np.random.Generator, n: int, r: float, alpha: float, a: float, b: float,
                           T: float | np.ndarray, holdout: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                           np.ndarray]:
    """simulate_bgnbd over a calibration period of length T, and the purchases the same customers
    make in the `holdout` that follows it (the backtest's truth)."""
    T = np.broadcast_to(np.asarray(T, float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, n)
    drop = rng.beta(a, b, n)
    x, t_x, later = np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, bool)
    now = np.zeros(n)
    while alive.any():
        wait = rng.exponential(1.0 / np.maximum(lam, 1e-12))
        nxt = now + wait
        buys = alive & (nxt <= T + holdout)
        calibration = buys & (nxt <= T)
        x[calibration] += 1
        t_x[calibration] = nxt[calibration]
        later[buys & ~calibration] += 1
        now = np.where(buys, nxt, now)
        alive = buys & (rng.random(n) >= drop)
    return x, t_x, T, later


def simulate_gamma_gamma(rng: np.random.Generator, x: np.ndarray, p: float, q: float, gamma: float) -> np.ndarray:
    """Mean value of x purchases: each ~ Gamma(p, nu), nu ~ Gamma(q, gamma) per customer; 0 where x = 0."""
    nu = rng.gamma(q, 1.0 / gamma, len(x))
    total = rng.gamma(np.maximum(p * x, 1e-9), 1.0 / nu)
    return np.where(x > 0, total / np.maximum(x, 1), 0.0)
