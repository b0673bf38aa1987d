"""nginx/Apache combined-format access logs: parse, flag bots and static assets, pull utm and tokens.

Bots are flagged with the maintained `crawlerdetect` library (its patterns track new crawlers);
results are cached per user agent because a day's log repeats a few thousand agents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import unquote_plus

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from crawlerdetect import CrawlerDetect

from . import Reject, RejectError, RowBlock, reject_code
from .common import (
    MAX_FIELD,
    MAX_LINE,
    LongLine,
    arrow_lines,
    check_ts,
    load_json,
    per_distinct,
    read_blocks,
    split_fast_slow,
    window_reject,
)

# Quoted fields use the "unrolled loop" form [^"\\]*(?:\\.[^"\\]*)*: same language as
# (?:[^"\\]|\\.)* but ~5x faster in Python's backtracking engine.
_QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'
COMBINED = re.compile(
    r'(\S+) \S+ (\S+) \[([^\]]+)\] "(' + _QUOTED + r')" ([0-9]{3}) ([0-9]+|-)'
    r'(?: "(' + _QUOTED + r')" "(' + _QUOTED + r')")?'
)
MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
STATIC_SUFFIXES = (".css", ".js", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".woff", ".woff2",
                   ".webp", ".map", ".ttf")
_detector = CrawlerDetect()


@lru_cache(maxsize=65536)
def is_bot(user_agent: str | None) -> bool:
    if not user_agent:
        return True  # real browsers always send one
    return bool(_detector.isCrawler(user_agent))


@lru_cache(maxsize=4096)
def _offset(text: str) -> timezone:
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[3:5])))


@lru_cache(maxsize=8192)  # a busy day has ~12 requests per second sharing one timestamp
def _log_time_iso(text: str) -> tuple[datetime, str]:
    value = parse_log_time(text)
    return value, value.isoformat()


def parse_log_time(text: str) -> datetime:
    """`01/Oct/2026:13:05:22 +0000`, about 4x faster than strptime; ASCII digits only (int() takes others)."""
    if not text.isascii():
        raise ValueError(f"bad timestamp {text!r}")
    day, month, rest = text.split("/", 2)
    year, hh, mm, ss_zone = rest.split(":", 3)
    ss, zone = ss_zone.split(" ")
    local = datetime(int(year), MONTHS[month], int(day), int(hh), int(mm), int(ss), tzinfo=_offset(zone))
    return local.astimezone(UTC)


def _unescape(text: str | None) -> str | None:
    if text is None or text == "-":
        return None
    return text.replace('\\"', '"').replace("\\\\", "\\") if "\\" in text else text


def parse_line(text: str, interval: tuple[datetime, datetime]) -> tuple | tuple[str, str]:
    """A typed row (without the file columns) or (reason code, reason) when the line is rejected."""
    match = COMBINED.match(text)
    if not match:
        return "malformed", "not a combined-format log line"
    addr, user, stamp, request, status, size, referrer, agent = match.groups()
    try:
        requested_at, requested_at_iso = _log_time_iso(stamp)
    except (ValueError, KeyError, IndexError):  # a month name we don't know, an empty or cut zone
        return "invalid_value", f"bad timestamp {stamp!r}"
    except OverflowError:  # year 1 or 9999 with an offset that moves it out of range
        return "out_of_range", f"timestamp out of range {stamp!r}"
    if not (interval[0] <= requested_at < interval[1]):
        return window_reject("timestamp", requested_at, interval, "weblogs")
    if len(size) > 18:
        return "out_of_range", f"bytes sent out of range for a bigint: {size}"
    if "\\" in request:
        request = _unescape(request) or ""
    parts = request.split(" ")
    if len(parts) == 3:
        method, target, protocol = parts
    elif len(parts) == 1 and parts[0]:
        method, target, protocol = None, parts[0], None  # HTTP/0.9 or a garbage probe
    else:
        method, target, protocol = (parts[0] if parts else None), (parts[1] if len(parts) > 1 else "-"), None
    path, _, query = target.partition("?")
    utm_source = utm_medium = utm_campaign = token = order_id = None
    if query and ("utm_" in query or "ct=" in query or "order=" in query):
        params = query_values(query)
        utm_source, utm_medium, utm_campaign = (params.get("utm_source"), params.get("utm_medium"),
                                                params.get("utm_campaign"))
        token = params.get("ct")
        order_id = params.get("order") if path == "/checkout/complete" else None
    lowered = path.lower()
    agent = _unescape(agent)
    # The timestamp goes out as ISO text (cached per second): what COPY needs, without a str() per row.
    return (
        requested_at_iso, addr, None if user == "-" else user, method, path, query or None, protocol,
        int(status), None if size == "-" else int(size), _unescape(referrer), agent, is_bot(agent),
        lowered.startswith("/static/") or lowered.endswith(STATIC_SUFFIXES),
        utm_source, utm_medium, utm_campaign, token, order_id,
    )


WANTED_PARAMS = frozenset({"utm_source", "utm_medium", "utm_campaign", "ct", "order"})


def query_values(query: str) -> dict[str, str]:
    """The first non-empty value of each wanted parameter, decoded exactly as `parse_qs(query)[name][0]`
    would give it (`&`-separated, `+` is a space, %-escapes, blank values skipped before decoding),
    without decoding the parameters nobody reads: parse_qs of a whole ad-click query (gclid, fbclid,
    long search terms) was 55% of the line parser's time on the realistic benchmark log."""
    found: dict[str, str] = {}
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if not sep or not value:
            continue
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if name in WANTED_PARAMS and name not in found:
            found[name] = unquote_plus(value) if ("%" in value or "+" in value) else value
    return found


JSON_FIELDS = ("time", "remote_addr", "remote_user", "request", "status", "body_bytes_sent", "http_referer",
               "http_user_agent")


def parse_json_line(text: str, interval: tuple[datetime, datetime]) -> tuple | tuple[str, str]:
    """nginx `log_format ... escape=json` lines (see docs/formats.md): same row as parse_line."""
    try:
        obj = load_json(text)
    except RejectError as exc:
        return exc.code, f"JSON log line: {exc}"
    if not isinstance(obj, dict):
        return "malformed", "JSON log line that is not an object"
    missing = [name for name in ("request", "time") if not obj.get(name)]
    if missing:
        return "missing_field", f"JSON log line without {'/'.join(missing)}"
    nested = [name for name in JSON_FIELDS if isinstance(obj.get(name), dict | list)]
    if nested:
        return "not_scalar", f"JSON log field {', '.join(nested)} is an object or array, not a value"
    try:
        requested_at = check_ts(str(obj["time"])).astimezone(UTC)
    except ValueError as exc:
        return reject_code(exc), f"bad timestamp: {exc}"
    except OverflowError:
        return "out_of_range", f"timestamp out of range {str(obj['time'])[:40]!r}"
    status = str(obj.get("status", ""))
    size = str(obj.get("body_bytes_sent", "-")) or "-"
    if not (status.isascii() and status.isdigit() and len(status) == 3) or not (
            (size.isascii() and size.isdigit()) or size == "-"):
        return "invalid_value", f"bad status or size: {status[:20]!r} {size[:20]!r}"
    if not (interval[0] <= requested_at < interval[1]):
        return window_reject("timestamp", requested_at, interval, "weblogs")
    for name in ("remote_addr", "remote_user"):
        if any(c.isspace() for c in str(obj.get(name) or "-")):
            return "invalid_value", f"JSON log field {name} contains white space"
    # Re-use the combined-format path for everything after the fields are split.
    quoted = {k: str(obj.get(k) or "-").replace("\\", "\\\\").replace('"', '\\"') for k in
              ("request", "http_referer", "http_user_agent")}
    line = (f'{obj.get("remote_addr") or "-"} - {obj.get("remote_user") or "-"} '
            f'[{requested_at.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "{quoted["request"]}" {status} {size} '
            f'"{quoted["http_referer"]}" "{quoted["http_user_agent"]}"')
    return parse_line(line, interval)


def parse_access_log(path, interval: tuple[datetime, datetime], extra_columns=None,
                     fast: bool = True) -> Iterator[tuple[int, tuple | Reject] | RowBlock]:
    """Rows of an access log, block by block (~4 MB): the common lines column-wise in C++
    (pyarrow kernels, see _fast_rows), every other line through `_parse_one`."""
    for first, block in read_blocks(path, str(path)):
        if isinstance(block, LongLine):
            yield first, block.reject()
            continue
        lines = arrow_lines(block)
        if lines is None:  # not valid UTF-8 somewhere in the block: line by line
            for offset, raw in enumerate(block.split(b"\n")):
                raw = raw.rstrip(b"\r")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    yield first + offset, Reject("not_utf8", "non-UTF-8 bytes", raw.decode("utf-8", "replace"))
                    continue
                yield first + offset, _parse_one(text, interval)
            continue
        slow = range(len(lines))
        if fast:
            rows, slow = _fast_rows(lines, first, interval)
            if rows is not None:
                yield rows
        for offset, text in zip(slow, lines.take(pa.array(slow, pa.int64())).to_pylist(), strict=True):
            yield first + offset, _parse_one(text, interval)


def _parse_one(text: str, interval) -> tuple | Reject:
    if not text.strip():
        return Reject("empty_line", "empty line", "")
    if len(text) > MAX_LINE:
        return Reject("too_long", f"line of {len(text):,} characters, longer than {MAX_LINE:,}", text)
    parsed = parse_json_line(text, interval) if text.startswith("{") else parse_line(text, interval)
    return Reject(*parsed, text) if len(parsed) == 2 else parsed


# The common shape of a combined-format line (RE2 syntax), stricter than COMBINED so that plain
# splits find the fields: printable ASCII without quote, backslash or brackets in the unquoted
# fields (so str.lower and ascii_lower agree), a timestamp in the one nginx/Apache layout, no
# backslash, tab or carriage return inside quotes (nothing to unescape, nothing to COPY-escape), a
# size that fits a bigint. Any other line is still parsed: by parse_line, one at a time.
_TOKEN = r'[!#-Z^-~]+'
_FAST = (r'^' + _TOKEN + ' ' + _TOKEN + ' ' + _TOKEN +
         r' \[[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}\] '
         r'"' + _TOKEN + r' [!#-Z^-~]* ' + _TOKEN + r'" [0-9]{3} (?:[0-9]{1,18}|-) '
         r'"[^"\\\t\r\x00]*" "[^"\\\t\r\x00]*"')
_STATIC = r"^/static/|\.(?:" + "|".join(s[1:] for s in STATIC_SUFFIXES) + r")$"
_SPECIAL_QUERY = "utm_|ct=|order="
_QUERY_PARAMS = (("utm_source", 13), ("utm_medium", 14), ("utm_campaign", 15), ("ct", 16), ("order", 17))


def _fast_rows(lines: pa.Array, first: int, interval) -> tuple[RowBlock | None, list[int]]:
    """The rows of the lines that match _FAST, computed column-wise, and the offsets of the others.

    Hand-rolled on pyarrow's string kernels because no maintained library parses access logs
    column-wise; splitting on quotes and spaces is ~2x faster than RE2 with capture groups.
    Per-value Python work (timestamp, bot check) runs once per distinct value of the block through
    the same cached functions parse_line uses, so both paths agree by construction (and a test
    compares them line by line). A line whose timestamp is bad or outside the interval, or whose
    utm/token/order query has %- or +-escaped parameter names, or values that decode to characters
    COPY would have to escape, is left to parse_line (it owns the reject reasons).
    """
    # Long lines go to parse_line; the loader checks their fields against the length limits.
    matched = pc.and_(pc.match_substring_regex(lines, _FAST), pc.less_equal(pc.binary_length(lines), MAX_FIELD))
    candidates = np.flatnonzero(matched.to_numpy(zero_copy_only=False))
    if not len(candidates):
        return None, list(range(len(lines)))
    quoted = pc.split_pattern(lines.filter(matched) if len(candidates) < len(lines) else lines, '"')  # head, request, status+size, referrer, " ", agent
    head = pc.split_pattern(pc.list_element(quoted, 0), " ")  # addr, ident, user, [day:time, zone], ""
    stamps = pc.dictionary_encode(pc.binary_join_element_wise(pc.list_element(head, 3), pc.list_element(head, 4), " "))
    iso = pc.take(_stamps_iso(stamps.dictionary, interval), stamps.indices)
    request = pc.split_pattern(pc.list_element(quoted, 1), " ")  # method, target, protocol
    # target + "?" always splits in two: path and query + "?" (query is "" when there was none)
    target = pc.split_pattern(pc.binary_join_element_wise(pc.list_element(request, 1), "?", ""), "?", max_splits=1)
    query = pc.utf8_slice_codeunits(pc.list_element(target, 1), 0, -1)
    special = pc.match_substring_regex(query, _SPECIAL_QUERY)
    keep = iso.is_valid()
    params = None
    if pc.any(special).as_py():
        params, plain = _query_params(query, special, pc.list_element(target, 0))
        keep = pc.and_(keep, plain)
    fast, slow = split_fast_slow(candidates, keep, len(lines))
    if not len(fast):
        return None, slow
    if len(fast) < len(candidates):  # filtering copies: only when some line is left out
        head, iso, query = head.filter(keep), iso.filter(keep), query.filter(keep)
        quoted, request, target = quoted.filter(keep), request.filter(keep), target.filter(keep)
        params = params and {column: values.filter(keep) for column, values in params.items()}
    agent = _dash_null(pc.list_element(quoted, 5))
    bot = per_distinct(agent, lambda a: "t" if is_bot(a) else "f")
    path = pc.list_element(target, 0)
    sizes = pc.split_pattern(pc.list_element(quoted, 2), " ")  # "", status, size, ""
    none = pa.nulls(len(path), pa.string())
    columns = [iso, pc.list_element(head, 0), _dash_null(pc.list_element(head, 2)), pc.list_element(request, 0),
               path, pc.if_else(pc.equal(query, ""), None, query), pc.list_element(request, 2),
               pc.list_element(sizes, 1), _dash_null(pc.list_element(sizes, 2)),
               _dash_null(pc.list_element(quoted, 3)), agent, bot,
               pc.if_else(pc.match_substring_regex(pc.ascii_lower(path), _STATIC), "t", "f"),
               none, none, none, none, none]
    for column, values in (params or {}).items():
        columns[column] = values
    return RowBlock(columns, pa.array(fast + first, pa.int64())), slow


# Every parameter name of the query is plain (no escape to decode), so a regex finds the wanted ones.
_PLAIN_NAMES = r"^[A-Za-z0-9_.~-]*(?:=[^&]*)?(?:&[A-Za-z0-9_.~-]*(?:=[^&]*)?)*$"
_NEEDS_COPY_ESCAPE = "[\t\n\r\\\x00]"


def _query_params(query: pa.Array, special: pa.Array, path: pa.Array) -> tuple[dict[int, pa.Array], pa.Array]:
    """utm parameters, click token and order id of the rows whose query has them, as query_values
    gives them (the first non-empty value, %- and +-decoded once per distinct value), and which rows
    the column-wise path may keep: plain parameter names, values that need no COPY escaping. The
    regexes run on the (few) rows with such a query only."""
    subset = query.filter(special)
    plain_subset = pc.match_substring_regex(subset, _PLAIN_NAMES)
    none = pa.nulls(len(query), pa.string())
    params = {}
    for name, column in _QUERY_PARAMS:
        found = pc.extract_regex(subset, f"(?:^|&){name}=(?P<v>[^&]+)")
        values = pc.if_else(found.is_valid(), found.field("v"), None)
        if pc.any(pc.match_substring_regex(values, "[%+]")).as_py():
            # decoded here rather than sending the lines to parse_line: on the realistic benchmark log
            # (encoded utm values on 7% of the lines) the parse went from 135k to 181k lines/s per core
            values = per_distinct(values, lambda v: None if v is None else unquote_plus(v))
            escape = pc.fill_null(pc.match_substring_regex(values, _NEEDS_COPY_ESCAPE), False)
            plain_subset = pc.and_(plain_subset, pc.invert(escape))
        params[column] = pc.replace_with_mask(none, special, values)
    params[17] = pc.if_else(pc.equal(path, "/checkout/complete"), params[17], None)
    plain = pc.replace_with_mask(pa.array(np.ones(len(query), dtype=bool)), special, plain_subset)
    return params, plain


def _dash_null(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(values, "-"), None, values)


def _stamps_iso(stamps: pa.Array, interval) -> pa.Array:
    """`[01/Oct/2026:13:05:22 +0200]` -> ISO text in UTC, as parse_line's `_log_time_iso` gives
    it; null (the line goes to parse_line) for a timestamp that is invalid or outside the interval.
    Run on a block's distinct timestamps; the round trip through strftime rejects what strptime
    would silently roll over (31 Feb) and month names in another case."""
    local_text = pc.utf8_slice_codeunits(stamps, 1, 21)
    local = pc.strptime(local_text, format="%d/%b/%Y:%H:%M:%S", unit="s", error_is_null=True)
    valid = pc.equal(pc.strftime(local, format="%d/%b/%Y:%H:%M:%S"), local_text)
    sign = pc.if_else(pc.equal(pc.utf8_slice_codeunits(stamps, 22, 23), "-"), -1, 1)
    hours = pc.cast(pc.utf8_slice_codeunits(stamps, 23, 25), pa.int64())
    minutes = pc.cast(pc.utf8_slice_codeunits(stamps, 25, 27), pa.int64())
    offset = pc.multiply(sign, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)))
    utc = pc.subtract(pc.cast(local, pa.int64()), offset)
    start, end = (bound.timestamp() for bound in interval)
    valid = pc.and_kleene(valid, pc.and_(pc.less(pc.abs(offset), 86400),
                                         pc.and_(pc.greater_equal(utc, start), pc.less(utc, end))))
    iso = pc.strftime(pc.cast(utc, pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%S+00:00")
    return pc.if_else(pc.fill_null(valid, False), iso, None)
