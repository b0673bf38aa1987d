"""Shop export files (CSV, optionally gzip): customers, orders and order lines.

Each row is validated and typed here; the loader COPYs the good rows and quarantines the rest.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import FileError, Reject, RejectError, RowBlock, reject_code
from .common import (
    AMOUNT_RE,
    CURRENCIES,
    MAX_EMAIL,
    MAX_FIELD,
    MAX_LINE,
    LongLine,
    check_amount,
    check_email,
    check_length,
    check_plausible,
    check_ts,
    check_uint,
    load_json,
    parse_amount,
    per_distinct,
    read_blocks,
    read_text_lines,
    split_fast_slow,
    window_reject,
)

ORDER_STATUSES = frozenset({"placed", "paid", "shipped", "cancelled", "refunded"})


@dataclass(frozen=True)
class CsvSpec:
    name: str                      # raw table and file stem
    columns: tuple[str, ...]       # required header, in the raw table's column order
    convert: Callable[[dict[str, str]], tuple]
    timestamp_column: str          # must fall inside the load interval
    key: tuple[str, ...]           # natural key, unique within a file
    plausible: tuple[str, ...] = ()  # timestamps that must lie between 1970 and the run date + 1 day
    optional: tuple[str, ...] = ()   # columns older exports lack: absent from the file = NULL (unknown)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "t", "1", "yes"):
        return True
    if lowered in ("false", "f", "0", "no"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _required(text: str, column: str) -> str:
    if not text.strip():
        raise RejectError("missing_field", f"empty {column}")
    return text.strip()


# Converters take the row's fields in the spec's column order and return the raw table's values.
# Timestamps and amounts are validated here but handed to COPY as text: PostgreSQL parses them
# anyway, and skipping the Python objects keeps the loader near raw COPY speed.
def _customer(r: list[str]) -> tuple:
    customer_id, email, first_name, country, signed_up_at, updated_at, accepts_marketing = r
    check_ts(signed_up_at)
    return (_required(customer_id, "customer_id"), check_email(email), first_name or None, country or None,
            signed_up_at, updated_at, _bool(accepts_marketing))


# Discount code types as Shopify's discount_codes[].type names them; WooCommerce's coupon
# discount_type names map onto them. A legacy single coupon_code has no type (NULL = unknown).
DISCOUNT_TYPES = {"percentage": "percentage", "fixed_amount": "fixed_amount", "shipping": "shipping",
                  "percent": "percentage", "fixed_cart": "fixed_amount", "fixed_product": "fixed_amount"}


def _discount(text: str, column: str) -> str | None:
    """A discount amount: empty = unknown (NULL, never 0); negative = negative_discount."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("-") and text[1:].replace(".", "", 1).isdigit():
        raise RejectError("negative_discount", f"negative {column}: {text}")
    return check_amount(text)


def _code_amount(value, code: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"discount code {code!r}: amount is not a number")
    text = value if isinstance(value, str) else json.dumps(value)
    if text.strip().startswith("-"):
        raise RejectError("negative_discount", f"discount code {code!r}: negative amount {text}")
    amount = parse_amount(text.strip())
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"discount code {code!r}: more than two decimals: {text}")
    return amount


def parse_discount_codes(text: str) -> list[tuple[str, str, Decimal]]:
    """The order's codes as [(code, type, amount)] from Shopify's `discount_codes` shape, a JSON array of
    {"code", "amount", "type"} (WooCommerce's coupon_lines {"code", "discount", "discount_type"} too)."""
    value = load_json(text) if isinstance(text, str) else text
    if not isinstance(value, list):
        raise RejectError("invalid_value", "discount_codes is not a JSON array of {code, amount, type}")
    codes, seen = [], set()
    for item in value:
        if not isinstance(item, dict):
            raise RejectError("invalid_value", "discount_codes holds something other than {code, amount, type}")
        code = item.get("code")
        if not isinstance(code, str) or not code.strip():
            raise RejectError("missing_field", "a discount code without its code")
        code = code.strip()
        check_length(code, "discount code", 255)
        if code in seen:
            raise ValueError(f"discount code {code!r} twice in one order")
        seen.add(code)
        kind = item.get("type", item.get("discount_type"))
        if kind is None or kind == "":
            raise RejectError("missing_field", f"discount code {code!r} without its type")
        if not isinstance(kind, str) or kind.strip().lower() not in DISCOUNT_TYPES:
            raise RejectError("unknown_discount_type", f"discount code {code!r}: unknown type {str(kind)[:40]!r}")
        amount = item.get("amount", item.get("discount"))
        if amount is None or amount == "":
            raise RejectError("missing_field", f"discount code {code!r} without its amount")
        codes.append((code, DISCOUNT_TYPES[kind.strip().lower()], _code_amount(amount, code)))
    return codes


def _codes_json(codes: list[tuple[str, str, Decimal]]) -> str:
    return json.dumps([{"code": c, "type": t, "amount": str(a.quantize(Decimal("0.01")))} for c, t, a in codes],
                      ensure_ascii=False, separators=(",", ":"))


def _order(r: list[str]) -> tuple:
    (order_id, customer_id, email, created_at, updated_at, status, currency, total, discount, coupon, codes) = r
    status = status.strip().lower()
    if status not in ORDER_STATUSES:
        raise ValueError(f"unknown status: {r[5]!r}")
    currency = currency.strip().upper()
    if currency not in CURRENCIES:
        raise ValueError(f"unknown currency: {r[6]!r}")
    check_ts(created_at)
    total = check_amount(total)
    discount = _discount(discount, "discount_amount")
    codes_json = None
    if codes.strip():
        parsed = parse_discount_codes(codes)
        taken_off = sum((a for _, t, a in parsed if t != "shipping"), Decimal(0))
        # The order's value before discount is total + discount: codes cannot take off more than that.
        if discount is not None and taken_off > Decimal(total) + Decimal(discount):
            raise RejectError("discount_above_total", f"discount codes take off {taken_off}, more than the "
                              f"order's {Decimal(total) + Decimal(discount)} before discount")
        codes_json = _codes_json(parsed) if parsed else None
    return (_required(order_id, "order_id"), _required(customer_id, "customer_id"), check_email(email),
            created_at, updated_at, status, currency, total, discount, coupon.strip() or None, codes_json)


def _order_line(r: list[str]) -> tuple:
    order_id, line_number, product_id, product_name, category, quantity, unit_price, discount, updated_at = r
    # Integers are checked here and handed to COPY as the validated text (no int() round trip).
    quantity, unit_price = check_uint(quantity, "quantity", positive=True), check_amount(unit_price)
    discount = _discount(discount, "discount_amount")
    if discount is not None and Decimal(discount) > int(quantity) * Decimal(unit_price):
        raise RejectError("discount_above_total", f"line discount {discount} above quantity x unit price "
                          f"({quantity} x {unit_price})")
    return (_required(order_id, "order_id"), check_uint(line_number, "line_number"), _required(product_id, "product_id"),
            product_name, _required(category, "category"), quantity, unit_price, discount, updated_at)


SPECS = {
    "customers": CsvSpec("customers", ("customer_id", "email", "first_name", "country", "signed_up_at",
                                       "updated_at", "accepts_marketing"), _customer, "updated_at",
                         ("customer_id",), ("signed_up_at",)),
    "orders": CsvSpec("orders", ("order_id", "customer_id", "email", "created_at", "updated_at", "status",
                                 "currency", "total_amount", "discount_amount", "coupon_code", "discount_codes"),
                      _order, "updated_at", ("order_id",), ("created_at",),
                      optional=("discount_amount", "coupon_code", "discount_codes")),
    "order_lines": CsvSpec("order_lines", ("order_id", "line_number", "product_id", "product_name", "category",
                                           "quantity", "unit_price", "discount_amount", "updated_at"),
                           _order_line, "updated_at", ("order_id", "line_number"), optional=("discount_amount",)),
}


def _json_text(value, column: str) -> str:
    if value is None:
        return ""
    if column == "discount_codes" and isinstance(value, list):  # the array itself, as Shopify's API has it
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise RejectError("not_scalar", f"{column} is a JSON {type(value).__name__}, not a value")
    return str(value)


def _bounds(spec: CsvSpec, ordered: list[str], interval) -> tuple[str, str] | None:
    """(code, reason) when the row's own timestamp or a plausible-date column is out of bounds."""
    start, end = interval
    try:
        for column in spec.plausible:
            check_plausible(check_ts(ordered[spec.columns.index(column)]), column, end)
        stamp = check_ts(ordered[spec.columns.index(spec.timestamp_column)])
    except ValueError as exc:
        return reject_code(exc), str(exc)
    if not (start <= stamp < end):
        return window_reject(spec.timestamp_column, stamp, interval, "shop")
    return None


def parse_shop_file(spec: CsvSpec, path, interval: tuple[datetime, datetime],
                    extra_columns: list[str] | None = None, fast: bool = True) -> Iterator:
    """CSV or JSON lines (by extension, optionally .gz): the same columns, checks and rejects.
    `fast=False` yields only (line, row | Reject), never RowBlocks."""
    if ".jsonl" in path.name or ".ndjson" in path.name:
        return parse_jsonl(spec, path, interval, extra_columns)
    return parse_csv(spec, path, interval, extra_columns, fast)


def parse_jsonl(spec: CsvSpec, path, interval, extra_columns=None) -> Iterator[tuple[int, tuple | Reject]]:
    drift_checked = False
    for line_no, text in read_text_lines(path, str(path)):
        if isinstance(text, Reject):
            yield line_no, text
            continue
        try:
            obj = load_json(text)
        except RejectError as exc:
            yield line_no, Reject(exc.code, str(exc), text)
            continue
        if not isinstance(obj, dict):
            yield line_no, Reject("malformed", "not a JSON object", text)
            continue
        missing = [c for c in spec.columns if c not in obj and c not in spec.optional]
        if missing:
            if not drift_checked:  # the first record decides: a whole-file schema change is an error
                raise FileError(str(path), f"schema drift: missing key(s) {', '.join(missing)}", line_no)
            yield line_no, Reject("missing_field", f"missing key(s) {', '.join(missing)}", text)
            continue
        if not drift_checked and extra_columns is not None:
            extra_columns.extend(k for k in obj if k not in spec.columns)
        drift_checked = True
        try:
            ordered = [_json_text(obj.get(c), c) for c in spec.columns]
            row = spec.convert(ordered)
        except ValueError as exc:
            yield line_no, Reject(reject_code(exc), str(exc), text)
            continue
        bad = _bounds(spec, ordered, interval)
        yield line_no, (Reject(*bad, text) if bad else row)


def parse_csv(spec: CsvSpec, path, interval: tuple[datetime, datetime],
              extra_columns: list[str] | None = None, fast: bool = True) -> Iterator[tuple[int, tuple | Reject] | RowBlock]:
    """Yield (line, typed row | Reject) or RowBlocks. Header problems raise FileError (schema drift).

    Lines are read in ~4 MB blocks. Lines that look like a plain row of this file (no quotes) are
    checked column-wise (see _FastRows, unless `fast=False`); any other line goes through `_RowCheck`
    with the csv module. Every physical line is accounted for: a line whose quotes open a value
    that goes on in the next lines is one record with them only when the value closes within
    MAX_RECORD_LINES lines and MAX_LINE characters and makes a row of the header's width (see
    `_Records.assemble`); otherwise that line alone is `unbalanced_quote` and reading resumes at the
    next line (the csv module alone would read the rest of the file as one value).
    """
    blocks = read_blocks(path, str(path))
    first_block = next(blocks, None)
    if first_block is not None and isinstance(first_block[1], LongLine):
        raise FileError(str(path), f"unreadable header: a first line of {first_block[1].size:,} bytes", 1)
    if first_block is None or not first_block[1].strip():
        raise FileError(str(path), "empty file: no header row")
    header_bytes, newline, rest = first_block[1].partition(b"\n")
    try:
        header = next(csv.reader([header_bytes.decode("utf-8").rstrip("\r")], strict=True))
    except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
        raise FileError(str(path), f"unreadable header: {exc}", 1) from None
    check = _RowCheck(spec, [h.strip().lstrip("\ufeff") for h in header], interval, str(path))
    if extra_columns is not None:
        extra_columns.extend(c for c in check.header if c not in spec.columns)
    records = _Records(check, _FastRows(spec, check, interval) if fast else None)
    for first, block in itertools.chain([(2, rest)] if newline else [], blocks):
        if isinstance(block, LongLine):  # no value can run through it: decide what is pending first
            yield from records.flush()
            yield first, block.reject()
        else:
            yield from records.feed(first, block)
    yield from records.flush()


MAX_RECORD_LINES = 100  # lines one quoted CSV value may span (a product name or address with line breaks)


class _Records:
    """The lines of a CSV file, block by block, as records: runs of lines without an odd number of
    quotes go line by line (column-wise when they can), a line with an odd number is assembled with
    the lines its quoted value spans. A record still open at the end of a block waits (at most
    MAX_LINE characters) for the next block."""

    def __init__(self, check: _RowCheck, fast_rows: _FastRows | None) -> None:
        self.check, self.fast_rows = check, fast_rows
        self.carry: tuple[int, bytes] | None = None  # (first line, lines of a record still open)

    def flush(self) -> Iterator:
        if self.carry is not None:
            first, block = self.carry
            self.carry = None
            yield from self.feed(first, block, final=True)

    def feed(self, first: int, block: bytes, final: bool = False) -> Iterator:
        if self.carry is not None:
            first, block = self.carry[0], self.carry[1] + b"\n" + block
            self.carry = None
        lines, bad = _decode_lines(block)
        odd = np.flatnonzero(pc.bit_wise_and(pc.count_substring(lines, '"'), 1).to_numpy(zero_copy_only=False))
        position = 0
        for start in [*odd.tolist(), len(lines)]:
            if start < position:  # inside a record assembled already
                continue
            if start > position:
                yield from self.plain(lines.slice(position, start - position), first + position,
                                      {b - position for b in bad if position <= b < start})
            if start == len(lines):
                return
            if start in bad:
                yield first + start, Reject("not_utf8", "non-UTF-8 bytes", lines[start].as_py())
                position = start + 1
                continue
            following = lines.slice(start, MAX_RECORD_LINES).to_pylist()
            blocked = [k for k in range(len(following)) if start + k in bad][:1]
            decided = self.assemble(following[:blocked[0]] if blocked else following, first + start,
                                    final or bool(blocked) or start + MAX_RECORD_LINES <= len(lines))
            if decided is None:  # the value may close in the next block
                self.carry = (first + start, block.split(b"\n", start)[-1])
                return
            count, item = decided
            yield item
            position = start + count

    def plain(self, lines: pa.Array, first: int, bad: set[int]) -> Iterator:
        """Lines that open no value spanning lines: column-wise where they can, else one by one."""
        slow: list[int] | range = range(len(lines))
        if self.fast_rows is not None:
            rows, slow = self.fast_rows(lines, first, bad)
            if rows is not None:
                yield rows
        for offset, text in zip(slow, lines.take(pa.array(slow, pa.int64())).to_pylist(), strict=True):
            yield first + offset, (Reject("not_utf8", "non-UTF-8 bytes", text) if offset in bad
                                   else self.check.line(text.rstrip("\r"), first + offset))

    def assemble(self, lines: list[str], line_no: int, complete: bool) -> tuple[int, tuple] | None:
        """(physical lines used, (line_no, row | Reject)) for the record starting with lines[0], a
        line with an odd number of quotes; None when it may close in lines not read yet.

        A quoted value may go on in the next lines (RFC 4180; shops export product names with line
        breaks), but a stray quote must not swallow the rest of the file: the lines make one record
        only if the value closes within MAX_RECORD_LINES lines and MAX_LINE characters, no line it
        takes in looks like a whole row on its own, and the result has the header's width. Otherwise
        the first line alone is quarantined as unbalanced_quote and reading resumes at the next line.
        """
        text = lines[0].rstrip("\r")
        single = self.check.line(text, line_no)
        if not (isinstance(single, Reject) and single.code == "unbalanced_quote"):
            return 1, (line_no, single)  # e.g. `Monitor 27"`: a quote inside an unquoted field
        size, quotes = len(lines[0]), lines[0].count('"')
        for count in range(2, len(lines) + 1):
            following = lines[count - 1]
            size += len(following) + 1
            if size > MAX_LINE or self.check.is_row(following.rstrip("\r")):
                break
            quotes += following.count('"')
            if quotes % 2:
                continue
            fields = self.check.split("\n".join(lines[:count]).rstrip("\r"))
            if isinstance(fields, list) and len(fields) == self.check.width:
                return count, (line_no, self.check.fields(fields, line_no))
            if not (isinstance(fields, csv.Error) and _OPEN in str(fields)):
                break
        else:
            if not complete:
                return None
        return 1, (line_no, Reject("unbalanced_quote", f"a quoted value opens on this line and does not close "
                                   f"into a row within {MAX_RECORD_LINES} lines and {MAX_LINE:,} characters", text))


_OPEN = "unexpected end of data"  # the csv module's words for a quoted value still open at the end


def _decode_lines(block: bytes) -> tuple[pa.Array, set[int]]:
    """The block's lines as a pyarrow string array, and the offsets of the lines that are not UTF-8
    (decoded with replacement characters: never a row)."""
    try:
        return pc.split_pattern(pa.array([block], pa.binary()).cast(pa.string()), "\n").flatten(), set()
    except pa.ArrowInvalid:  # some line is not UTF-8: decode line by line
        texts, bad = [], set()
        for offset, raw in enumerate(block.split(b"\n")):
            try:
                texts.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                bad.add(offset)
                texts.append(raw.decode("utf-8", "replace"))
        return pa.array(texts, pa.string()), bad


class _RowCheck:
    """The per-row checks of one CSV file."""

    def __init__(self, spec: CsvSpec, header: list[str], interval, display: str) -> None:
        missing = [c for c in spec.columns if c not in header and c not in spec.optional]
        if missing:
            raise FileError(display, f"schema drift: missing column(s) {', '.join(missing)}", 1)
        self.spec, self.header, self.interval = spec, header, interval
        # -1: an optional column the file lacks (an older export): its value is unknown, sent as NULL
        self.positions = [header.index(c) if c in header else -1 for c in spec.columns]
        self.width = len(header)
        self.in_order = self.positions == list(range(self.width))  # the usual case: no reordering per row

    @staticmethod
    def split(text: str) -> list[str] | csv.Error:
        try:
            return next(csv.reader([text], strict=True), [])
        except csv.Error as exc:
            return exc

    def is_row(self, text: str) -> bool:
        """Whether a line is a whole row of this file by itself (so no quoted value runs through it)."""
        fields = self.split(text)
        return isinstance(fields, list) and len(fields) == self.width

    def line(self, text: str, line_no: int) -> tuple | Reject:
        if len(text) > MAX_LINE:
            return Reject("too_long", f"line of {len(text):,} characters, longer than {MAX_LINE:,}", text)
        fields = self.split(text)
        if isinstance(fields, csv.Error):
            code = "unbalanced_quote" if _OPEN in str(fields) else "malformed"
            return Reject(code, f"malformed CSV: {fields}", text)
        return self.fields(fields, line_no)

    def fields(self, fields: list[str], line_no: int) -> tuple | Reject:
        if not fields:
            return Reject("empty_line", "empty line", "")
        raw = ",".join(fields)
        if len(fields) != self.width:
            return Reject("malformed", f"expected {self.width} fields, got {len(fields)} (truncated line?)", raw)
        try:
            ordered = fields if self.in_order else [fields[p] if p >= 0 else "" for p in self.positions]
            row = self.spec.convert(ordered)
        except (ValueError, KeyError) as exc:
            return Reject(reject_code(exc), str(exc), raw)
        bad = _bounds(self.spec, ordered, self.interval)
        return Reject(*bad, raw) if bad else row


# What a field must look like to take the column-wise path: text that each converter returns
# unchanged (or as NULL when empty), in RE2 syntax. Anything else takes _RowCheck, which owns the
# reject reasons. Columns whose check is Python (timestamps, booleans, status, currency, quantity)
# are checked once per distinct value of a block.
_TEXT = r'[^,"\\\t\r\x00]*'                               # returned as is
_ASCII = r'[!#-+\--\[\]-~]'                               # printable ASCII but , " \\ and space
_TRIMMED = _ASCII + r'(?:[ !#-+\--\[\]-~]*' + _ASCII + r')?'  # non-empty, no outer spaces
_AMOUNT = AMOUNT_RE.pattern[1:-1]
_EMAIL = r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z0-9-]+"
_UINT = "[0-9]{1,9}"


def _python(check: Callable[[str], str]) -> Callable[[str], str | None]:
    def fast(text: str) -> str | None:
        try:
            return check(text)
        except ValueError:
            return None
    return fast


def _positive(text: str) -> str:
    return check_uint(text, "quantity", positive=True)


def _choice(allowed: frozenset[str]) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in allowed:  # only the canonical spelling; others go through the converter
            raise ValueError(text)
        return text
    return check


def _ts_text(text: str) -> str:
    check_ts(text)
    return text


# (pattern, how a value becomes COPY text): None keeps it, "null" makes "" NULL, a function is
# applied per distinct value (None from it sends the line to _RowCheck).
FAST_COLUMNS: dict[str, tuple[tuple[str, object], ...]] = {
    "customers": ((_TRIMMED, None), (_EMAIL, None), (_TEXT, "null"), (_TEXT, "null"), (_TEXT, _python(_ts_text)),
                  (_TEXT, None), (_TEXT, _python(lambda t: "t" if _bool(t) else "f"))),
    "orders": ((_TRIMMED, None), (_TRIMMED, None), (_EMAIL, None), (_TEXT, _python(_ts_text)), (_TEXT, None),
               (_TEXT, _python(_choice(ORDER_STATUSES))), (_TEXT, _python(_choice(CURRENCIES))), (_AMOUNT, None),
               ("(?:" + _AMOUNT + ")?", "null"), ("(?:" + _TRIMMED + ")?", "null"), ("", "null")),
    # (discount_codes: only an empty field here; a JSON array has quotes and takes _RowCheck)
    "order_lines": ((_TRIMMED, None), (_UINT, None), (_TRIMMED, None), (_TEXT, None), (_TRIMMED, None),
                    (_TEXT, _python(_positive)), (_AMOUNT, None), ("(?:" + _AMOUNT + ")?", "null"), (_TEXT, None)),
}


class _FastRows:
    """Column-wise checks of plain CSV lines (no quotes) with pyarrow kernels: one RE2 match per
    line for the shape, one split, and Python once per distinct value where Python must look.

    Hand-rolled because pyarrow's own CSV reader cannot say which line a row came from once
    quoted values span lines, and the quarantine needs the line; the twin `_RowCheck` path is
    compared with this one line by line in the tests.
    """

    def __init__(self, spec: CsvSpec, check: _RowCheck, interval) -> None:
        by_column = dict(zip(spec.columns, FAST_COLUMNS[spec.name], strict=True))
        patterns = [by_column.get(name, (_TEXT, None))[0] for name in check.header]
        self.shape = "^" + ",".join(f"(?:{p})" for p in patterns) + "\r?$"
        start, end = interval

        def plausible(text: str) -> str:
            check_plausible(check_ts(text), "", end)
            return text

        self.columns = [(check.positions[i], by_column[name][0],
                         _python(plausible) if name in spec.plausible else by_column[name][1])
                        for i, name in enumerate(spec.columns)]
        self.ts_position = check.positions[spec.columns.index(spec.timestamp_column)]
        self.check_line_discount = spec.name == "order_lines" and check.positions[7] >= 0
        self.in_interval = _python(lambda t: t if start <= check_ts(t) < end else _raise(t))

    def __call__(self, lines: pa.Array, first: int, bad: set[int]) -> tuple[RowBlock | None, list[int]]:
        # Long lines go to _RowCheck, which owns the length limits: no field of a shorter line can exceed them.
        matched = pc.and_(pc.match_substring_regex(lines, self.shape),
                          pc.less_equal(pc.binary_length(lines), MAX_FIELD))
        if bad:  # lines that are not UTF-8 carry a decoded stand-in: never a row
            matched = pc.and_(matched, pa.array([i not in bad for i in range(len(lines))]))
        candidates = np.flatnonzero(matched.to_numpy(zero_copy_only=False))
        if not len(candidates):
            return None, list(range(len(lines)))
        fields = pc.split_pattern(pc.utf8_rtrim(lines.filter(matched), characters="\r"), ",")
        keep = pc.is_valid(per_distinct(pc.list_element(fields, self.ts_position), self.in_interval))
        columns = []
        for position, pattern, convert in self.columns:
            if position < 0:  # an optional column the file lacks
                columns.append(pa.nulls(len(fields), pa.string()))
                continue
            values = pc.list_element(fields, position)
            if pattern is _EMAIL:  # longer addresses go to _RowCheck's too_long
                keep = pc.and_(keep, pc.less_equal(pc.binary_length(values), MAX_EMAIL))
            if callable(convert):
                values = per_distinct(values, convert)
                keep = pc.and_(keep, pc.is_valid(values))
            elif convert == "null":
                values = pc.if_else(pc.equal(values, ""), None, values)
            columns.append(values)
        if self.check_line_discount:  # a line discount above quantity x unit price: _RowCheck rejects it
            quantity, price, discount = (pc.cast(columns[i], pa.float64()) for i in (5, 6, 7))
            keep = pc.and_(keep, pc.fill_null(pc.less_equal(discount, pc.add(pc.multiply(quantity, price), 0.001)),
                                              True))
        fast, slow = split_fast_slow(candidates, keep, len(lines))
        if not len(fast):
            return None, slow
        return RowBlock([c.filter(keep) for c in columns], pa.array(fast + first, pa.int64())), slow


def _raise(text: str) -> str:
    raise ValueError(text)
