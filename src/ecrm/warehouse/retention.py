"""The raw history's day partitions: created ahead of the rows, dropped by retention.

raw.web_requests and raw.email_events are partitioned by UTC day (migration 0006): one partition
`TABLE_pYYYYMMDD` per day plus `TABLE_default`, which catches any row no day partition takes, so a
row is never refused. `ops.ensure_day_partitions` (the migration's SQL function) creates missing
day partitions; the loader calls it for the days a file may hold (its window: the folder's day and
the lookback before it), `ecrm warehouse migrate` for today and the next DAYS_AHEAD days.

`ecrm warehouse retention --keep-days N` detaches and drops the day partitions older than the N
days up to the reference day: dropping a day is a catalog change, where a delete + vacuum of the
same day rewrites and scans the whole table (benchmarks/bench_retention.py). It refuses N below
`min_keep_days()`, the longest window of raw history a mart re-reads in a daily build
(docs/scaling.md, "Retention").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

# partitioned table -> the timestamp it is partitioned on (the one the loader windows, dbt filters on)
PARTITIONED = {"raw.web_requests": "requested_at", "raw.email_events": "occurred_at"}
DAYS_AHEAD = 7  # `migrate` creates today's partition and this many days after it
DAY_PARTITION = re.compile(r"_p(\d{8})$")
# dbt vars (dbt_project.yml) that say how far back a daily build re-reads raw events
MART_WINDOWS = ("email_engagement_days", "attribution_window_days", "attribution_click_window_days",
                "web_lookback_days")


class RetentionRefused(ValueError):
    """--keep-days below what the marts' daily build re-reads."""


@dataclass(frozen=True)
class Partition:
    table: str      # the partitioned table, e.g. raw.web_requests
    name: str       # the partition, schema-qualified
    day: date


def ensure_partitions(conn: psycopg.Connection, table: str, first: date, last: date) -> int:
    """Create `table`'s missing day partitions for first..last (inclusive); returns how many.
    Costs one catalog lookup per day when they exist, and takes no lock then."""
    if first > last:
        return 0
    return conn.execute("select ops.ensure_day_partitions(%s::regclass, %s, %s)", (table, first, last)).fetchone()[0]


def ensure_ahead(conn: psycopg.Connection, today: date | None = None) -> int:
    """Today's and the next DAYS_AHEAD days' partitions of every partitioned table (`migrate`)."""
    today = today or datetime.now(UTC).date()
    return sum(ensure_partitions(conn, table, today, today + timedelta(days=DAYS_AHEAD)) for table in PARTITIONED)


def day_partitions(conn: psycopg.Connection, table: str) -> list[Partition]:
    """`table`'s day partitions, oldest first (never the default partition)."""
    rows = conn.execute("select c.oid::regclass::text, c.relname from pg_inherits i join pg_class c on c.oid = "
                        "i.inhrelid where i.inhparent = %s::regclass order by c.relname", (table,)).fetchall()
    found = []
    for name, relname in rows:
        match = DAY_PARTITION.search(relname)
        if match:
            found.append(Partition(table, name, datetime.strptime(match[1], "%Y%m%d").date()))
    return found


def min_keep_days(project_dir: Path | None = None) -> int:
    """The fewest days retention may keep: the longest window of raw events a daily build re-reads
    (dbt vars MART_WINDOWS, e.g. 90 days of e-mail engagement in dim_customers) and the loader's
    lookbacks (a day's files hold lines this many days old)."""
    import yaml

    from ..settings import get_settings

    settings = get_settings()
    project_dir = project_dir or settings.dbt_project_dir
    variables = yaml.safe_load((project_dir / "dbt_project.yml").read_text()).get("vars", {})
    windows = [int(variables[name]) for name in MART_WINDOWS if name in variables]
    return max([*windows, settings.web_lookback_days, settings.email_lookback_days]) + 1


def expired(conn: psycopg.Connection, keep_days: int, as_of: date) -> list[Partition]:
    """The day partitions older than the `keep_days` days that end with `as_of`."""
    first_kept = as_of - timedelta(days=keep_days - 1)
    return [p for table in PARTITIONED for p in day_partitions(conn, table) if p.day < first_kept]


def retention(conn: psycopg.Connection, keep_days: int, as_of: date | None = None,
              dry_run: bool = False) -> list[Partition]:
    """Detach and drop the day partitions older than the `keep_days` days up to `as_of` (default:
    today, UTC); returns them. Each partition goes in its own short transaction (the detach waits for
    the queries reading the table). The default partition is never dropped."""
    least = min_keep_days()
    if keep_days < least:
        raise RetentionRefused(f"--keep-days {keep_days} is below {least}, the longest window of raw events the "
                               "marts' daily build re-reads (dbt vars email_engagement_days, attribution windows, "
                               "the loader's lookbacks): see docs/scaling.md, Retention")
    as_of = as_of or datetime.now(UTC).date()
    old = expired(conn, keep_days, as_of)
    if dry_run:
        return old
    for partition in old:
        with conn.transaction():
            conn.execute(f"alter table {partition.table} detach partition {partition.name}")
            conn.execute(f"drop table {partition.name}")
        log.info("retention: dropped %s (day %s)", partition.name, partition.day)
    return old
