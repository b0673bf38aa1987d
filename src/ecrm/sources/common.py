"""Shared parsing helpers: timestamps, emails, amounts, line reading with gzip and bad bytes."""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import FileError, RejectError

# What the loader demands of an e-mail field: the shape of an address (one @, no spaces, a dot in the
# domain), not its validity. Raw keeps what the shop sent; only what is no address at all is
# quarantined. Whether an address may be mailed is ecrm.email_rule's (dbt's is_valid_email, the
# gate, the mailer): a customer with an odd address is still a customer, with orders and revenue.
ADDRESS_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CURRENCIES = frozenset({"EUR", "USD", "GBP", "CHF", "SEK", "DKK", "NOK", "PLN", "CZK"})


# Bounds of what a row may hold (issue 20: absurd values are quarantined, never loaded or crashing).
BOM = b"\xef\xbb\xbf"
MAX_EMAIL = 254                   # RFC 5321's limit for a forward path
MAX_FIELD = 8192                  # any other text field (nginx's default header buffer is 8 KB)
MAX_LINE = 65536                  # a whole line; longer ones are not parsed at all
MAX_AMOUNT = Decimal("9999999999.99")  # numeric(12, 2)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # no shop order or sign-up is older


def parse_ts(text: str) -> datetime:
    """ISO 8601 with an offset; naive timestamps are rejected rather than guessed."""
    return check_ts(text).astimezone(UTC)


AMOUNT_RE = re.compile(r"^\d{1,10}(?:\.\d{1,2})?$")


def check_ts(text: str) -> datetime:
    """Validate an ISO 8601 timestamp with offset; returns it parsed (for interval checks).
    Years 1 and 9999 parse but cannot be moved to UTC or compared: out_of_range, not a crash."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a UTC offset: {text!r}")
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise RejectError("out_of_range", f"timestamp out of range: {text!r}") from None
    return value


def window_reject(what: str, stamp: datetime, window: tuple[datetime, datetime], source: str) -> tuple[str, str]:
    """(code, reason) of a timestamp outside a load's window: older lines say how to load them."""
    if stamp < window[0]:
        day = stamp.astimezone(UTC).date().isoformat()
        return "too_late", (f"{what} {stamp.isoformat()} is older than this load's window (from "
                            f"{window[0].isoformat()}): load it with `ecrm ingest {source} {day} --file` and this file")
    return "future_timestamp", f"{what} {stamp.isoformat()} is after this load's window (until {window[1].isoformat()})"


def check_plausible(value: datetime, column: str, interval_end: datetime) -> None:
    """Order and sign-up times: not before 1970, not after the load interval's end + 1 day."""
    if value < EARLIEST or value > interval_end + timedelta(days=1):
        raise RejectError("out_of_range", f"{column} {value.isoformat()} is before 1970 or after the run date + 1 day")


def check_length(text: str, column: str, limit: int = MAX_FIELD) -> str:
    if len(text) > limit:
        raise RejectError("too_long", f"{column} of {len(text):,} characters, longer than the {limit:,} allowed")
    return text


def check_amount(text: str) -> str:
    """A non-negative amount with at most two decimals, returned as text for COPY."""
    if AMOUNT_RE.match(text):
        return text
    value = parse_amount(text)  # raises with the precise reason (not a number, negative)
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"more than two decimals: {text}")
    return str(value)


def parse_amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    if value < 0:
        raise ValueError(f"negative amount: {text}")
    if value > MAX_AMOUNT:
        raise RejectError("out_of_range", f"amount {text[:40]} is larger than {MAX_AMOUNT}")
    return value


def check_email(text: str) -> str:
    email = text.strip()
    check_length(email, "email", MAX_EMAIL)
    if not ADDRESS_SHAPE.match(email):
        raise ValueError(f"invalid email: {text!r}")
    return email


def read_blocks(path, display: str, size: int = 4 << 20) -> Iterator[tuple[int, bytes]]:
    """Yield (number of the first line, block of whole lines joined by b"\\n"), about `size` bytes
    each, streaming, gzip by extension: the block-wise twin of read_lines, same line numbers."""
    with path.open("rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if str(path).endswith(".gz") else raw
        first, rest = 1, b""
        try:
            while chunk := stream.read(size):
                if first == 1 and not rest and chunk.startswith(BOM):
                    chunk = chunk[3:]  # a UTF-8 BOM is not part of line 1
                data = rest + chunk
                end = data.rfind(b"\n")
                if end < 0:
                    rest = data
                    continue
                block, rest = data[:end], data[end + 1:]
                yield first, block
                first += block.count(b"\n") + 1
            if rest:
                yield first, rest
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            # The failed read's data is gone, so the cut is somewhere at or after line `first`.
            raise FileError(display, f"corrupt or truncated gzip ({exc}) at or after this line", first) from None


def read_lines(path, display: str) -> Iterator[tuple[int, str | None, bytes]]:
    """Yield (line_number, text or None when not UTF-8, raw bytes) streaming, gzip by extension.

    A truncated gzip raises FileError naming the file, so the caller loads nothing from it.
    """
    with path.open("rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if str(path).endswith(".gz") else raw
        buffered = io.BufferedReader(stream, buffer_size=1 << 20) if stream is not raw else raw
        number = 0
        try:
            for number, line in enumerate(buffered, start=1):
                data = line.rstrip(b"\r\n")
                if data.startswith(BOM):  # a UTF-8 BOM: at the file's start, or where files were concatenated
                    data = data[3:]
                try:
                    yield number, data.decode("utf-8"), data
                except UnicodeDecodeError:
                    yield number, None, data
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise FileError(display, f"corrupt or truncated gzip ({exc})", number + 1) from None


# -- shared by the column-wise fast paths (weblogs, shop CSV) -------------------------------------
def split_fast_slow(candidates: np.ndarray, keep: pa.Array, total: int) -> tuple[np.ndarray, list[int]]:
    """Offsets in the block of the candidate lines `keep` marks, and of every other line (those go
    to the line-by-line parser)."""
    fast = candidates[keep.to_numpy(zero_copy_only=False)]
    is_fast = np.zeros(total, dtype=bool)
    is_fast[fast] = True
    return fast, np.flatnonzero(~is_fast).tolist()


def per_distinct(values: pa.Array, convert) -> pa.Array:
    """`convert` (Python, returning text or None) applied once per distinct value, spread back
    over the rows: a block repeats few user agents, statuses, timestamps."""
    codes = pc.dictionary_encode(values, null_encoding="encode")  # None is a value too
    return pc.take(pa.array([convert(v) for v in codes.dictionary.to_pylist()], pa.string()), codes.indices)
