"""Run intervals: every load, build and push is about one explicit [start, end) interval."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta


def day_interval(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def interval_day(start: datetime, end: datetime) -> date:
    """The single day a daily run is about; refuses intervals that are not exactly one UTC day."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end - start != timedelta(days=1) or start.time() != time(0):
        raise ValueError(f"expected one UTC day, got [{start.isoformat()}, {end.isoformat()})")
    return start.date()


def parse_day(text: str) -> date:
    return date.fromisoformat(text)
