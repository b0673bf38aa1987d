"""ESP event exports (SendGrid event-webhook JSON lines) and campaign metadata."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from . import FileError, Reject, RejectError, RowBlock, reject_code
from .common import (
    MAX_EMAIL,
    MAX_FIELD,
    LongLine,
    arrow_lines,
    block_text_lines,
    check_email,
    checked_text,
    load_json,
    parse_ts,
    per_distinct,
    read_blocks,
    read_text_lines,
    split_fast_slow,
    window_reject,
)

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


def parse_events(path, interval, extra_columns=None, fast: bool = True):
    """Events of a CSV report line by line; of a JSON-lines export block by block (~4 MB): the common
    lines column-wise in C++ (pyarrow's JSON reader, see _fast_events), every other line through
    _event_line. Both give the same rows and rejects (tests/test_ingest.py compares them)."""
    if ".csv" in path.name or not fast:
        return parse_records(path, interval, _event)
    return _event_blocks(path, interval)


def _event_blocks(path, interval) -> Iterator[tuple[int, tuple | Reject] | RowBlock]:
    for first, block in read_blocks(path, str(path)):
        if isinstance(block, LongLine):
            yield first, block.reject()
            continue
        lines = arrow_lines(block)
        if lines is None:  # not valid UTF-8 somewhere in the block: line by line
            for line_no, text in block_text_lines(first, block):
                yield line_no, text if isinstance(text, Reject) else _event_line(text, interval)
            continue
        rows, slow = _fast_events(lines, first, interval)
        if rows is not None:
            yield rows
        for offset, text in zip(slow, lines.take(pa.array(slow, pa.int64())).to_pylist(), strict=True):
            checked = checked_text(text[1:] if text.startswith("\ufeff") else text)
            yield first + offset, checked if isinstance(checked, Reject) else _event_line(checked, interval)


def _event_line(text: str, interval) -> tuple | Reject:
    """One JSON line as records + parse_records take it: the row, or the line's Reject."""
    try:
        obj = load_json(text)
    except RejectError as exc:
        return Reject(exc.code, str(exc), text)
    if not isinstance(obj, dict):
        return Reject("malformed", "not a JSON object", text)
    try:
        return _event(obj, interval)
    except ValueError as exc:
        return Reject(reject_code(exc), str(exc), text)


# The common shape of an event line: one JSON object (nested values in fields nobody reads, at most
# _MAX_NESTING brackets: json.loads refuses deep nesting, pyarrow does not), no backslash (nothing
# escaped: no lone surrogate, no \u0000, nothing COPY must escape), no control character, and no
# `"sg_machine_open": null` (null and absent differ there; the reader cannot tell them apart).
_OBJECT = r"^\{[^\\\x00-\x1f]*\}$"
_NULL_MACHINE_FLAG = r'"sg_machine_open" *: *null'
_MAX_NESTING = 64
_FIELDS = pa.schema([("sg_event_id", pa.string()), ("event", pa.string()), ("email", pa.string()),
                     ("timestamp", pa.int64()), ("campaign_id", pa.string()), ("customer_id", pa.string()),
                     ("type", pa.string()), ("reason", pa.string()), ("url", pa.string()),
                     ("useragent", pa.string()), ("sg_machine_open", pa.bool_())])
_READ = pj.ParseOptions(explicit_schema=_FIELDS, unexpected_field_behavior="ignore")
_SMALLEST = 8  # lines: a refused range no longer is halved below this; its lines go line by line


def _fast_events(lines: pa.Array, first: int, interval) -> tuple[RowBlock | None, list[int]]:
    """The rows of the flat-object lines, computed column-wise, and the offsets of every other line.

    Hand-rolled on pyarrow's JSON reader (RapidJSON) because Python's json module costs ~9 us a line
    (500k events a day at 1M customers). A value of another type than the usual (a number for a text
    field, a float or text timestamp), a key given twice, or invalid JSON makes the reader refuse the
    lines it was given; those go to _event_line, which owns the reject reasons. So do lines whose
    event, timestamp (also: outside the window) or e-mail the line-by-line checks would refuse.
    """
    matched = pc.and_(pc.and_(pc.match_substring_regex(lines, _OBJECT),
                              pc.invert(pc.match_substring_regex(lines, _NULL_MACHINE_FLAG))),
                      pc.and_(pc.less_equal(pc.binary_length(lines), MAX_FIELD),
                              pc.less_equal(pc.count_substring_regex(lines, r"[\[{]"), _MAX_NESTING)))
    candidates = np.flatnonzero(matched.to_numpy(zero_copy_only=False))
    if not len(candidates):
        return None, list(range(len(lines)))
    table, read = _read_objects(lines.filter(matched) if len(candidates) < len(lines) else lines)
    candidates = candidates[read]
    if table is None:
        return None, list(range(len(lines)))
    event, stamp = table["event"].combine_chunks(), table["timestamp"].combine_chunks()
    email = _emails(table["email"].combine_chunks())
    low, high = (math.ceil(bound.timestamp()) for bound in interval)  # whole seconds: s >= start <=> s >= ceil
    keep = pc.fill_null(pc.and_(
        pc.and_(pc.greater(pc.binary_length(table["sg_event_id"].combine_chunks()), 0),
                pc.is_in(event, pa.array(sorted(EVENTS)))),
        pc.and_(pc.and_(pc.greater_equal(stamp, low), pc.less(stamp, high)), email.is_valid())), False)
    fast, slow = split_fast_slow(candidates, keep, len(lines))
    if not len(fast):
        return None, slow
    table, email, event, stamp = table.filter(keep), email.filter(keep), event.filter(keep), stamp.filter(keep)
    flag, agent = table["sg_machine_open"].combine_chunks(), table["useragent"].combine_chunks()
    machine = pc.if_else(flag.is_valid(), pc.if_else(pc.fill_null(flag, False), "t", "f"),
                         per_distinct(agent, lambda a: "t" if any(m in (a or "") for m in MACHINE_OPEN_AGENTS)
                                      else "f"))
    columns = [table["sg_event_id"].combine_chunks(), event, email,
               pc.strftime(pc.cast(stamp, pa.timestamp("s", tz="UTC")), format="%Y-%m-%d %H:%M:%S+00:00"),
               _text_column(table["campaign_id"]), _text_column(table["customer_id"]),
               pc.if_else(pc.equal(event, "open"), machine, "f"),
               pc.if_else(pc.equal(event, "bounce"),
                          pc.if_else(pc.fill_null(pc.equal(table["type"].combine_chunks(), "blocked"), False),
                                     "soft", "hard"), None),
               _text_column(table["reason"]), _text_column(table["url"])]
    return RowBlock(columns, pa.array(fast + first, pa.int64())), slow


def _read_objects(lines: pa.Array) -> tuple[pa.Table | None, np.ndarray]:
    """pyarrow's JSON reader over `lines` (one object each), and which lines it read. When it refuses
    a range, each of its 16 parts is read again, down to _SMALLEST lines, re-reading at most twice the
    block's lines in all: a few bad lines cost little (27 in a 4 MB block: ~1.9 more reads, 135 lines
    left to the line-by-line path); many cost at most 3 reads and the line-by-line path."""
    read = np.zeros(len(lines), dtype=bool)
    tables: list[pa.Table] = []
    budget = 2 * len(lines)

    def read_range(low: int, high: int) -> None:
        nonlocal budget
        table = _read_json(lines[low:high])
        if table is not None:
            tables.append(table)
            read[low:high] = True
        elif high - low > _SMALLEST and budget >= high - low:
            budget -= high - low
            step = -(-(high - low) // 16)
            for start in range(low, high, step):
                read_range(start, min(start + step, high))

    read_range(0, len(lines))
    return (pa.concat_tables(tables) if tables else None), read


def _read_json(lines: pa.Array) -> pa.Table | None:
    payload = pc.binary_join_element_wise(lines, "", "\n")  # each line and its newline, back to back
    offsets, data = payload.buffers()[1:3]
    bounds = np.frombuffer(offsets, dtype=np.int32)[payload.offset:payload.offset + len(payload) + 1]
    size = int(bounds[-1] - bounds[0])
    try:
        table = pj.read_json(pa.BufferReader(pa.py_buffer(memoryview(data)[bounds[0]:bounds[-1]])),
                             read_options=pj.ReadOptions(use_threads=False, block_size=max(size, 1 << 16)),
                             parse_options=_READ)
    except pa.ArrowInvalid:
        return None
    return table if table.num_rows == len(lines) else None


# check_email's ADDRESS_SHAPE for an ASCII address on a flat-object line: no control character can be
# there, so \s is a space only. Other addresses go through check_email itself, once per distinct one.
_ASCII_ADDRESS = r"^[^@ ]+@[^@ ]+\.[^@ ]+$"


def _emails(values: pa.Array) -> pa.Array:
    """Each address as check_email returns it, or null where check_email would refuse it."""
    ascii_ok = pc.and_(pc.and_(pc.string_is_ascii(values), pc.less_equal(pc.binary_length(values), MAX_EMAIL)),
                       pc.match_substring_regex(values, _ASCII_ADDRESS))
    if pc.all(pc.fill_null(ascii_ok, False)).as_py():
        return values
    return pc.if_else(pc.fill_null(ascii_ok, False), values, per_distinct(values, _checked_email))


def _checked_email(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_email(value)
    except ValueError:
        return None


def _text_column(values: pa.ChunkedArray) -> pa.Array:
    values = values.combine_chunks()
    return pc.if_else(pc.equal(values, ""), None, values)


def parse_campaigns(path, interval, extra_columns=None):
    return parse_records(path, interval, _campaign)
