"""Lifecycle flows: who the warehouse pushed into a flow audience, and the known effect on ordering.

The simulator learns a flow's treated entrants the way an ESP automation would: from the members
the mailer added to a `flow_*` audience on a day (outbox/<day>/changes.csv, action `add`). Each of
them gets `flow_daily_uplift` added to the daily order probability on the FLOW_EFFECT_DAYS days
after that day (the push happens after the day's build, the e-mail arrives overnight), which is
the window fct_flow_kpis measures (seeds/flows.csv measure_days, default 14). The truth of a cohort
(flow audience x entry day) is the mean over its pushed entrants of
    (1 - prod(1 - p_d - uplift)) - (1 - prod(1 - p_d))
over those days: what comparing them with the flow's randomised holdout estimates.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import numpy as np

from .campaigns import FLOW_AUDIENCE_PREFIX
from .common import add_days, write_atomic
from .population import Population, customer_number

FLOW_EFFECT_DAYS = 14


def flow_adds(outbox: Path, day: date) -> dict[str, list[str]]:
    """audience -> customer ids added to a flow audience on `day` (sorted), from changes.csv."""
    path = outbox / day.isoformat() / "changes.csv"
    if not path.is_file():
        return {}
    adds: dict[str, set[str]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            audience = (row.get("audience") or "").strip()
            if row.get("action") == "add" and audience.startswith(FLOW_AUDIENCE_PREFIX) and row.get("customer_id"):
                adds.setdefault(audience, set()).add(row["customer_id"].strip())
    return {a: sorted(ids) for a, ids in sorted(adds.items())}


def changes_fingerprint(outbox: Path, day: date) -> tuple:
    """Identifies a day's changes.csv, so caches notice a rewritten outbox."""
    path = outbox / day.isoformat() / "changes.csv"
    if not path.is_file():
        return ()
    stat = path.stat()
    return (day.isoformat(), stat.st_size, stat.st_mtime_ns)


def effect_days(entry_day: date) -> list[date]:
    return [add_days(entry_day, k) for k in range(1, FLOW_EFFECT_DAYS + 1)]


def cohort_truth(audience: str, entry_day: date, customer_ids: list[str], population: Population,
                 uplift: float) -> dict:
    """The truth record of one cohort: expected 14-day conversion with and without the flow."""
    probs = [population.daily_prob(d) for d in effect_days(entry_day)]
    base_all, treated_all = [], []
    for cid in customer_ids:
        number = customer_number(cid)
        p = np.array([float(pd[number - 1]) if number and number <= len(pd) else 0.0 for pd in probs])
        eligible = np.array([bool(number) and number <= len(pd) for pd in probs])
        base_all.append(1 - float(np.prod(1 - p)))
        treated_all.append(1 - float(np.prod(1 - np.minimum(1.0, p + uplift * eligible))))
    n = len(customer_ids)
    return {
        "audience": audience,
        "flow": audience.removeprefix(FLOW_AUDIENCE_PREFIX),
        "entry_day": entry_day.isoformat(),
        "treated": n,
        "effect_window": {"first_day": effect_days(entry_day)[0].isoformat(),
                          "last_day": effect_days(entry_day)[-1].isoformat()},
        "true_uplift": round(float(np.mean(np.array(treated_all) - np.array(base_all))) if n else 0.0, 6),
        "expected_conversion_baseline": round(float(np.mean(base_all)) if n else 0.0, 6),
        "expected_conversion_treated": round(float(np.mean(treated_all)) if n else 0.0, 6),
        "parameters": {"daily_uplift": uplift, "effect_days": FLOW_EFFECT_DAYS,
                       "applies_to": "members added to the flow audience that day (treated entrants)"},
    }


def update_flow_truth(truth: Path, entry_day: date, records: list[dict]) -> None:
    """Upsert the cohorts of `entry_day` into truth/flows.json (sorted; a rerun replaces them)."""
    path = truth / "flows.json"
    cohorts = json.loads(path.read_text()).get("cohorts", []) if path.exists() else []
    kept = [c for c in cohorts if c.get("entry_day") != entry_day.isoformat()]
    if not records and len(kept) == len(cohorts):
        return
    cohorts = sorted(kept + records, key=lambda c: (c["entry_day"], c["audience"]))
    write_atomic(path, (json.dumps({"cohorts": cohorts}, indent=2) + "\n").encode())
