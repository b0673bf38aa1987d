"""Issue 26, defect 3 (first line of defence): what the Python validation accepts, PostgreSQL's input
functions accept too. Each value a parser hands to COPY as text (timestamps, integers, amounts) is
tried on both sides: a value Python accepts and the server refuses would stop a whole source-day.
The bad-input corpus (test_bad_inputs.py) loads the same values inside real files."""

from __future__ import annotations

import psycopg
import pytest

from ecrm.sources.common import check_amount, check_ts, check_uint

TIMESTAMPS = [
    # the forms exports write: both sides accept them
    "2026-10-01T13:05:22+00:00", "2026-10-01T13:05:22Z", "2026-10-01 13:05:22+02:00", "2026-10-01T13:05:22.5+00:00",
    "2026-10-01T13:05:22.123456-05:00", "2026-10-01T13:05+01:00", "2026-10-01T13:05:22+0100", "2026-10-01T13:05:22+01",
    "2026-10-01T13:05:22+15:59", "2026-10-01T13:05:22-15:00", "2024-02-29T00:00:00+00:00",
    # ISO 8601 forms Python's fromisoformat reads and PostgreSQL refuses (issue 26) ...
    "2030-W15-7T10:00:00+00:00", "2030-01-01T10:00:00,5+00:00", "2030-01-01T10:00:00-23:59",
    "2030-01-01T10:00:00+00:00:30.5", "20300101T100000Z", "2030-01-01t10:00:00+00:00", "2030-01-01T10:00:00+16:00",
    "2030-W15T10:00:00+00:00", "2030-01-01T10:00:00.1234567+00:00", "2030-01-01T10:00:00+00:00:30",
    "2030-01-01T10Z", "2030-01-01T1000Z", "2030-01-01T10:00:00+0000:30",
    # ... and other shapes: non-ASCII digits, out-of-range parts, no offset, junk
    "\u0662\u0660\u0663\u0660-01-01T10:00:00+00:00", "2030-01-01T\u0661\u0660:00:00+00:00", "2030-02-30T10:00:00+00:00",
    "2030-13-01T10:00:00+00:00", "2030-01-01T24:00:00+00:00", "2030-01-01T10:00:60+00:00", "2030-01-01T10:00:00",
    "2030-01-01", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2030-01-01T10:00:00 +00:00",
    " 2030-01-01T10:00:00+00:00", "2030-01-01T10:00:00+00:00 ", "yesterday", "",
]
INTEGERS = ["1", "12", "007", "999999999", "0", "\u0661\u0662", "\u0660", "\uff11\uff12", "\u00b2", "1_000", " 12",
            "12 ", "+12", "-1", "1e3", "1.0", "9999999999", ""]
AMOUNTS = ["10.00", "0", "1.5", "9999999999.99", "1e2", "1E+2", " 12", "12 ", "1_000", "\u0661\u0662.00",
           "12.\u0660\u0660", "\uff11\uff12", "1.005", "-1", "NaN", "Infinity", "1e309", "10000000000", "", "0x10",
           "\u0661\u0662"]


def accepts(check, value: str):
    """What the Python check hands to COPY for `value`, or None when it refuses it."""
    try:
        result = check(value)
    except ValueError:  # RejectError included
        return None
    return value if result is None or not isinstance(result, str) else result


def server_accepts(conn, text: str, cast: str) -> bool:
    try:
        conn.execute(f"select %s::text::{cast}", (text,))
        return True
    except psycopg.errors.DataError:
        return False


@pytest.mark.parametrize(("check", "values", "cast"), [
    (check_ts, TIMESTAMPS, "timestamptz"),
    (lambda v: check_uint(v, "quantity", positive=True), INTEGERS, "integer"),
    (lambda v: check_uint(v, "line_number"), INTEGERS, "integer"),
    (check_amount, AMOUNTS, "numeric(12, 2)"),
], ids=["timestamp", "positive-integer", "integer", "amount"])
def test_what_python_accepts_postgresql_accepts(conn, check, values, cast):
    taken = {value: accepts(check, value) for value in values}
    refused_by_server = [value for value, sent in taken.items() if sent is not None and not server_accepts(conn, sent, cast)]
    assert refused_by_server == []
    assert sum(sent is not None for sent in taken.values()) >= 4  # the grammar is no blanket refusal


def test_the_issues_timestamps_are_refused_and_ordinary_ones_taken():
    for text in ("2030-W15-7T10:00:00+00:00", "2030-01-01T10:00:00,5+00:00", "2030-01-01T10:00:00-23:59",
                 "2030-01-01T10:00:00+00:00:30.5", "20300101T100000Z", "2030-01-01t10:00:00+00:00"):
        assert accepts(check_ts, text) is None, text
    for text in TIMESTAMPS[:11]:
        assert accepts(check_ts, text) == text, text
