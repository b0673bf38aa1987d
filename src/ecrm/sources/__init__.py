"""Parsers for the three sources: each turns one landing file into typed rows or rejects.

A parser yields `(line_number, row)` where row is a tuple in the raw table's column order, or
`(line_number, Reject(code, reason, raw_text))`, or a `RowBlock` of many good rows parsed column-wise.
Parsers never drop a line silently. Duplicate keys within a file are found by the loader in SQL,
so parsers keep no per-file state and memory stays flat however large the file.
"""

from __future__ import annotations

from dataclasses import dataclass

# Why a line is quarantined, as a small fixed vocabulary that operators can group and alert on;
# `Reject.reason` adds the detail (which field, which value). Documented in docs/formats.md.
REASON_CODES: dict[str, str] = {
    "not_utf8": "the line is not valid UTF-8, or its JSON escapes a lone surrogate (\\ud800) that UTF-8 cannot hold",
    "nul_byte": "a NUL character, which PostgreSQL text cannot hold",
    "empty_line": "an empty line",
    "malformed": "not a line of this format (CSV field count or quoting, JSON syntax or nesting, log layout)",
    "unbalanced_quote": "a CSV line whose quote opens a value that does not close into a row within 100 lines "
                        "and 65,536 characters (or before the end of the file): the line alone is quarantined "
                        "and reading resumes at the next line",
    "missing_field": "a required field is missing or empty",
    "not_scalar": "a JSON object or array where a single value is expected",
    "invalid_value": "a value of the wrong type or form (timestamp, e-mail, amount, status, event)",
    "out_of_range": "a value the column cannot hold or no real shop has (amounts of 10^10 or more, JSON numbers "
                    "of more than 4,300 digits, "
                    "dates before 1970 or after the run date + 1 day, timestamps outside PostgreSQL's range)",
    "too_long": "a field or line longer than its limit",
    "too_late": "a timestamp older than the load's window (the folder's day minus the source's lookback): "
                "the reason says how to load it (`ecrm ingest SOURCE DAY --file PATH`)",
    "future_timestamp": "a timestamp later than the end of the folder's day plus the allowed clock skew",
    "negative_discount": "a discount (the order's, a line's or one code's amount) below zero",
    "discount_above_total": "a discount larger than what it was taken off: a line's discount above quantity x "
                            "unit price, an order's codes above its value before discount (total + discount)",
    "unknown_discount_type": "a discount code whose type is not percentage, fixed_amount or shipping (or their "
                             "WooCommerce names percent, fixed_cart, fixed_product)",
    "unknown_event_type": "a loyalty ledger event that is not earned, redeemed, expired, adjusted or tier_changed",
    "wrong_sign": "loyalty points whose sign contradicts the event (points earned at or below zero, a redemption "
                  "or expiry that adds points)",
    "duplicate_in_file": "the same key again later in the same file (the later line wins)",
    "duplicate_event": "an event id already loaded from another file",
    "rejected_by_warehouse": "a value PostgreSQL refused although the parser accepted it (the loader's "
                             "second line of defence; the reason holds the server's message)",
}


@dataclass(frozen=True, slots=True)
class Reject:
    code: str       # one of REASON_CODES
    reason: str     # the detail, for a person
    raw_text: str

    def __post_init__(self) -> None:
        if self.code not in REASON_CODES:
            raise ValueError(f"unknown reason code {self.code!r}")


class RejectError(ValueError):
    """Raised by converters: a row-level problem with its reason code (plain ValueError = invalid_value)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def reject_code(exc: Exception) -> str:
    return getattr(exc, "code", "invalid_value")


@dataclass(frozen=True, slots=True)
class RowBlock:
    """Many good rows at once, column-wise: pyarrow string arrays in the raw table's column order
    (null for NULL) whose values never need COPY escaping (no tab, newline, carriage return or
    backslash), and the line number of each row. The loader sends them without a Python loop."""

    columns: list
    line_numbers: object  # pyarrow int64 array

    def __len__(self) -> int:
        return len(self.line_numbers)


class FileError(Exception):
    """The file as a whole is unusable (missing, empty, cut-off gzip, schema drift): load nothing."""

    def __init__(self, file: str, reason: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {reason}")
        self.file, self.reason, self.line = file, reason, line
