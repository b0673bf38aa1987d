"""Shared parsing helpers: timestamps, emails, amounts, JSON, line reading with gzip and bad bytes.

The rule for every value handed to PostgreSQL as text: what these checks accept, PostgreSQL's input
functions accept too (ASCII digits only, one timestamp grammar, JSON that Python can hold), so a
line is quarantined here rather than failing the whole COPY.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import FileError, Reject, RejectError

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
# A line of more bytes than this has more than MAX_LINE characters whatever its UTF-8: the readers
# stop keeping it there and stream on to its newline, so memory stays flat however long it is.
READ_LIMIT = 4 * MAX_LINE + 4
LONG_LINE_PREFIX = 1024           # bytes of such a line kept for the quarantine's raw_text
MAX_AMOUNT = Decimal("9999999999.99")  # numeric(12, 2)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # no shop order or sign-up is older


def parse_ts(text: str) -> datetime:
    """ISO 8601 with an offset; naive timestamps are rejected rather than guessed."""
    return check_ts(text).astimezone(UTC)


# Amounts: ASCII digits only (`\\d` would take Arabic-Indic digits, which PostgreSQL's numeric rejects).
AMOUNT_RE = re.compile(r"^[0-9]{1,10}(?:\.[0-9]{1,2})?$")

# THE timestamp grammar of every timestamp a source hands over as text (docs/formats.md): a subset
# of ISO 8601 that Python's fromisoformat and PostgreSQL's timestamptz input read alike. fromisoformat
# also takes week dates (2030-W15-7), a `,` before the fraction, offsets with seconds or of ±16 hours
# and more, which PostgreSQL refuses (one such value failed a whole day's COPY), and forms both read
# but no export needs (basic format 20300101T100000Z, a lower-case `t`): one grammar, documented.
TIMESTAMP = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?P<offset>Z|[+-](?:0[0-9]|1[0-5])(?::?[0-5][0-9])?)?")


def check_ts(text: str) -> datetime:
    """Validate a timestamp of the TIMESTAMP grammar with an offset; returns it parsed (for interval
    checks). Years 1 and 9999 parse but cannot be moved to UTC or compared: out_of_range, not a crash."""
    shape = TIMESTAMP.fullmatch(text)
    if not shape:
        raise ValueError(f"not a timestamp of the form 2026-10-01T13:05:22+00:00: {text[:40]!r}")
    if not shape["offset"]:
        raise ValueError(f"timestamp without a UTC offset: {text!r}")
    value = datetime.fromisoformat(text)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise RejectError("out_of_range", f"timestamp out of range: {text!r}") from None
    return value


def check_uint(text: str, column: str, positive: bool = False) -> str:
    """A non-negative integer of at most 9 ASCII digits (an int column), returned as the text COPY
    sends: str.isdigit() and int() also take Arabic-Indic and other digits, PostgreSQL does not."""
    if not (text.isascii() and text.isdigit() and len(text) < 10 and (int(text) > 0 or not positive)):
        raise ValueError(f"{column} must be a {'positive' if positive else 'non-negative'} integer: {text[:40]!r}")
    return text


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
    if not text.isascii():  # Decimal() reads Arabic-Indic and other digits; PostgreSQL does not
        raise ValueError(f"not a number: {text[:40]!r}")
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


class LongLine:
    """A line of more than READ_LIMIT bytes: read to its newline but not kept (its first bytes and
    its size only), so a 1 GiB line costs the time to stream it and no memory."""

    __slots__ = ("prefix", "size")

    def __init__(self, prefix: bytes, size: int) -> None:
        self.prefix, self.size = prefix, size

    def reject(self) -> Reject:
        text = self.prefix.decode("utf-8", "replace")
        return Reject("too_long", f"line of {self.size:,} bytes, longer than {MAX_LINE:,} characters",
                      f"{text}... [{self.size:,} bytes in all]")


def _skip_line(stream, head: bytes, size: int) -> tuple[LongLine, bytes]:
    """Stream past the rest of a line that began with `head`: the line as a LongLine, and what
    follows its newline in the last chunk read."""
    total = len(head)
    while chunk := stream.read(size):
        end = chunk.find(b"\n")
        if end >= 0:
            return LongLine(head[:LONG_LINE_PREFIX], total + end), chunk[end + 1:]
        total += len(chunk)
    return LongLine(head[:LONG_LINE_PREFIX], total), b""


def read_blocks(path, display: str, size: int = 4 << 20) -> Iterator[tuple[int, bytes | LongLine]]:
    """Yield (number of the first line, block of whole lines joined by b"\\n"), about `size` bytes
    each, streaming, gzip by extension; a line longer than READ_LIMIT bytes comes alone, as a
    LongLine (the line-length limit is enforced while reading: memory stays flat)."""
    with path.open("rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if str(path).endswith(".gz") else raw
        first, pending = 1, b""  # pending: bytes read, not yet yielded (no newline but the ones still to split)
        try:
            while True:
                end = pending.rfind(b"\n")
                if end >= 0:
                    block, pending = pending[:end], pending[end + 1:]
                    yield first, block
                    first += block.count(b"\n") + 1
                if len(pending) > READ_LIMIT:  # a line too long to keep: stream on to its end
                    long_line, pending = _skip_line(stream, pending, size)
                    yield first, long_line
                    first += 1
                    continue  # what followed its newline may hold whole lines
                chunk = stream.read(size)
                if not chunk:
                    break
                if first == 1 and not pending and chunk.startswith(BOM):
                    chunk = chunk[3:]  # a UTF-8 BOM is not part of line 1
                pending += chunk
            if pending:
                yield first, pending
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            # The failed read's data is gone, so the cut is somewhere at or after line `first`.
            raise FileError(display, f"corrupt or truncated gzip ({exc}) at or after this line", first) from None


def read_lines(path, display: str) -> Iterator[tuple[int, str | None, bytes]]:
    """Yield (line_number, text or None when not UTF-8 or too long, raw bytes) streaming, gzip by
    extension; a line over READ_LIMIT bytes has text None and raw its first bytes (see read_text_lines).

    A truncated gzip raises FileError naming the file, so the caller loads nothing from it.
    """
    for first, block in read_blocks(path, display):
        if isinstance(block, LongLine):
            yield first, None, block.prefix
            continue
        for number, line in enumerate(block.split(b"\n"), start=first):
            data = line.rstrip(b"\r")
            if data.startswith(BOM):  # a UTF-8 BOM: at the file's start, or where files were concatenated
                data = data[3:]
            try:
                yield number, data.decode("utf-8"), data
            except UnicodeDecodeError:
                yield number, None, data


def read_text_lines(path, display: str) -> Iterator[tuple[int, str | Reject]]:
    """(line_number, text) of each line, or (line_number, Reject) for a line that is not UTF-8, is
    longer than MAX_LINE characters (read without keeping it) or is empty: the checks every
    line-by-line parser starts with."""
    for first, block in read_blocks(path, display):
        if isinstance(block, LongLine):
            yield first, block.reject()
            continue
        yield from block_text_lines(first, block)


def block_text_lines(first: int, block: bytes) -> Iterator[tuple[int, str | Reject]]:
    """read_text_lines of one block of whole lines, the first of them numbered `first`."""
    for number, line in enumerate(block.split(b"\n"), start=first):
        data = line.rstrip(b"\r")
        if data.startswith(BOM):
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            yield number, Reject("not_utf8", "non-UTF-8 bytes", data.decode("utf-8", "replace"))
            continue
        yield number, checked_text(text)


def checked_text(text: str) -> str | Reject:
    """A decoded line (without its BOM) as the line-by-line parsers take it, or its Reject: longer
    than MAX_LINE characters, or empty."""
    if len(text) > MAX_LINE:
        return Reject("too_long", f"line of {len(text):,} characters, longer than {MAX_LINE:,}", text)
    if not text.strip():
        return Reject("empty_line", "empty line", "")
    return text


# JSON: every way json.loads can fail on one line is that line's reject, never the file's error.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def load_json(text: str) -> object:
    """json.loads of one line, raising RejectError for what Python cannot read or PostgreSQL cannot
    store: invalid JSON and nesting deeper than Python's recursion limit (`malformed`), integers
    over Python's 4,300 digits (`out_of_range`), escaped lone surrogates such as `\\ud800` (`not_utf8`:
    no UTF-8 text, so no PostgreSQL text, can hold them; a proper pair is one character and loads)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RejectError("malformed", f"invalid JSON: {exc.msg} at column {exc.colno} (truncated line?)") from None
    except RecursionError:
        raise RejectError("malformed", "JSON nested deeper than Python reads") from None
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise RejectError("out_of_range", "a JSON number of more than 4,300 digits") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise RejectError("not_utf8", "an escaped lone surrogate (\\ud800-\\udfff): not a character") from None
    return value


# -- shared by the column-wise fast paths (weblogs, shop CSV, e-mail events) ----------------------
def arrow_lines(block: bytes) -> pa.Array | None:
    """A block's lines as a pyarrow string array, trailing carriage returns trimmed; None when the
    block is not valid UTF-8 somewhere (the caller then reads it line by line)."""
    try:
        lines = pc.split_pattern(pa.array([block], pa.binary()).cast(pa.string()), "\n").flatten()
    except pa.ArrowInvalid:
        return None
    return pc.utf8_rtrim(lines, characters="\r") if b"\r" in block else lines


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
