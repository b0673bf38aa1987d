"""Shared helpers: seeded random streams, time formatting and atomic file writes.

Every random draw of the simulator comes from a stream keyed by (seed, day, stream number, ...),
never from state carried between calls, so that any day can be regenerated on its own and
produce byte-identical output.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from pathlib import Path

import numpy as np

from ..settings import is_local

SECONDS_PER_DAY = 86_400
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Stream(IntEnum):
    """Stream numbers: one independent random stream per purpose, so that changing how one
    purpose consumes randomness never shifts the draws of another."""

    INITIAL_CUSTOMERS = 1
    SIGNUPS = 2
    ORDER_DRAWS = 3
    ORDER_DETAILS = 4
    WEB = 5
    EMAIL = 6
    MALFORMED = 7
    CATALOG = 8
    CUSTOMER_UPDATES = 9


def np_rng(seed: int, day: date | None, stream: Stream) -> np.random.Generator:
    """Vectorised stream for a day (or for the whole run when ``day`` is None)."""
    return np.random.default_rng([seed, day.toordinal() if day else 0, int(stream)])


def py_rng(seed: int, day: date | None, stream: Stream, *extra: int | str) -> random.Random:
    """Scalar stream: Python's Mersenne Twister is ~10x faster than numpy for one-at-a-time draws."""
    return random.Random(hash_int(seed, day.toordinal() if day else 0, int(stream), *extra))


def hash_int(*parts: object) -> int:
    """Stable 64-bit integer of the parts (Python's ``hash`` is salted per process)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def hash_unit(*parts: object) -> float:
    """Stable uniform number in [0, 1) for per-entity traits (device, mail client...)."""
    return hash_int(*parts) / 2**64


def day_start(day: date) -> int:
    """Unix seconds of 00:00:00 UTC of the day."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def iso(ts: int) -> str:
    """ISO 8601 with an explicit +00:00 offset, as the landing formats require."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def clf_time(ts: int) -> str:
    """nginx ``$time_local`` in UTC, built by hand so the month name never depends on the locale."""
    d = datetime.fromtimestamp(ts, UTC)
    return f"{d.day:02d}/{MONTHS[d.month - 1]}/{d.year}:{d.hour:02d}:{d.minute:02d}:{d.second:02d} +0000"


def add_days(day: date, n: int) -> date:
    return day + timedelta(days=n)


def money(cents: int) -> str:
    """Cents as a two-decimal string; integer cents keep totals exact."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def customer_token(customer_id: str) -> str:
    """The ``ct`` parameter of email click-throughs (docs/formats.md)."""
    return hashlib.sha256(f"ecrm-token:{customer_id}".encode()).hexdigest()[:16]


def n_malformed(n_records: int, share: float = 0.003) -> int:
    """How many deliberately bad records a file gets: a small share, but never none."""
    return max(1, round(n_records * share))


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file and ``os.replace`` so readers never see half a file; an identical
    file is left untouched (keeps mtimes stable for loaders that look at them). On object storage
    (a UPath) one PUT replaces the object whole."""
    if not is_local(path):
        if not (path.exists() and path.read_bytes() == data):
            path.write_bytes(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == data:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
