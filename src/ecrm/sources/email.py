"""ESP event exports (SendGrid event-webhook JSON lines) and campaign metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

from . import Reject
from .common import check_email, parse_ts, read_lines

EVENTS = frozenset({"processed", "delivered", "open", "click", "bounce", "unsubscribe", "spamreport",
                    "dropped", "deferred", "group_unsubscribe"})


def _event(obj: dict, interval: tuple[datetime, datetime]) -> tuple:
    event_id = obj.get("sg_event_id")
    if not event_id:
        raise ValueError("missing sg_event_id")
    event = obj.get("event")
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    stamp = obj.get("timestamp")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        raise ValueError(f"bad timestamp {stamp!r}")
    occurred_at = datetime.fromtimestamp(stamp, UTC)
    if not (interval[0] <= occurred_at < interval[1]):
        raise ValueError(f"timestamp {occurred_at.isoformat()} outside the load interval")
    email = check_email(str(obj.get("email", "")))
    bounce_type = None
    if event == "bounce":
        # SendGrid: type "bounce" is a hard bounce, "blocked" a soft one.
        bounce_type = "soft" if obj.get("type") == "blocked" else "hard"
    return (str(event_id), event, email, occurred_at, obj.get("campaign_id"), obj.get("customer_id"),
            bool(obj.get("sg_machine_open", False)) if event == "open" else False, bounce_type,
            obj.get("reason"), obj.get("url"))


def _campaign(obj: dict, interval: tuple[datetime, datetime]) -> tuple:
    for name in ("campaign_id", "name", "sent_at", "audience"):
        if not obj.get(name):
            raise ValueError(f"missing {name}")
    sent_at = parse_ts(str(obj["sent_at"]))
    if not (interval[0] <= sent_at < interval[1]):
        raise ValueError(f"sent_at {sent_at.isoformat()} outside the load interval")
    return (str(obj["campaign_id"]), str(obj["name"]), sent_at, str(obj["audience"]), obj.get("variant"))


def _parse_jsonl(path, interval, convert) -> Iterator[tuple[int, tuple | Reject]]:
    seen: set[str] = set()
    for line_no, text, raw in read_lines(path, str(path)):
        if text is None:
            yield line_no, Reject("non-UTF-8 bytes", raw.decode("utf-8", "replace"))
            continue
        if not text.strip():
            yield line_no, Reject("empty line", "")
            continue
        try:
            obj = json.loads(text)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            row = convert(obj, interval)
        except json.JSONDecodeError as exc:
            yield line_no, Reject(f"invalid JSON: {exc.msg} at column {exc.colno} (truncated line?)", text)
            continue
        except ValueError as exc:
            yield line_no, Reject(str(exc), text)
            continue
        if row[0] in seen:
            yield line_no, Reject(f"duplicate id {row[0]} within the file", text)
            continue
        seen.add(row[0])
        yield line_no, row


def parse_events(path, interval, extra_columns=None):
    return _parse_jsonl(path, interval, _event)


def parse_campaigns(path, interval, extra_columns=None):
    return _parse_jsonl(path, interval, _campaign)
