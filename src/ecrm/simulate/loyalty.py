"""A loyalty program with known rules, and its points ledger export (landing/loyalty/DAY/ledger.csv).

The program launches on the simulation's start day. Its rules (truth/loyalty.json "parameters"):
- a customer joins at their first order from the start on with probability JOIN_SHARE (a stable hash
  of the customer, so reruns agree);
- every order of a member earns 5 points per full currency unit of its total (EARN_PER_UNIT), one
  minute after the order;
- when a member orders holding at least REDEEM_POINTS, they redeem REDEEM_POINTS with probability
  REDEEM_SHARE (a reward worth REDEEM_POINTS x POINT_VALUE), 30 seconds after the order;
- a member's whole balance expires after EXPIRY_DAYS days without a ledger event (at 02:00 UTC of
  the day the period ends);
- tiers Bronze (at joining), Silver and Gold once lifetime earned points reach TIERS' thresholds,
  written as tier_changed events with the earn that crosses them.

The ledger is stateful (balances carry over), so days are written in order: the members' state at
the end of each day is kept in truth/loyalty_state/DAY.json, and a day is written from the state of
the day before (a rerun of a day reads the same state and writes the same file). The app writes
redemptions and expiries as positive amounts, as LoyaltyLion's export does (the loader signs them),
and gives the shop's customer_id for most members, only the e-mail for the others (the warehouse
links those by address).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from .common import SECONDS_PER_DAY, add_days, day_start, hash_unit, iso, write_atomic
from .shop import Order, render_csv

JOIN_SHARE = 0.4
EARN_PER_UNIT = 5           # points per full currency unit of the order total
REDEEM_POINTS = 500
REDEEM_SHARE = 0.5
EXPIRY_DAYS = 60
POINT_VALUE = 0.01          # currency per point (dbt var loyalty_point_value)
TIERS = (("Bronze", 0), ("Silver", 1000), ("Gold", 3000))
EMAIL_ONLY_SHARE = 0.2      # members the export names by e-mail only
COLUMNS = ("event_id", "member_id", "customer_id", "email", "event_type", "points", "order_id", "tier",
           "occurred_at")


@dataclass
class Member:
    email: str
    balance: int = 0
    earned: int = 0
    tier: str = "Bronze"
    last_event_ts: int = 0


def is_member(seed: int, customer_id: str) -> bool:
    return hash_unit(seed, "loyalty", customer_id) < JOIN_SHARE


def _tier(earned: int) -> str:
    return [name for name, threshold in TIERS if earned >= threshold][-1]


def _state_path(truth: Path, day: date) -> Path:
    return truth / "loyalty_state" / f"{day.isoformat()}.json"


def load_state(truth: Path, start: date, day: date) -> dict[str, Member]:
    """The members at the start of `day` (the end of the day before; nobody on the launch day)."""
    if day <= start:
        return {}
    path = _state_path(truth, add_days(day, -1))
    if not path.exists():
        raise ValueError(f"the loyalty ledger of {day} needs the members' state of the day before ({path}): "
                         "write the days in order")
    return {cid: Member(**m) for cid, m in json.loads(path.read_text()).items()}


def ledger_day(seed: int, day: date, state: dict[str, Member],
               orders: list[Order]) -> tuple[list[list[str]], dict[str, Member]]:
    """The day's ledger rows (sorted by time; every event on `day`, UTC) and the members' state at its end."""
    state = {cid: Member(**asdict(m)) for cid, m in state.items()}
    last_second = day_start(day) + SECONDS_PER_DAY - 1
    events: list[tuple[int, list[str]]] = []

    def event(ts: int, kind: str, cid: str, points: int, key: str, order: Order | None = None,
              tier: str = "") -> None:
        ts = min(ts, last_second)  # an order at 23:59:30 still books its points that day
        named = "" if hash_unit(seed, "loyalty-export", cid) < EMAIL_ONLY_SHARE else cid
        events.append((ts, [f"le-{kind[:3]}-{key}", f"m-{cid.removeprefix('c-')}", named, state[cid].email, kind,
                            "" if kind == "tier_changed" else str(points), order.order_id if order else "", tier,
                            iso(ts)]))
        state[cid].last_event_ts = ts

    # expiries first: at 02:00 of the day the inactivity period ends, before the day's orders
    expiry_ts = day_start(day) + 2 * 3600
    for cid, m in sorted(state.items()):
        if m.balance > 0 and m.last_event_ts + EXPIRY_DAYS * SECONDS_PER_DAY <= expiry_ts:
            event(expiry_ts, "expired", cid, m.balance, f"{cid}-{day.isoformat()}")
            m.balance = 0
    for order in sorted(orders, key=lambda o: (o.created_ts, o.order_id)):
        cid = order.customer.customer_id
        if cid not in state:
            if not is_member(seed, cid):
                continue
            state[cid] = Member(email=order.customer.email)
            event(order.created_ts + 59, "tier_changed", cid, 0, order.order_id, order, "Bronze")
        m = state[cid]
        if m.balance >= REDEEM_POINTS and hash_unit(seed, "loyalty-redeem", order.order_id) < REDEEM_SHARE:
            m.balance -= REDEEM_POINTS
            event(order.created_ts + 30, "redeemed", cid, REDEEM_POINTS, order.order_id, order)
        points = order.total // 100 * EARN_PER_UNIT
        if points > 0:
            m.balance += points
            m.earned += points
            event(order.created_ts + 60, "earned", cid, points, order.order_id, order)
            if _tier(m.earned) != m.tier:
                m.tier = _tier(m.earned)
                event(order.created_ts + 61, "tier_changed", cid, 0, f"{order.order_id}-{m.tier}", order, m.tier)
    events.sort(key=lambda e: (e[0], e[1][0]))
    return [row for _, row in events], state


def write_ledger(landing: Path, truth: Path, seed: int, start: date, day: date, orders: list[Order]) -> int:
    """Write the day's ledger file, the members' state at its end and the day's truth; the number of rows."""
    state = load_state(truth, start, day)
    rows, after = ledger_day(seed, day, state, orders)
    write_atomic(landing / "loyalty" / day.isoformat() / "ledger.csv", render_csv(rows, COLUMNS).encode())
    write_atomic(_state_path(truth, day), json.dumps({c: asdict(m) for c, m in sorted(after.items())},
                                                      sort_keys=True).encode())
    _update_truth(truth, day, rows, after)
    return len(rows)


def _update_truth(truth: Path, day: date, rows: list[list[str]], after: dict[str, Member]) -> None:
    """truth/loyalty.json: the program's rules; per day, what its ledger holds (every event of a day's
    file is on that day) and the members at its end; balances and tiers at the end of the last day written."""
    path = truth / "loyalty.json"
    doc = json.loads(path.read_text()) if path.exists() else {"days": {}}
    totals = {kind: sum(int(r[5]) for r in rows if r[4] == kind) for kind in ("earned", "redeemed", "expired")}
    doc["days"][day.isoformat()] = {
        "points_earned": totals["earned"], "points_redeemed": totals["redeemed"], "points_expired": totals["expired"],
        "tier_changes": sum(r[4] == "tier_changed" for r in rows),
        "new_members": sum(r[4] == "tier_changed" and r[7] == "Bronze" for r in rows),
        "members": len(after), "outstanding_points": sum(m.balance for m in after.values())}
    doc["days"] = dict(sorted(doc["days"].items()))
    doc["end_of_last_day"] = {"day": day.isoformat(),
                              "balances": {c: m.balance for c, m in sorted(after.items())},
                              "tiers": {c: m.tier for c, m in sorted(after.items())}}
    doc["parameters"] = {"join_share": JOIN_SHARE, "earn_per_unit": EARN_PER_UNIT, "redeem_points": REDEEM_POINTS,
                         "redeem_share": REDEEM_SHARE, "expiry_days": EXPIRY_DAYS, "point_value": POINT_VALUE,
                         "tiers": dict(TIERS), "email_only_share": EMAIL_ONLY_SHARE}
    write_atomic(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
