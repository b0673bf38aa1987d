"""The loyalty program's points ledger (CSV with a header row or JSON lines, as loyalty apps export it).

One line per ledger event: `event_id`, `member_id` (the app's member), `customer_id` and/or `email`
(how dbt links the member to the shop's customer), `event_type`, `points`, `order_id`, `tier`,
`occurred_at` (docs/formats.md, "Loyalty ledger"). Apps write points two ways: as the signed change
of the balance (Smile.io's points_change) or as a positive amount whose event says the direction
(LoyaltyLion's redemptions): both load, stored signed. A sign that contradicts the event is
quarantined (`wrong_sign`), never flipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

from . import Reject, RejectError
from .common import check_email, parse_ts, window_reject
from .email import parse_records

EVENT_TYPES = frozenset({"earned", "redeemed", "expired", "adjusted", "tier_changed"})
REQUIRED_COLUMNS = ("event_id", "member_id", "event_type", "occurred_at")
COLUMNS = ("event_id", "member_id", "customer_id", "email", "event_type", "points", "order_id", "tier",
           "occurred_at")
POINTS = re.compile(r"[+-]?[0-9]+")  # ASCII digits only, as everywhere (docs/formats.md "Values")
SCALARS = ("event_id", "member_id", "customer_id", "email", "event_type", "points", "order_id", "tier",
           "occurred_at")


def _text(value, limit: int = 200) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > limit:
        raise RejectError("too_long", f"{text[:20]!r}... is longer than {limit} characters")
    return text or None


def _points(value, event_type: str) -> int:
    """A whole number of points (ASCII digits with an optional sign, or a JSON integer), signed by event."""
    if value is None or str(value).strip() == "":
        if event_type == "tier_changed":
            return 0
        raise RejectError("missing_field", f"missing points of a {event_type} event")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"points {str(value)[:40]!r} is not a whole number")
    text = str(value).strip()
    if not POINTS.fullmatch(text):
        raise ValueError(f"points {text[:40]!r} is not a whole number")
    if len(text.lstrip("+-")) > 9:
        raise RejectError("out_of_range", f"points {text[:40]} out of range (a billion or more)")
    points = int(text)
    if event_type == "earned" and points <= 0:
        raise RejectError("wrong_sign", f"earned {points} points")
    if event_type in ("redeemed", "expired"):
        if points == 0:
            raise RejectError("wrong_sign", f"{event_type} 0 points")
        points = -abs(points)  # a positive amount is how some apps write a deduction
    if event_type == "tier_changed" and points != 0:
        raise RejectError("wrong_sign", f"a tier change with {points} points")
    return points


def _event(obj: dict, interval: tuple[datetime, datetime]) -> tuple:
    nested = [name for name in SCALARS if isinstance(obj.get(name), dict | list)]
    if nested:
        raise RejectError("not_scalar", f"{', '.join(nested)} is a JSON object or array, not a value")
    for name in REQUIRED_COLUMNS:
        if obj.get(name) is None or str(obj.get(name)).strip() == "":
            raise RejectError("missing_field", f"missing {name}")
    event_type = str(obj["event_type"]).strip().lower()
    if event_type not in EVENT_TYPES:
        raise RejectError("unknown_event_type", f"unknown event_type {str(obj['event_type'])[:40]!r}")
    occurred_at = parse_ts(str(obj["occurred_at"]))
    if not (interval[0] <= occurred_at < interval[1]):
        raise RejectError(*window_reject("occurred_at", occurred_at, interval, "loyalty"))
    email = _text(obj.get("email"), 320)
    tier = _text(obj.get("tier"), 60)
    if event_type == "tier_changed" and tier is None:
        raise RejectError("missing_field", "missing tier of a tier_changed event")
    return (_text(obj["event_id"]), _text(obj["member_id"]), _text(obj.get("customer_id")),
            check_email(email) if email else None, event_type, _points(obj.get("points"), event_type),
            _text(obj.get("order_id")), tier, occurred_at)


def parse_events(path, interval, extra_columns=None) -> Iterator[tuple[int, tuple | Reject]]:
    return parse_records(path, interval, _event, REQUIRED_COLUMNS)
