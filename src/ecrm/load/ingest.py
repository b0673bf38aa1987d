"""Load one source's files of one day folder into raw.*, in one transaction.

The shape of every load: checksum the files, skip what the ledger says is already loaded, stream
each file through its parser into a temporary table with COPY (bad rows go to the quarantine with
file, line and reason), merge into raw.* (upsert, latest version wins, or append the file's rows,
replacing an earlier load of the same file), and record rows read / loaded / quarantined in
ops.load_ledger. Either the whole folder lands or nothing does: a file-level problem (missing,
empty, cut-off gzip, schema drift) rolls it all back and leaves a `failed` ledger row naming the file.

Event time decides the day, the folder decides when it arrived: a file in day D's folder is loaded
whole, each line into the day of its own timestamp, within the load's *window*: from D minus the
source's lookback (web logs 3 days, e-mail events 7; shop rows have none, they merge by
`updated_at`) to the end of D plus a small clock skew. Older lines are quarantined as `too_late`
with the command that loads them (`ecrm ingest SOURCE DAY --file PATH`, `ingest_file` here), later
ones as `future_timestamp`.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import queue
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatch
from functools import partial
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.copy import QueuedLibpqWriter

from .. import lineage
from ..sources import FileError, Reject, RowBlock, email, loyalty, shop, weblogs
from ..sources.common import MAX_FIELD, MAX_LINE
from ..warehouse import ensure_visitor_key
from ..warehouse.migrate import require_migrated

log = logging.getLogger(__name__)


class _NoRefusedValues(logging.Filter):
    """psycopg logs the error that ended a COPY it was already abandoning ("error ignored terminating
    ...") with the server's message, which quotes the refused value (an e-mail address, say): keep
    its SQLSTATE only. The value itself is kept in the quarantine, which BI cannot read."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("error ignored terminating") and len(record.args or ()) == 2:
            copy, error = record.args
            record.args = (copy, f"SQLSTATE {getattr(error, 'sqlstate', None) or type(error).__name__}")
        return True


logging.getLogger("psycopg").addFilter(_NoRefusedValues())


@dataclass(frozen=True)
class FileKind:
    """One kind of landing file and how its rows reach raw.*."""

    name: str                                  # ledger source, quarantine source
    table: str                                 # raw table
    columns: tuple[str, ...]                   # raw columns the parser fills, in order
    parse: Callable                            # (path, interval) -> Iterator[(line, row | Reject)]
    merge: str                                 # "upsert" | "replace_interval"
    key: tuple[str, ...]
    interval_column: str
    required: bool = True
    direct: bool = False   # files normally only add rows: try COPY straight into raw.* first
    lookback: str | None = None  # Settings attribute: days before the folder's day whose lines load
    # a file with no row is a day without events, not a broken export (a small program's ledger);
    # a CSV still needs its header row
    empty_ok: bool = False

    def window(self, interval: tuple[datetime, datetime]) -> tuple[datetime, datetime]:
        """The timestamps a file of the day [start, end) may load: [start - lookback, end + skew)."""
        from ..settings import get_settings

        settings = get_settings()
        start = interval[0] - timedelta(days=getattr(settings, self.lookback)) if self.lookback else NO_LOWER_BOUND
        return start, interval[1] + timedelta(minutes=settings.clock_skew_minutes)


NO_LOWER_BOUND = datetime(1, 1, 2, tzinfo=UTC)  # upserts take any past updated_at (the latest version wins)


LINE_KEY = ("_load_id", "_line")  # rows keyed by their place in the file: unique by construction
WEB_COLUMNS = ("requested_at", "remote_addr", "remote_user", "method", "path", "query_string", "protocol",
               "status", "bytes_sent", "referrer", "user_agent", "is_bot", "is_static", "utm_source",
               "utm_medium", "utm_campaign", "customer_token", "order_id")
EVENT_COLUMNS = ("event_id", "event", "email", "occurred_at", "campaign_id", "customer_id", "is_machine_open",
                 "bounce_type", "reason", "url")


def _csv_kind(name: str, direct: bool = False) -> FileKind:
    spec = shop.SPECS[name]
    return FileKind(name, name, spec.columns, partial(shop.parse_shop_file, spec), "upsert", spec.key,
                    spec.timestamp_column, direct=direct)


# Each source (one DAG) is a list of file kinds: (kind, file name patterns in the day's folder).
SOURCES: dict[str, list[tuple[FileKind, tuple[str, ...]]]] = {
    "shop": [
        (_csv_kind("customers"), ("customers.csv", "customers.csv.gz", "customers.jsonl", "customers.jsonl.gz")),
        (_csv_kind("orders"), ("orders.csv", "orders.csv.gz", "orders.jsonl", "orders.jsonl.gz")),
        # Lines are exported with their new order: a day's file normally only adds rows.
        (_csv_kind("order_lines", direct=True),
         ("order_lines.csv", "order_lines.csv.gz", "order_lines.jsonl", "order_lines.jsonl.gz")),
    ],
    "weblogs": [
        (FileKind("web_logs", "web_requests", WEB_COLUMNS, weblogs.parse_access_log, "replace_file",
                  ("_load_id", "_line"), "requested_at", direct=True, lookback="web_lookback_days"),
         ("access.log*", "*.log", "*.log.*")),
    ],
    "email": [
        (FileKind("email_events", "email_events", EVENT_COLUMNS, email.parse_events, "replace_file",
                  ("event_id",), "occurred_at", lookback="email_lookback_days"),
         ("events.jsonl", "events.jsonl.gz", "events.csv", "events.csv.gz")),
        (FileKind("email_campaigns", "email_campaigns", ("campaign_id", "name", "sent_at", "audience", "variant",
                                                        "discount_code"),
                  email.parse_campaigns, "upsert", ("campaign_id",), "sent_at", required=False),
         ("campaigns.jsonl", "campaigns.jsonl.gz")),
    ],
    # Optional: the loyalty app's points ledger, loaded with the shop's files (pipeline.ingest_interval);
    # a shop without a loyalty program has no landing/loyalty folder and loads nothing here.
    "loyalty": [
        (FileKind("loyalty_events", "loyalty_events", loyalty.COLUMNS, loyalty.parse_events, "replace_file",
                  ("event_id",), "occurred_at", required=False, lookback="loyalty_lookback_days", empty_ok=True),
         ("ledger.csv", "ledger.csv.gz", "ledger.jsonl", "ledger.jsonl.gz")),
    ],
}


@dataclass
class FileResult:
    source: str
    file: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    extra_columns: list[str] = field(default_factory=list)


def checksum(path) -> tuple[str, int]:
    """sha256 of the file's content (of what a .gz holds, so a log compressed by the next rotation
    is still the same content) and the file's size in bytes."""
    import gzip
    import zlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        stream = gzip.GzipFile(fileobj=handle) if str(path).endswith(".gz") else handle
        try:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        except (EOFError, gzip.BadGzipFile, zlib.error):  # the load names the cut; key it by its bytes
            handle.seek(0)
            digest = hashlib.sha256(b"corrupt gzip\0")
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        size = handle.seek(0, 2)
    return digest.hexdigest(), size


def find_files(folder, patterns: tuple[str, ...]) -> list:
    """Everything in `folder` whose name matches a pattern, sorted by name; works for pathlib and
    fsspec paths. Not only files: a directory, a FIFO or a symlink to nothing under a file's name is
    found too, so that `landing_file` can refuse it naming it instead of the day going on without it."""
    if not folder.exists():
        return []
    found = {p for pattern in patterns for p in folder.glob(pattern)}
    return sorted(found, key=lambda p: p.name)


def _local(path) -> Path | None:
    """`path` on the local file system (pathlib, or a file:// UPath), or None for a remote one (s3://...),
    where there are no symlinks to follow."""
    if isinstance(path, Path):
        return path
    if getattr(path, "protocol", None) in ("file", "local"):
        return Path(path.path)
    return None


def file_key(path, landing) -> str:
    """Where a file is in the landing zone (SOURCE/DAY/NAME): what its loads are keyed by, so that a zone
    that moved (ECRM_LANDING changed, another mount point) still finds them. A file outside the zone
    (`ecrm ingest --file` of an archived copy) is keyed by its full path."""
    local, zone = _local(path), _local(landing)
    text, root = (os.path.abspath(local), os.path.abspath(zone)) if local and zone else (str(path), str(landing))
    prefix = root.rstrip("/") + "/"
    return text[len(prefix):] if text.startswith(prefix) else text


def landing_file(path, landing) -> str:
    """Check that `path` is a regular file that can be read and, when it is in the landing zone, that it
    really is (its real path, symlinks followed, stays in the zone); returns its key (`file_key`).

    Anything else fails the source-day with a FileError naming the file: a symlink out of the zone
    (it would copy, say, /etc/passwd into the quarantine), a symlink loop or one to nothing, a
    directory or FIFO under a file's name (opening a FIFO would wait forever), an unreadable file.
    The target of a symlink is not named: a path can hold a person's name (/home/ann/...)."""
    display, local, zone = str(path), _local(path), _local(landing)
    if local is None or zone is None:
        if not path.is_file():
            raise FileError(display, "not a regular file")
        return file_key(path, landing)
    try:
        real = local.resolve(strict=True)
    except RuntimeError as exc:  # Python 3.11 reports a symlink loop so
        raise FileError(display, "cannot be read: a symlink loop") from exc
    except FileNotFoundError as exc:
        why = "a symlink to nothing" if local.is_symlink() else "missing file"
        raise FileError(display, f"cannot be read: {why}") from exc
    except OSError as exc:
        why = "a symlink loop" if exc.errno == errno.ELOOP else exc.strerror or type(exc).__name__
        raise FileError(display, f"cannot be read: {why}") from exc
    inside = os.path.abspath(local).startswith(os.path.abspath(zone).rstrip("/") + "/")
    if inside and not real.is_relative_to(zone.resolve()):
        raise FileError(display, "a symlink to a file outside the landing zone: refused")
    if not stat.S_ISREG(real.stat().st_mode):
        raise FileError(display, "not a regular file (a directory, FIFO or device under a file's name)")
    try:
        with real.open("rb"):
            pass
    except OSError as exc:
        raise FileError(display, f"cannot be read: {exc.strerror or type(exc).__name__}") from exc
    return file_key(path, landing)


def _checksum(path) -> tuple[str, int]:
    """`checksum`, with a read error (permissions changed, I/O error) as a FileError naming the file."""
    try:
        return checksum(path)
    except OSError as exc:
        raise FileError(str(path), f"cannot be read: {exc.strerror or type(exc).__name__}") from exc


def day_folder(landing, source: str, day: date | str):
    return landing / source / (day if isinstance(day, str) else day.isoformat())


@dataclass(frozen=True)
class Permits:
    """What the operator allows a re-delivered file to do to its earlier load (both refused by default:
    an empty or truncated file is far more often a broken export than a day without traffic)."""

    empty: bool = False   # `--allow-empty`: a file with no loadable row may load / replace a load that had rows
    shrink: bool = False  # `--allow-shrink`: a file may replace its load with < ECRM_MIN_REPLACE_SHARE of its rows


def ingest(conn: psycopg.Connection, source: str, folder, interval: tuple[datetime, datetime],
           run_id: str | None = None, allow_empty: bool = False, allow_shrink: bool = False,
           landing=None) -> list[FileResult]:
    """Load every file of `source` in the day folder `folder` (the day [start, end) = `interval`);
    returns one result per file.

    `landing` is the landing zone's root (default: two levels above the day folder, the zone's layout
    being landing/SOURCE/DAY): files must really be in it, and loads are keyed by the path below it.
    `allow_empty` / `allow_shrink`: see `Permits`."""
    landing = folder.parent.parent if landing is None else landing

    def plan() -> list[tuple[FileKind, object, str]]:
        found = []
        for kind, patterns in SOURCES[source]:
            files = find_files(folder, patterns)
            if not files and kind.required:
                raise FileError(f"{folder}/{patterns[0]}", "missing file: nothing was loaded for this day")
            found += [(kind, path, landing_file(path, landing)) for path in files]
        return found

    return _run(conn, source, folder, interval, run_id, plan, lambda kind: kind.window(interval),
                Permits(allow_empty, allow_shrink))


def ingest_file(conn: psycopg.Connection, source: str, path, day: date, run_id: str | None = None,
                allow_empty: bool = False, allow_shrink: bool = False, landing=None) -> list[FileResult]:
    """Load one file for an older day: `ecrm ingest SOURCE DAY --file PATH`, what a `too_late`
    quarantine row asks for. The load's window reaches back from DAY; if the file's content was
    loaded before (from a later day's folder, which quarantined these lines), that load is replaced
    by this one with a window covering both, so every line is loaded once. `landing`: the landing
    zone's root (default three levels above the file: landing/SOURCE/DAY/NAME)."""
    from ..intervals import day_interval

    interval = day_interval(day)
    landing = path.parent.parent.parent if landing is None else landing
    kinds = [kind for kind, patterns in SOURCES[source] if any(fnmatch(path.name, p) for p in patterns)]
    if not kinds:
        raise FileError(str(path), f"not a {source} file name ({', '.join(p for _, ps in SOURCES[source] for p in ps)})")
    windows: dict[str, tuple[datetime, datetime]] = {}

    def plan() -> list[tuple[FileKind, object, str]]:
        if not path.exists() and not path.is_symlink():
            raise FileError(str(path), "missing file")
        key = landing_file(path, landing)
        digest, _ = _checksum(path)
        earlier = conn.execute(
            "select min(window_start), max(window_end) from ops.load_ledger where source = %s and checksum = %s "
            "and status = 'succeeded'", (kinds[0].name, digest)).fetchone()
        start, end = kinds[0].window(interval)
        if earlier[0] is not None:
            start, end = min(start, earlier[0]), max(end, earlier[1])
        windows[kinds[0].name] = (start, end)
        return [(kinds[0], path, key)]

    return _run(conn, source, path.parent, interval, run_id, plan, lambda kind: windows[kind.name],
                Permits(allow_empty, allow_shrink), reload=True)


def _run(conn, source: str, folder, interval, run_id, plan: Callable, window: Callable, permits: Permits,
         reload: bool = False) -> list[FileResult]:
    """One load of `source`: a committed `ops.ingest_runs` row, then all files in one transaction.

    Whatever ends the load early closes its run as `failed` with a `failed` ledger row: a FileError
    names the file; anything else (a bug) names the folder and keeps its traceback."""
    with lineage.job(f"ecrm.ingest.{source}", f"load {source}'s landing files into raw.*") as run:
        results = _run_files(conn, source, folder, interval, run_id, plan, window, permits, reload, run)
    return results


def _run_files(conn, source: str, folder, interval, run_id, plan: Callable, window: Callable, permits: Permits,
               reload: bool, run) -> list[FileResult]:
    require_migrated(conn)
    with conn.transaction():
        ensure_visitor_key(conn)  # ECRM_VISITOR_KEY, stored before dbt builds what the load brings
    ingest_run = _begin_run(conn, source, folder, interval, run_id)
    try:
        files = [(kind, path, key, *_checksum(path)) for kind, path, key in plan()]
        for kind in dict.fromkeys(k for k, *_ in files):
            _ensure_day_partitions(conn, kind, window(kind))
        results: list[FileResult] = []
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"ecrm-load-{source}",))
            _abandon_dead_runs(conn, source, ingest_run)
            for kind in dict.fromkeys(k for k, *_ in files):
                todo = [(p, key, d, s) for k, p, key, d, s in files if k is kind]
                results.extend(_load_kind(conn, kind, todo, interval, window(kind), folder, run_id, permits,
                                          reload))
    except FileError as exc:
        _record_failure(conn, source, exc.file, interval, run_id, str(exc), ingest_run)
        raise
    except Exception as exc:
        _record_failure(conn, source, str(folder), interval, run_id,
                        f"{folder}: unexpected {type(exc).__name__}: {_first_line(exc)}", ingest_run)
        raise
    _end_run(conn, ingest_run, "succeeded", None)
    if run:  # OpenLineage (ecrm.lineage): per file kind, its landing files in, its raw table and the quarantine out
        url = lineage.conn_url(conn)
        for kind in dict.fromkeys(k for k, *_ in files):
            tables = [f"raw.{kind.table}", *(["raw.order_status_history"] if kind.name == "orders" else []),
                      "quarantine.rejected_rows"]
            run.child(f"ecrm.ingest.{source}.{kind.name}", [lineage.file(p) for k, p, *_ in files if k is kind],
                      [lineage.table(url, t) for t in tables], f"load {kind.name} files into raw.{kind.table}")
    return results


def _ensure_day_partitions(conn, kind: FileKind, window: tuple[datetime, datetime]) -> None:
    """The day partitions of the days the file's lines may belong to (its window: the folder's day and
    the lookback before it), created in their own short transaction before the load's: creating one
    locks the table, which the load would otherwise hold until it commits. A row outside them (there
    should be none: the window quarantines it) still lands, in the table's default partition."""
    from ..warehouse.retention import PARTITIONED, ensure_partitions

    table = f"raw.{kind.table}"
    if table not in PARTITIONED:
        return
    start, end = (moment.astimezone(UTC) for moment in window)
    with conn.transaction():
        created = ensure_partitions(conn, table, start.date(), (end - timedelta(microseconds=1)).date())
    if created:
        log.info("%s: created %d day partition(s) for %s .. %s", table, created, start.date(), end.date())


def _begin_run(conn, source: str, folder, interval, run_id) -> int:
    """A committed `running` row, so that a run killed mid-load leaves a trace the next run can see."""
    return conn.execute(
        "insert into ops.ingest_runs (source, folder, interval_start, interval_end, run_id, backend_pid, "
        "backend_start) select %s, %s, %s, %s, %s, pid, backend_start from pg_stat_activity "
        "where pid = pg_backend_pid() returning ingest_run_id",
        (source, str(folder), *interval, run_id)).fetchone()[0]


def _abandon_dead_runs(conn, source: str, ingest_run: int) -> None:
    """Runs of this source still `running` whose database session is gone were killed (process, machine
    or server): mark them abandoned. Their load transaction rolled back with the session, so nothing
    of theirs is in raw.*; a live session (a concurrent run waiting for the lock) is left alone."""
    abandoned = conn.execute(
        "update ops.ingest_runs r set status = 'abandoned', finished_at = now(), abandoned_by = %s, "
        "error = 'the run''s session ended before it finished (killed process or lost server); nothing of it "
        "was committed' where r.source = %s and r.status = 'running' and r.ingest_run_id <> %s and not exists "
        "(select 1 from pg_stat_activity a where a.pid = r.backend_pid and a.backend_start = r.backend_start) "
        "returning ingest_run_id", (ingest_run, source, ingest_run)).fetchall()
    if abandoned:
        log.warning("ingest %s: marked %d killed run(s) abandoned: %s", source, len(abandoned),
                    [r[0] for r in abandoned])


def _end_run(conn, ingest_run: int, status: str, error: str | None) -> None:
    conn.execute("update ops.ingest_runs set status = %s, error = %s, finished_at = now() "
                 "where ingest_run_id = %s", (status, error, ingest_run))


def _load_kind(conn, kind: FileKind, files, interval, window, folder, run_id, permits: Permits,
               reload: bool = False) -> list[FileResult]:
    """Load the files of one kind. Content already loaded (this file unchanged, or the same content
    in another folder or under another name) is skipped; a changed file replaces its own earlier
    load (the same key: SOURCE/DAY/NAME in the landing zone), never rows that other files loaded
    (replace_file), or merges by key (upsert)."""
    results: list[FileResult] = []
    for path, key, digest, size in files:
        earlier = conn.execute(
            "select load_id, file, file_key from ops.load_ledger where source = %s and checksum = %s "
            "and status = 'succeeded' order by load_id desc limit 1", (kind.name, digest)).fetchone()
        if earlier is not None and not reload:
            why = (f"unchanged since load {earlier[0]}" if earlier[2] == key
                   else f"same content as {earlier[1]}, already loaded")
            conn.execute(
                "insert into ops.load_ledger (source, file, file_key, folder, file_size, checksum, interval_start, "
                "interval_end, window_start, window_end, run_id, rows_read, rows_loaded, rows_quarantined, status, "
                "error, finished_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0, 0, "
                "'skipped_duplicate', %s, now())",
                (kind.name, str(path), key, str(folder), size, digest, *interval, *window, run_id, why))
            results.append(FileResult(kind.name, str(path), "skipped_duplicate"))
            continue
        replaced_rows = 0
        if kind.merge == "replace_file":
            # The file's earlier loads (same key; on a reload, the same content) go, with their
            # quarantine rows; other files' rows stay whatever days they hold.
            replaced = [r[0] for r in conn.execute(
                "update ops.load_ledger set status = 'replaced' where source = %s and status = 'succeeded' "
                "and (file_key = %s or (%s and checksum = %s)) returning load_id",
                (kind.name, key, reload, digest)).fetchall()]
            if replaced:
                replaced_rows = conn.execute("select coalesce(sum(rows_loaded), 0)::bigint from ops.load_ledger "
                                             "where load_id = any(%s)", (replaced,)).fetchone()[0]
                conn.execute("delete from quarantine.rejected_rows where _load_id = any(%s)", (replaced,))
                conn.execute(f"delete from raw.{kind.table} where _load_id = any(%s)", (replaced,))
        result = _load_file(conn, kind, path, key, digest, size, interval, window, folder, run_id, permits.empty)
        if replaced_rows:
            _refuse_shrinking(result, replaced_rows, permits)
        results.append(result)
    return results


def min_replace_share() -> float:
    """ECRM_MIN_REPLACE_SHARE (default 0.5): the least share of its earlier load's rows a re-delivered
    file must keep to replace that load without `--allow-shrink`."""
    from ..settings import get_settings

    share = get_settings().min_replace_share
    if not 0 <= share <= 1:
        raise ValueError(f"ECRM_MIN_REPLACE_SHARE must be between 0 and 1, not {share}")
    return share


def _refuse_shrinking(result: FileResult, replaced_rows: int, permits: Permits) -> None:
    """A re-delivered file that would replace its earlier load with none, or far fewer, of its rows fails
    the source-day naming it and both counts (a web log cut to its first line, an event export
    truncated with the day's bounces and unsubscribes in the lost part). Judged file by file: a new
    file beside a gutted one does not make up for it."""
    loaded = result.rows_loaded
    if loaded == 0 and not permits.empty:
        raise FileError(result.file, f"would replace the {replaced_rows:,} rows loaded from this file with none; "
                        "if that really is right, load it with --allow-empty")
    share = min_replace_share()
    if 0 < loaded < share * replaced_rows and not permits.shrink:
        raise FileError(result.file, f"would replace the {replaced_rows:,} rows loaded from this file with "
                        f"{loaded:,}, less than {share:.0%} of them (cut off or truncated?); if that really is "
                        "right, load it with --allow-shrink")


def _load_file(conn, kind: FileKind, path, key: str, digest: str, size: int, interval, window, folder, run_id,
               allow_empty: bool = False) -> FileResult:
    """One file, with every error turned into a FileError naming it (the caller rolls back and records it)."""
    display = str(path)
    try:
        return _load_file_rows(conn, kind, path, key, digest, size, interval, window, folder, run_id, allow_empty)
    except FileError:
        raise
    except psycopg.OperationalError as exc:  # the server went away (killed, restarted, network)
        raise FileError(display, f"lost the warehouse connection while loading: {_first_line(exc)}") from exc
    except psycopg.Error as exc:
        where = f" ({exc.diag.context.strip()})" if exc.diag.context else ""
        raise FileError(display, f"the warehouse refused the file's rows: {_first_line(exc)}{where}") from exc
    except Exception as exc:  # a parser bug must still name the file and leave a ledger row
        raise FileError(display, f"unexpected {type(exc).__name__} while loading: {exc}") from exc


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# A row the parser let through but PostgreSQL's input functions refuse (SQLSTATE class 22: a week-date
# timestamp, Arabic-Indic digits, ...; a NOT NULL or CHECK constraint), or text that cannot even be
# encoded for it (a lone surrogate): the file is loaded again with such rows isolated and quarantined
# (`rejected_by_warehouse`). Lost connections and other server errors still fail the file.
ROW_REFUSED = (psycopg.errors.DataError, psycopg.errors.NotNullViolation, psycopg.errors.CheckViolation,
               UnicodeEncodeError)


def _load_file_rows(conn, kind: FileKind, path, key: str, digest: str, size: int, interval, window, folder,
                    run_id, allow_empty: bool) -> FileResult:
    display = str(path)
    began = time.perf_counter()
    load_id = conn.execute(
        "insert into ops.load_ledger (source, file, file_key, folder, file_size, checksum, interval_start, "
        "interval_end, window_start, window_end, run_id, status) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
        "%s, 'running') returning load_id",
        (kind.name, display, key, str(folder), size, digest, *interval, *window, run_id)).fetchone()[0]
    extra: list[str] = []
    streamed = None
    isolate = False
    if kind.direct:
        # Fast path: COPY straight into raw.* while parsing, as fast as a raw COPY of the file would
        # be. A key that already exists (or repeats within the file) rolls back to the savepoint and
        # the file goes the general way below; that costs a second parse, so only kinds that
        # normally only add rows take this path.
        try:
            with conn.transaction():
                streamed = _stream(conn, kind, path, window, f"raw.{kind.table}", display, load_id, extra)
        except psycopg.errors.UniqueViolation as exc:
            log.info("%s: %s; loading it through staging and merge instead", display, exc.diag.message_detail)
        except ROW_REFUSED as exc:
            _log_refused(display, exc)
            isolate = True
        if streamed is None:
            extra.clear()
    late_rejects = 0
    if streamed is None:
        staging = f"incoming_{kind.table}"
        conn.execute(f"create temp table if not exists {staging} (like raw.{kind.table}) on commit drop")
        conn.execute(f"truncate {staging}")
        streamed = (_stream(conn, kind, path, window, staging, display, load_id, extra, isolate=True) if isolate
                    else _stream_or_isolate(conn, kind, path, window, staging, display, load_id, extra))
        late_rejects = _reject_duplicates(conn, kind, staging, load_id) + _merge(conn, kind, staging, load_id, display)
    read, rejects = streamed
    if read == 0 and kind.merge == "replace_file" and not (allow_empty or kind.empty_ok):
        raise FileError(display, "empty file: no lines (a broken export or rotation?); "
                        "load it with --allow-empty if the interval really had none")
    quarantined = rejects + late_rejects
    loaded = read - quarantined
    conn.execute("update ops.load_ledger set rows_read = %s, rows_loaded = %s, rows_quarantined = %s, "
                 "quarantined_by_code = (select jsonb_object_agg(reason_code, n) from (select reason_code, count(*) "
                 "as n from quarantine.rejected_rows where _load_id = %s group by 1) as codes), "
                 "status = 'succeeded', error = %s, finished_at = now() where load_id = %s",
                 (read, loaded, quarantined, load_id, f"extra columns ignored: {', '.join(extra)}" if extra else None,
                  load_id))
    log.info("%s: read %d, loaded %d, quarantined %d in %.2f s", display, read, loaded, quarantined,
             time.perf_counter() - began)
    return FileResult(kind.name, display, "succeeded", read, loaded, quarantined, extra)


def _stream_or_isolate(conn, kind: FileKind, path, window, target: str, display: str, load_id: int,
                       extra: list[str]) -> tuple[int, int]:
    """The whole file in one COPY under a savepoint; if PostgreSQL refuses a row of it, the file again
    with the refused rows isolated (`_IsolatingCopy`). The happy path pays one savepoint per file."""
    try:
        with conn.transaction():
            return _stream(conn, kind, path, window, target, display, load_id, extra)
    except ROW_REFUSED as exc:
        _log_refused(display, exc)
        extra.clear()
    return _stream(conn, kind, path, window, target, display, load_id, extra, isolate=True)


def _log_refused(display: str, exc: BaseException) -> None:
    """The SQLSTATE only: the server's message quotes the refused value, which may be personal data
    (it is kept in the quarantine, which BI cannot read)."""
    code = getattr(exc, "sqlstate", None) or type(exc).__name__
    log.warning("%s: the warehouse refused a row (%s); loading the file again with such rows quarantined "
                "as rejected_by_warehouse", display, code)


def _stream(conn, kind: FileKind, path, interval, target: str, display: str, load_id: int,
            extra: list[str], isolate: bool = False) -> tuple[int, int]:
    """Parse `path` and COPY its good rows into `target`, its rejects into the quarantine.

    Returns (rows read, rows rejected). Rejects wait in a spooled temporary file (memory up to
    8 MB, then disk) because one connection cannot run two COPYs at once. With `isolate`, rows are
    sent in blocks that PostgreSQL may refuse one by one (`_IsolatingCopy`); without, in one COPY.
    """
    columns = (*kind.columns, "_file", "_line", "_load_id")
    copy_sql = f"copy {target} ({', '.join(columns)}) from stdin"
    file_text = _copy_text(display)
    file_field, load_field = f"\t{file_text}\t", f"\t{load_id}\n"
    buffer: list[str] = []
    read = rejected = 0
    with tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+") as rejects:
        def quarantine(line_no: int, reject: Reject) -> None:
            nonlocal rejected
            rejected += 1
            rejects.write("\t".join(map(_copy_text, (kind.name, display, line_no, reject.code, _clean(reject.reason),
                                                     _clean(reject.raw_text), load_id))) + "\n")

        with _copy_in(conn, copy_sql, isolate, quarantine) as write:
            for item in _with_file_errors(kind.parse(path, interval, extra_columns=extra), display):
                if isinstance(item, RowBlock):
                    read += len(item)
                    write(_copy_block(item, file_text, load_id))
                    continue
                line_no, row = item
                read += 1
                if not isinstance(row, Reject):
                    # COPY text lines built here and sent in ~1 MB chunks: ~5x cheaper than write_row per row.
                    line = _copy_line(row)
                    if "\x00" not in line and len(line) <= MAX_FIELD:
                        buffer.append(line + file_field + str(line_no) + load_field)
                        if len(buffer) >= 5000:
                            write("".join(buffer))
                            buffer.clear()
                        continue
                    row = _guard(kind, row)  # the rare long line, or a NUL no parser checks for
                    if not isinstance(row, Reject):
                        buffer.append(line + file_field + str(line_no) + load_field)
                        continue
                quarantine(line_no, row)
            if buffer:
                write("".join(buffer))
        if rejected:
            rejects.seek(0)
            with conn.cursor().copy("copy quarantine.rejected_rows (source, _file, _line, reason_code, reason, "
                                    "raw_text, _load_id) from stdin") as copy:
                while chunk := rejects.read(1 << 20):
                    copy.write(chunk)
    return read, rejected


@contextmanager
def _copy_in(conn, copy_sql: str, isolate: bool, quarantine: Callable) -> Iterator[Callable]:
    """A `write(chunk)` of COPY text lines into one COPY (the fast path), or, with `isolate`, into
    `_IsolatingCopy` blocks whose refused rows go to `quarantine`."""
    if isolate:
        yield _IsolatingCopy(conn, copy_sql, quarantine).write
        return
    cursor = conn.cursor()
    with cursor.copy(copy_sql, writer=_BoundedWriter(cursor)) as copy:
        yield copy.write


class _IsolatingCopy:
    """COPY that quarantines the rows PostgreSQL refuses and loads the rest (`rejected_by_warehouse`).

    Used only after the one-COPY fast path failed on such a row, so the happy path pays nothing:
    each block of lines (a RowBlock, or up to 5,000 rows) is one COPY under a savepoint; a refused
    block is split in halves, each retried under its own savepoint, down to the refused rows. k bad
    rows in a block of n cost about 2k·log2(n) small COPYs."""

    def __init__(self, conn, copy_sql: str, quarantine: Callable) -> None:
        self.conn, self.copy_sql, self.quarantine = conn, copy_sql, quarantine
        self.encoding = conn.info.encoding

    def write(self, chunk: str | memoryview) -> None:
        text = chunk if isinstance(chunk, str) else bytes(chunk).decode(self.encoding)
        lines = []
        for line in text.split("\n")[:-1]:  # every line ends with one; COPY escapes those in values
            try:
                lines.append(f"{line}\n".encode(self.encoding))
            except UnicodeEncodeError as exc:  # a lone surrogate: no encoding can send it
                self._refuse(f"{line}\n", f"the warehouse cannot store it: {exc.reason} (character {exc.start} of the row)")
        self._copy(lines)

    def _copy(self, lines: list[bytes]) -> None:
        if not lines:
            return
        try:
            with self.conn.transaction(), self.conn.cursor().copy(self.copy_sql) as copy:
                copy.write(b"".join(lines))
        except ROW_REFUSED as exc:
            if len(lines) == 1:
                self._refuse(lines[0].decode(self.encoding), _server_message(exc))
                return
            half = len(lines) // 2
            self._copy(lines[:half])
            self._copy(lines[half:])

    def _refuse(self, line: str, reason: str) -> None:
        values, _file, line_no, _load_id = line.rstrip("\n").rsplit("\t", 3)
        self.quarantine(int(line_no), Reject("rejected_by_warehouse", reason, values))


def _server_message(exc: BaseException) -> str:
    """What PostgreSQL said about the row: its message and where (`COPY t, line 1, column c: "value"`)."""
    diag = getattr(exc, "diag", None)
    if diag is None or not diag.message_primary:
        return f"the warehouse refused the row: {_first_line(exc)}"
    where = f" ({diag.context.strip().splitlines()[0]})" if diag.context else ""
    return f"the warehouse refused the row: {diag.message_primary}{where}"


def _guard(kind: FileKind, row: tuple) -> tuple | Reject:
    """Checks every parser's rows get here, where the row is about to be sent: PostgreSQL text cannot
    hold NUL (raw, or `\\u0000` in JSON), and no text field may exceed MAX_FIELD characters."""
    texts = [(name, v) for name, v in zip(kind.columns, row, strict=False) if isinstance(v, str)]
    raw = ",".join(v for _, v in texts)
    with_nul = [name for name, v in texts if "\x00" in v]
    if with_nul:
        return Reject("nul_byte", f"NUL character in {', '.join(with_nul)}", raw)
    too_long = [f"{name} ({len(v):,} characters)" for name, v in texts if len(v) > MAX_FIELD]
    if too_long:
        return Reject("too_long", f"longer than {MAX_FIELD:,} characters: {', '.join(too_long)}", raw)
    return row


def _clean(text: str | None) -> str | None:
    """Quarantine text as PostgreSQL can store it: NUL shown as \\x00, a lone surrogate (which no
    encoding can send) as \\udXXX, at most MAX_LINE characters."""
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_LINE:
        text = f"{text[:MAX_LINE]}... [{len(text):,} characters in all]"
    return text


class _BoundedWriter(QueuedLibpqWriter):
    """psycopg's writer thread, so that parsing and the server's COPY overlap on two cores instead
    of taking turns, with a short queue: psycopg's own holds up to 1024 chunks of 128 KB, and when
    the server is the slower side that backlog (not the file size) set the loader's peak memory."""

    def __init__(self, cursor) -> None:
        super().__init__(cursor)
        self._queue = queue.Queue(maxsize=32)  # 32 x 128 KB in flight at most


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value) -> str:
    """One value in PostgreSQL's COPY text format (NULL is \\N; backslash, tab, newlines escaped)."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    text = value if isinstance(value, str) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def _copy_line(row: tuple) -> str:
    """A row as one COPY text line. Values are joined inline and the joined line is checked once
    for characters that need escaping (rare), which is ~3x cheaper than escaping value by value."""
    try:
        line = "\t".join(row)  # all text: the common case for CSV sources
        parts = row
    except TypeError:
        parts = ["\\N" if v is None else ("t" if v is True else "f" if v is False else (v if v.__class__ is str else str(v)))
                 for v in row]
        line = "\t".join(parts)
    # Every NULL marker holds one backslash; any other backslash, a tab, or a newline needs escaping.
    if line.count("\\") != row.count(None) or "\n" in line or "\r" in line or line.count("\t") != len(parts) - 1:
        return "\t".join(map(_copy_text, row))
    return line


def _copy_block(block: RowBlock, file_text: str, load_id: int) -> memoryview:
    """A RowBlock as COPY text lines, joined column-wise in C++ (its values need no escaping)."""
    lines = pc.binary_join_element_wise(
        *block.columns, pa.scalar(file_text), pc.cast(block.line_numbers, pa.string()), pa.scalar(f"{load_id}\n"),
        pa.scalar("\t"), null_handling="replace", null_replacement="\\N")
    # A string array keeps its values back to back: the payload is its data buffer between the
    # first and the last offset, sent without another copy.
    offsets, data = lines.buffers()[1:3]
    bounds = np.frombuffer(offsets, dtype=np.int32)[lines.offset:lines.offset + len(lines) + 1]
    return memoryview(data)[bounds[0]:bounds[-1]]


def _with_file_errors(rows: Iterator, display: str) -> Iterator:
    try:
        yield from rows
    except FileError as exc:
        raise FileError(display, exc.reason, exc.line) from None


def _reject_duplicates(conn, kind: FileKind, staging: str, load_id: int) -> int:
    """Quarantine all but the last occurrence of a key repeated within one file.

    A cheap hash aggregate finds repeated keys; the window query only runs when there are some.
    """
    if kind.key == LINE_KEY:
        return 0
    keys = ", ".join(kind.key)
    repeated = conn.execute(f"select 1 from {staging} group by {keys} having count(*) > 1 limit 1").fetchone()
    if not repeated:
        return 0
    ranked = (f"select ctid as row_ctid, _file, _line, row_number() over (partition by {keys} order by _line desc) "
              f"as occurrence, concat_ws('/', {keys}) as key_text from {staging}")
    rows = conn.execute(
        "insert into quarantine.rejected_rows (source, _file, _line, reason_code, reason, raw_text, _load_id) "
        f"select %s, _file, _line, 'duplicate_in_file', 'duplicate {'/'.join(kind.key)} ' || key_text || ' within the file "
        f"(a later line wins)', key_text, %s from ({ranked}) r where occurrence > 1 returning _line",
        (kind.name, load_id)).fetchall()
    conn.execute(f"delete from {staging} s using ({ranked}) r where s.ctid = r.row_ctid and r.occurrence > 1")
    return len(rows)


def _merge(conn, kind: FileKind, staging: str, load_id: int, display: str) -> int:
    """Move staged rows into raw.*; returns how many were rejected at this stage (already loaded ids)."""
    all_columns = (*kind.columns, "_file", "_line", "_load_id")
    cols = ", ".join(all_columns)
    if kind.table == "orders":
        conn.execute("insert into raw.order_status_history (order_id, status, updated_at, _load_id) "
                     f"select order_id, status, updated_at, _load_id from {staging} on conflict do nothing")
    if kind.merge == "upsert":
        keys = ", ".join(kind.key)
        updates = ", ".join(f"{c} = excluded.{c}" for c in all_columns if c not in kind.key)
        newer = f"excluded.{kind.interval_column} >= raw.{kind.table}.{kind.interval_column}"
        if kind.table == "email_campaigns":
            newer = "true"
        conn.execute(f"insert into raw.{kind.table} ({cols}) select {cols} from {staging} "
                     f"on conflict ({keys}) do update set {updates} where {newer}")
        return 0
    # replace_interval: the interval's rows were deleted; ids seen in other intervals are duplicates.
    duplicates = 0
    if kind.key != LINE_KEY:
        # One join of the staged ids with the whole history, whose deleted rows are the quarantine's:
        # at 1M customers (500k events against 6.8M) the join is ~3 s, and it ran twice before.
        duplicates = conn.execute(
            f"with duplicate as (delete from {staging} s using raw.{kind.table} r where "
            + " and ".join(f"s.{k} = r.{k}" for k in kind.key)
            + f" returning s._file, s._line, s.{kind.key[0]} as key_text, r._file as first_file) "
            "insert into quarantine.rejected_rows (source, _file, _line, reason_code, reason, raw_text, _load_id) "
            "select %s, _file, _line, 'duplicate_event', 'duplicate of an event already loaded from ' || first_file, "
            "key_text, %s from duplicate", (kind.name, load_id)).rowcount
    conn.execute(f"insert into raw.{kind.table} ({cols}) select {cols} from {staging}")
    return duplicates


def _record_failure(conn, source: str, file: str, interval, run_id, error: str,
                    ingest_run: int | None = None) -> None:
    try:
        with conn.transaction():
            conn.execute(
                "insert into ops.load_ledger (source, file, file_size, checksum, interval_start, interval_end, "
                "run_id, status, error, finished_at) values (%s, %s, 0, '', %s, %s, %s, 'failed', %s, now())",
                (source, file, *interval, run_id, error))
            if ingest_run is not None:
                _end_run(conn, ingest_run, "failed", error)
    except psycopg.Error as exc:  # the server is gone: the run stays `running` until the next one abandons it
        log.error("ingest %s: could not record the failure (%s); the next run marks run %s abandoned",
                  source, _first_line(exc), ingest_run)
