"""The ground truth the warehouse is graded against: the exact expected campaign effect.

The shop model gives every customer a known daily order probability p_d. A delivered recipient
gets p_d + uplift on each of the 7 days from the send day, so the true uplift in the probability
of ordering at least once in those 7 days is, per recipient,
    (1 - prod(1 - p_d - uplift)) - (1 - prod(1 - p_d)),
and 0 for recipients whose email bounced. Averaged over all recipients this is what comparing
recipients with a (randomised) holdout estimates.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np

from . import campaigns as cmp
from .common import add_days, iso, write_atomic
from .population import Population, customer_number
from .shop import render_csv

EFFECT_DAYS = 7
PULL_FORWARD_DAYS = 30   # after a discount campaign's window, its treated recipients buy less for this long
TRUTH_COLUMNS = ("customer_id", "delivered", "p_order_7d_baseline", "p_order_7d_treated")


def effect_days(send_day: date) -> list[date]:
    return [add_days(send_day, k) for k in range(EFFECT_DAYS)]


def campaign_truth(run: cmp.CampaignRun, population: Population, uplift: float) -> tuple[dict, str]:
    """The truth record of a campaign and a per-recipient CSV (expected values, not draws)."""
    c = run.campaign
    probs = [population.daily_prob(d) for d in effect_days(c.send_day)]
    rows, base_all, treated_all = [], [], []
    for r in c.recipients:
        number = customer_number(r.customer_id)
        p = np.array([float(pd[number - 1]) if number and number <= len(pd) else 0.0 for pd in probs])
        eligible = np.array([bool(number) and number <= len(pd) for pd in probs])
        delivered = r.customer_id in run.delivered
        base = 1 - float(np.prod(1 - p))
        treated = 1 - float(np.prod(1 - np.minimum(1.0, p + uplift * eligible))) if delivered else base
        base_all.append(base)
        treated_all.append(treated)
        rows.append([r.customer_id, "true" if delivered else "false", f"{base:.6f}", f"{treated:.6f}"])
    n = len(c.recipients)
    delivered_n = sum(1 for r in c.recipients if r.customer_id in run.delivered)
    effects = np.array(treated_all) - np.array(base_all)
    delivered_mask = np.array([r.customer_id in run.delivered for r in c.recipients])
    record = {
        "campaign_id": c.campaign_id,
        "audience": c.audience,
        "send_day": c.send_day.isoformat(),
        "sent_at": iso(c.sent_ts),
        "recipients": n,
        "delivered": delivered_n,
        "unknown_customers": sum(1 for r in c.recipients if customer_number(r.customer_id) is None),
        "effect_window": {"first_day": c.send_day.isoformat(),
                          "last_day": effect_days(c.send_day)[-1].isoformat()},
        "true_uplift_7d": round(float(effects.mean()) if n else 0.0, 6),
        "true_uplift_7d_delivered": round(float(effects[delivered_mask].mean()) if delivered_n else 0.0, 6),
        "expected_conversion_7d_baseline": round(float(np.mean(base_all)) if n else 0.0, 6),
        "expected_conversion_7d_treated": round(float(np.mean(treated_all)) if n else 0.0, 6),
        "parameters": {
            "daily_uplift": uplift, "effect_days": EFFECT_DAYS, "applies_to": "delivered recipients",
            "hard_bounce": cmp.HARD_BOUNCE, "soft_bounce": cmp.SOFT_BOUNCE, "human_open": cmp.HUMAN_OPEN,
            "machine_open_clients": cmp.MACHINE_OPEN_CLIENTS,
            "click_of_delivered": cmp.HUMAN_OPEN * cmp.CLICK_GIVEN_OPEN,
            "unsubscribe": cmp.UNSUBSCRIBE, "spamreport": cmp.SPAMREPORT,
        },
    }
    return record, render_csv(rows, TRUTH_COLUMNS)


def update_truth(truth: Path, send_day: date, record: dict | None, recipients_csv: str | None) -> None:
    """Upsert the campaign of `send_day` into truth/campaigns.json (sorted, so the file depends
    only on which days were written, not on their order); a rerun without a campaign removes it."""
    path = truth / "campaigns.json"
    campaigns = json.loads(path.read_text()).get("campaigns", []) if path.exists() else []
    stale = [c for c in campaigns if c.get("send_day") == send_day.isoformat()]
    campaigns = [c for c in campaigns if c.get("send_day") != send_day.isoformat()]
    for old in stale:
        if record is None or old["campaign_id"] != record["campaign_id"]:
            (truth / "campaigns" / f"{old['campaign_id']}.csv").unlink(missing_ok=True)
    if record is not None and recipients_csv is not None:
        campaigns.append(record)
        write_atomic(truth / "campaigns" / f"{record['campaign_id']}.csv", recipients_csv.encode())
    if record is None and not stale:
        return
    campaigns.sort(key=lambda c: (c["send_day"], c["campaign_id"]))
    write_atomic(path, (json.dumps({"campaigns": campaigns}, indent=2) + "\n").encode())


def discount_truth(run: cmp.CampaignRun, population: Population, uplift: float, pull_forward: float) -> dict:
    """The truth of a campaign carrying a discount code, in expected orders per delivered recipient
    (each customer draws at most one order a day, so a day's expected orders are its probability):

    - incremental orders in the 7-day window: sum over its days of min(1, p_d + uplift) - p_d
      (uplift = the e-mail's plus the code's daily uplift);
    - pull-forward over the 30 and 60 days after the window: sum of max(0, p_d - pull_forward) - p_d
      over the PULL_FORWARD_DAYS days that have it (negative: orders the code moved into its window).

    What fct_discount_campaigns measures as treated minus holdout. Assumes the recipient is in no
    other campaign's window or pull-forward at the same time (true of the first campaigns of a run)."""
    c = run.campaign
    days = [add_days(c.send_day, k) for k in range(EFFECT_DAYS + 60)]
    probs = [population.daily_prob(d) for d in days]
    delivered = [customer_number(cid) for cid in run.delivered]
    delivered = [n for n in delivered if n]
    window, after30, after60 = [], [], []
    for number in delivered:
        p = np.array([float(pd[number - 1]) if number <= len(pd) else 0.0 for pd in probs])
        eligible = np.array([number <= len(pd) for pd in probs], dtype=float)
        lift = np.minimum(1.0, p + uplift * eligible) - p
        pulled = np.maximum(0.0, p - pull_forward * eligible) - p
        pulled[EFFECT_DAYS + PULL_FORWARD_DAYS:] = 0.0
        window.append(float(lift[:EFFECT_DAYS].sum()))
        after30.append(float(pulled[EFFECT_DAYS:EFFECT_DAYS + 30].sum()))
        after60.append(float(pulled[EFFECT_DAYS:].sum()))
    n = len(delivered)

    def mean(values: list[float]) -> float:
        return round(float(np.mean(values)), 6) if n else 0.0

    return {
        "campaign_id": c.campaign_id, "discount_code": c.discount_code, "percent_off": c.discount_pct,
        "send_day": c.send_day.isoformat(), "delivered": len(run.delivered),
        "true_incremental_orders_per_treated": mean(window),
        "true_incremental_orders": round(float(np.sum(window)), 3),
        "true_pull_forward_orders_per_treated_30d": mean(after30),
        "true_pull_forward_orders_per_treated_60d": mean(after60),
        "parameters": {"daily_uplift": uplift, "effect_days": EFFECT_DAYS, "pull_forward_daily": pull_forward,
                       "pull_forward_days": PULL_FORWARD_DAYS, "applies_to": "delivered recipients",
                       "code_used_on": "every order of a delivered recipient in the window, once delivered"},
    }


def update_discount_truth(truth: Path, send_day: date, record: dict | None) -> None:
    """Upsert the discount campaign of `send_day` into truth/discounts.json (sorted by send day)."""
    path = truth / "discounts.json"
    records = json.loads(path.read_text()).get("discounts", []) if path.exists() else []
    kept = [r for r in records if r.get("send_day") != send_day.isoformat()]
    if record is None and len(kept) == len(records):
        return
    if record is not None:
        kept.append(record)
    kept.sort(key=lambda r: (r["send_day"], r["campaign_id"]))
    write_atomic(path, (json.dumps({"discounts": kept}, indent=2) + "\n").encode())


def update_web_truth(truth: Path, day: date, traffic: dict) -> None:
    """Upsert the sessions the simulator started on UTC `day` into truth/web.json: how many, how many
    bounced (one page view) and how they arrived. The warehouse's sessionizing may join two of a
    visitor's sessions less than 30 minutes apart, so its counts are close to these, not equal."""
    path = truth / "web.json"
    days = json.loads(path.read_text()).get("days", {}) if path.exists() else {}
    if days.get(day.isoformat()) == traffic:
        return
    days[day.isoformat()] = traffic
    write_atomic(path, (json.dumps({"days": dict(sorted(days.items()))}, indent=2) + "\n").encode())
