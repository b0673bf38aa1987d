"""ESP event exports (SendGrid event-webhook JSON lines) and campaign metadata."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime

from . import FileError, Reject, RejectError, reject_code
from .common import check_email, load_json, parse_ts, read_text_lines, window_reject

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


# Fields whose value goes into a text column: a nested object or array there is a reject, never repr text.
EVENT_SCALARS = ("sg_event_id", "event", "email", "timestamp", "campaign_id", "customer_id", "type", "reason",
                 "url", "useragent", "sg_machine_open")
CAMPAIGN_SCALARS = ("campaign_id", "name", "sent_at", "audience", "variant", "discount_code")
REQUIRED_EVENT_COLUMNS = ("sg_event_id", "event", "email", "timestamp")  # a CSV report's header must have them


def _scalars(obj: dict, names: tuple[str, ...]) -> None:
    nested = [name for name in names if isinstance(obj.get(name), dict | list)]
    if nested:
        raise RejectError("not_scalar", f"{', '.join(nested)} is a JSON object or array, not a value")


def _text(value) -> str | None:
    return None if value is None or value == "" else str(value)


def _event(obj: dict, interval: tuple[datetime, datetime]) -> tuple:
    _scalars(obj, EVENT_SCALARS)
    event_id = obj.get("sg_event_id")
    if not event_id:
        raise RejectError("missing_field", "missing sg_event_id")
    event = obj.get("event")
    if event not in EVENTS:
        raise ValueError(f"unknown event {str(event)[:40]!r}")
    stamp = obj.get("timestamp")
    if isinstance(stamp, str) and stamp.isascii() and stamp.isdigit():  # CSV reports carry it as text
        if len(stamp) > 18:  # far beyond year 9999 (and int() of 4,300 digits or more raises)
            raise RejectError("out_of_range", f"timestamp of {len(stamp):,} digits out of range")
        stamp = int(stamp)
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        raise ValueError(f"bad timestamp {str(stamp)[:40]!r}")
    try:
        occurred_at = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):  # 1e20, inf, nan: no real event time
        raise RejectError("out_of_range", f"timestamp {str(stamp)[:40]} out of range") from None
    if not (interval[0] <= occurred_at < interval[1]):
        raise RejectError(*window_reject("timestamp", occurred_at, interval, "email"))
    email = check_email(str(obj.get("email", "")))
    bounce_type = None
    if event == "bounce":
        # SendGrid: type "bounce" is a hard bounce, "blocked" a soft one.
        bounce_type = "soft" if obj.get("type") == "blocked" else "hard"
    return (str(event_id), event, email, occurred_at, _text(obj.get("campaign_id")), _text(obj.get("customer_id")),
            is_machine_open(obj) if event == "open" else False, bounce_type,
            _text(obj.get("reason")), _text(obj.get("url")))


def _campaign(obj: dict, interval: tuple[datetime, datetime]) -> tuple:
    _scalars(obj, CAMPAIGN_SCALARS)
    for name in ("campaign_id", "name", "sent_at", "audience"):
        if not obj.get(name):
            raise RejectError("missing_field", f"missing {name}")
    sent_at = parse_ts(str(obj["sent_at"]))
    if not (interval[0] <= sent_at < interval[1]):
        raise RejectError(*window_reject("sent_at", sent_at, interval, "email"))
    # discount_code (optional): the code the campaign's e-mail carries; its holdout gets none
    code = _text(obj.get("discount_code"))
    return (str(obj["campaign_id"]), str(obj["name"]), sent_at, str(obj["audience"]), _text(obj.get("variant")),
            code.strip() or None if code else None)


def records(path, required: tuple[str, ...] = REQUIRED_EVENT_COLUMNS) -> Iterator[tuple[int, str | Reject, dict | Exception]]:
    """(line, text or its Reject, object or parse error) from JSON lines or a CSV report with a header row
    that has the `required` columns (also the loyalty ledger's reader)."""
    if ".csv" in path.name:
        header: list[str] | None = None
        for line_no, text in read_text_lines(path, str(path)):
            if header is None and isinstance(text, Reject) and text.code == "not_utf8":
                raise FileError(str(path), "header row is not UTF-8", line_no)
            if isinstance(text, Reject):
                yield line_no, text, text
                continue
            try:
                fields = next(csv.reader([text], strict=True))
            except csv.Error as exc:
                # Event reports hold no values with line breaks: an open quote is one bad line.
                code = "unbalanced_quote" if "unexpected end of data" in str(exc) else "malformed"
                yield line_no, text, RejectError(code, f"malformed CSV: {exc}")
                continue
            if header is None:
                header = [f.strip() for f in fields]
                missing = [c for c in required if c not in header]
                if missing:  # also what a report without its header row looks like: never eat line 1
                    raise FileError(str(path), f"header row lacks required column(s) {', '.join(missing)} "
                                    "(a file without a header row?)", line_no)
                continue
            if len(fields) != len(header):
                yield line_no, text, RejectError("malformed", f"expected {len(header)} fields, got {len(fields)}")
                continue
            yield line_no, text, dict(zip(header, fields, strict=True))
        if header is None:
            raise FileError(str(path), "empty file: no header row")
        return
    for line_no, text in read_text_lines(path, str(path)):
        if isinstance(text, Reject):
            yield line_no, text, text
            continue
        try:
            obj = load_json(text)
        except RejectError as exc:
            yield line_no, text, exc
            continue
        yield line_no, text, obj if isinstance(obj, dict) else RejectError("malformed", "not a JSON object")


def parse_records(path, interval, convert, required: tuple[str, ...] = REQUIRED_EVENT_COLUMNS
                  ) -> Iterator[tuple[int, tuple | Reject]]:
    """(line, row or Reject) of a JSON-lines or CSV export, each object converted by `convert`."""
    for line_no, text, obj in records(path, required):
        if isinstance(text, Reject):
            yield line_no, text
            continue
        if isinstance(obj, Exception):
            yield line_no, Reject(reject_code(obj), str(obj), text)
            continue
        try:
            row = convert(obj, interval)
        except ValueError as exc:
            yield line_no, Reject(reject_code(exc), str(exc), text)
            continue
        yield line_no, row


def parse_events(path, interval, extra_columns=None):
    return parse_records(path, interval, _event)


def parse_campaigns(path, interval, extra_columns=None):
    return parse_records(path, interval, _campaign)
