"""Shop export files (CSV, optionally gzip): customers, orders and order lines.

Each row is validated and typed here; the loader COPYs the good rows and quarantines the rest.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from . import FileError, Reject
from .common import CURRENCIES, check_amount, check_email, check_ts, read_lines

ORDER_STATUSES = frozenset({"placed", "paid", "shipped", "cancelled", "refunded"})


@dataclass(frozen=True)
class CsvSpec:
    name: str                      # raw table and file stem
    columns: tuple[str, ...]       # required header, in the raw table's column order
    convert: Callable[[dict[str, str]], tuple]
    timestamp_column: str          # must fall inside the load interval
    key: tuple[str, ...]           # natural key, unique within a file


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "t", "1", "yes"):
        return True
    if lowered in ("false", "f", "0", "no"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _required(text: str, column: str) -> str:
    if not text.strip():
        raise ValueError(f"empty {column}")
    return text.strip()


# Converters take the row's fields in the spec's column order and return the raw table's values.
# Timestamps and amounts are validated here but handed to COPY as text: PostgreSQL parses them
# anyway, and skipping the Python objects keeps the loader near raw COPY speed.
def _customer(r: list[str]) -> tuple:
    customer_id, email, first_name, country, signed_up_at, updated_at, accepts_marketing = r
    check_ts(signed_up_at)
    return (_required(customer_id, "customer_id"), check_email(email), first_name or None, country or None,
            signed_up_at, updated_at, _bool(accepts_marketing))


def _order(r: list[str]) -> tuple:
    (order_id, customer_id, email, created_at, updated_at, status, currency, total, discount, coupon) = r
    status = status.strip().lower()
    if status not in ORDER_STATUSES:
        raise ValueError(f"unknown status: {r[5]!r}")
    currency = currency.strip().upper()
    if currency not in CURRENCIES:
        raise ValueError(f"unknown currency: {r[6]!r}")
    check_ts(created_at)
    return (_required(order_id, "order_id"), _required(customer_id, "customer_id"), check_email(email),
            created_at, updated_at, status, currency, check_amount(total), check_amount(discount),
            coupon.strip() or None)


def _order_line(r: list[str]) -> tuple:
    order_id, line_number, product_id, product_name, category, quantity, unit_price, discount, updated_at = r
    # Integers are checked here and handed to COPY as the validated text (no int() round trip).
    if not (quantity.isdigit() and len(quantity) < 10 and int(quantity) > 0):
        raise ValueError(f"quantity must be a positive integer: {quantity!r}")
    if not (line_number.isdigit() and len(line_number) < 10):
        raise ValueError(f"line_number must be a positive integer: {line_number!r}")
    return (_required(order_id, "order_id"), line_number, _required(product_id, "product_id"),
            product_name, _required(category, "category"), quantity, check_amount(unit_price),
            check_amount(discount), updated_at)


SPECS = {
    "customers": CsvSpec("customers", ("customer_id", "email", "first_name", "country", "signed_up_at",
                                       "updated_at", "accepts_marketing"), _customer, "updated_at",
                         ("customer_id",)),
    "orders": CsvSpec("orders", ("order_id", "customer_id", "email", "created_at", "updated_at", "status",
                                 "currency", "total_amount", "discount_amount", "coupon_code"), _order,
                      "updated_at", ("order_id",)),
    "order_lines": CsvSpec("order_lines", ("order_id", "line_number", "product_id", "product_name", "category",
                                           "quantity", "unit_price", "discount_amount", "updated_at"),
                           _order_line, "updated_at", ("order_id", "line_number")),
}


def _decoded_lines(path, undecodable: set[int]) -> Iterator[str]:
    """Lines as text; a line that is not UTF-8 is decoded with surrogateescape (so the CSV reader
    can go on) and its physical line number is added to `undecodable`."""
    with path.open("rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if str(path).endswith(".gz") else raw
        try:
            for number, line in enumerate(stream, start=1):
                try:
                    yield line.decode("utf-8")
                except UnicodeDecodeError:
                    undecodable.add(number)
                    yield line.decode("utf-8", errors="surrogateescape")
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise FileError(str(path), f"corrupt or truncated gzip ({exc})") from None


def _json_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_shop_file(spec: CsvSpec, path, interval: tuple[datetime, datetime],
                    extra_columns: list[str] | None = None) -> Iterator[tuple[int, tuple | Reject]]:
    """CSV or JSON lines (by extension, optionally .gz): the same columns, checks and rejects."""
    if ".jsonl" in path.name or ".ndjson" in path.name:
        return parse_jsonl(spec, path, interval, extra_columns)
    return parse_csv(spec, path, interval, extra_columns)


def parse_jsonl(spec: CsvSpec, path, interval, extra_columns=None) -> Iterator[tuple[int, tuple | Reject]]:
    start, end = interval
    ts_index = spec.columns.index(spec.timestamp_column)
    drift_checked = False
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
        except ValueError as exc:
            yield line_no, Reject(f"invalid JSON (truncated line?): {exc}", text)
            continue
        missing = [c for c in spec.columns if c not in obj]
        if missing:
            if not drift_checked:  # the first record decides: a whole-file schema change is an error
                raise FileError(str(path), f"schema drift: missing key(s) {', '.join(missing)}", line_no)
            yield line_no, Reject(f"missing key(s) {', '.join(missing)}", text)
            continue
        if not drift_checked and extra_columns is not None:
            extra_columns.extend(k for k in obj if k not in spec.columns)
        drift_checked = True
        try:
            ordered = [_json_text(obj[c]) for c in spec.columns]
            row = spec.convert(ordered)
            stamp = check_ts(ordered[ts_index])
        except ValueError as exc:
            yield line_no, Reject(str(exc), text)
            continue
        if not (start <= stamp < end):
            yield line_no, Reject(f"{spec.timestamp_column} {stamp.isoformat()} outside the load interval", text)
            continue
        yield line_no, row


def parse_csv(spec: CsvSpec, path, interval: tuple[datetime, datetime],
              extra_columns: list[str] | None = None) -> Iterator[tuple[int, tuple | Reject]]:
    """Yield (line, typed row | Reject). Header problems raise FileError (schema drift)."""
    undecodable: set[int] = set()
    reader = csv.reader(_decoded_lines(path, undecodable), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise FileError(str(path), "empty file: no header row") from None
    except csv.Error as exc:
        raise FileError(str(path), f"unreadable header: {exc}", 1) from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    missing = [c for c in spec.columns if c not in header]
    if missing:
        raise FileError(str(path), f"schema drift: missing column(s) {', '.join(missing)}", 1)
    if extra_columns is not None:
        extra_columns.extend(c for c in header if c not in spec.columns)
    positions = [header.index(c) for c in spec.columns]
    width = len(header)
    in_order = positions == list(range(width))  # the usual case: no reordering per row
    start, end = interval
    ts_index = spec.columns.index(spec.timestamp_column)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, Reject(f"malformed CSV: {exc}", "")
            continue
        line_no = reader.line_num
        if not fields:
            yield line_no, Reject("empty line", "")
            continue
        if undecodable and line_no in undecodable:
            text = ",".join(fields).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            yield line_no, Reject("non-UTF-8 bytes", text)
            continue
        if len(fields) != width:
            yield line_no, Reject(f"expected {width} fields, got {len(fields)} (truncated line?)", ",".join(fields))
            continue
        try:
            ordered = fields if in_order else [fields[p] for p in positions]
            row = spec.convert(ordered)
            stamp = check_ts(ordered[ts_index])
        except (ValueError, KeyError) as exc:
            yield line_no, Reject(str(exc), ",".join(fields))
            continue
        if not (start <= stamp < end):
            yield line_no, Reject(f"{spec.timestamp_column} {stamp.isoformat()} outside the load interval "
                                  f"[{start.isoformat()}, {end.isoformat()})", ",".join(fields))
            continue
        yield line_no, row
