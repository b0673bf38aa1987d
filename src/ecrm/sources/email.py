"""ESP event exports (SendGrid event-webhook JSON lines) and campaign metadata."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime

from . import FileError, Reject
from .common import check_email, parse_ts, read_lines

EVENTS = frozenset({"processed", "delivered", "open", "click", "bounce", "unsubscribe", "spamreport",
                    "dropped", "deferred", "group_unsubscribe"})


# When the ESP does not flag machine opens (sg_machine_open), user agents of mail privacy proxies
# that prefetch images give them away; documented in docs/formats.md.
MACHINE_OPEN_AGENTS = ("GoogleImageProxy", "YahooMailProxy", "Apple Mail Privacy", "via ggpht.com")


def is_machine_open(obj: dict) -> bool:
    if "sg_machine_open" in obj:
        flag = obj["sg_machine_open"]
        return flag is True or str(flag).lower() in ("true", "1")
    agent = str(obj.get("useragent") or "")
    return any(marker in agent for marker in MACHINE_OPEN_AGENTS)


def _event(obj: dict, interval: tuple[datetime, datetime]) -> tuple:
    event_id = obj.get("sg_event_id")
    if not event_id:
        raise ValueError("missing sg_event_id")
    event = obj.get("event")
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    stamp = obj.get("timestamp")
    if isinstance(stamp, str) and stamp.isdigit():  # CSV reports carry it as text
        stamp = int(stamp)
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
            is_machine_open(obj) if event == "open" else False, bounce_type,
            obj.get("reason") or None, obj.get("url") or None)


def _campaign(obj: dict, interval: tuple[datetime, datetime]) -> tuple:
    for name in ("campaign_id", "name", "sent_at", "audience"):
        if not obj.get(name):
            raise ValueError(f"missing {name}")
    sent_at = parse_ts(str(obj["sent_at"]))
    if not (interval[0] <= sent_at < interval[1]):
        raise ValueError(f"sent_at {sent_at.isoformat()} outside the load interval")
    return (str(obj["campaign_id"]), str(obj["name"]), sent_at, str(obj["audience"]), obj.get("variant"))


def _records(path) -> Iterator[tuple[int, str | None, bytes, dict | Exception]]:
    """(line, text, raw, object or parse error) from JSON lines or a CSV report with a header row."""
    if ".csv" in path.name:
        header: list[str] | None = None
        for line_no, text, raw in read_lines(path, str(path)):
            if text is None or not text.strip():
                yield line_no, text, raw, ValueError("empty line")
                continue
            fields = next(csv.reader([text]))
            if header is None:
                header = fields
                continue
            if len(fields) != len(header):
                yield line_no, text, raw, ValueError(f"expected {len(header)} fields, got {len(fields)}")
                continue
            yield line_no, text, raw, dict(zip(header, fields, strict=True))
        if header is None:
            raise FileError(str(path), "empty file: no header row")
        return
    for line_no, text, raw in read_lines(path, str(path)):
        if text is None or not text.strip():
            yield line_no, text, raw, ValueError("empty line")
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield line_no, text, raw, ValueError(f"invalid JSON: {exc.msg} at column {exc.colno} (truncated line?)")
            continue
        yield line_no, text, raw, obj if isinstance(obj, dict) else ValueError("not a JSON object")


def _parse_jsonl(path, interval, convert) -> Iterator[tuple[int, tuple | Reject]]:
    for line_no, text, raw, obj in _records(path):
        if text is None:
            yield line_no, Reject("non-UTF-8 bytes", raw.decode("utf-8", "replace"))
            continue
        if isinstance(obj, Exception):
            yield line_no, Reject(str(obj), text)
            continue
        try:
            row = convert(obj, interval)
        except ValueError as exc:
            yield line_no, Reject(str(exc), text)
            continue
        yield line_no, row


def parse_events(path, interval, extra_columns=None):
    return _parse_jsonl(path, interval, _event)


def parse_campaigns(path, interval, extra_columns=None):
    return _parse_jsonl(path, interval, _campaign)
