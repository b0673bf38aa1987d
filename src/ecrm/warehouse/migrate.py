"""Versioned migrations of the warehouse's own tables (raw, quarantine, ops, mailer, published).

`ecrm warehouse migrate` (also the first task of every DAG, the demo and the tests' databases)
applies the SQL files of migrations/ (`NNNN_name.sql`) that ops.schema_migrations does not list
yet, in order, each in its own transaction, under an advisory lock, so two first runs cannot race.
A warehouse that is up to date is recognised from one read of ops.schema_migrations: a second
`migrate` applies nothing and locks no table. A file changed after it was applied is an error
naming it: write a new migration instead. A file of the folder that does not match the pattern
is an error naming it (never skipped), and a failing migration's error names its file and line.
The stages assume a migrated warehouse (`require_migrated`) and never create tables themselves.

Hand-written rather than alembic or yoyo: the migrations are plain SQL files (there are no
SQLAlchemy models for alembic to compare against), the runner is ~60 lines, and it is one
dependency less. dbt owns its own schemas (intermediate, marts, sync, seeds).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)
MIGRATIONS_DIR = files(__package__).joinpath("migrations")
LOCK = "ecrm-migrate"  # pg_advisory_lock(hashtext(LOCK)): one migrate of a warehouse at a time
FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Entries of the migrations folder that are not migrations (package plumbing, notes); every other
# entry must match FILE_NAME: a migration that does not would otherwise be skipped without a word.
NOT_MIGRATIONS = re.compile(r"^(\.|_|README)")
TABLE = """
create schema if not exists ops;
create table if not exists ops.schema_migrations (
    version     integer primary key,
    name        text not null,
    checksum    text not null,  -- sha256 of the file's bytes
    applied_at  timestamptz not null default now()
);
"""


class WarehouseNotMigrated(RuntimeError):
    """The warehouse lacks migrations this code needs."""


class MigrationError(RuntimeError):
    """The migrations on disk and the ones a warehouse has applied disagree."""


class UnsupportedPostgres(MigrationError):
    """The warehouse's server runs a PostgreSQL major version the SQL here is not written for."""


# The PostgreSQL majors the migrations, dbt models and GX suites are written for (docs/scaling.md,
# "PostgreSQL versions"): no SQL that only a newer major accepts. CI runs the day on 15 and 16.
SUPPORTED_MAJORS = range(14, 18)


def _version_text(version_num: int) -> str:
    """server_version_num as people write it: 150020 -> 15.20, 90624 -> 9.6.24."""
    major, rest = divmod(version_num, 10000)
    if major >= 10:
        return f"{major}.{rest}"
    return f"{version_num // 10000}.{version_num // 100 % 100}.{version_num % 100}"


def check_server_version(version_num: int) -> None:
    """Raise UnsupportedPostgres unless `version_num` (server_version_num) is a supported major.

    Checked before anything is migrated: on an older server a migration or the gate would fail
    later with a syntax error that names neither the version nor what to do."""
    major = version_num // 10000
    if major not in SUPPORTED_MAJORS:
        raise UnsupportedPostgres(
            f"PostgreSQL {_version_text(version_num)} is not supported: the warehouse needs PostgreSQL "
            f"{SUPPORTED_MAJORS[0]} to {SUPPORTED_MAJORS[-1]} (point ECRM_WAREHOUSE_URL at such a server)")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    file: str
    sql: str
    checksum: str


def migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files, in version order (a gap or a duplicate version is an error)."""
    found = []
    for entry in sorted((directory or MIGRATIONS_DIR).iterdir(), key=lambda e: e.name):
        if NOT_MIGRATIONS.match(entry.name):
            continue
        match = FILE_NAME.match(entry.name)
        if not match:
            raise MigrationError(f"migration file {entry.name} does not match the naming pattern NNNN_name.sql "
                                 "(four digits, an underscore, lower-case letters, digits and underscores): rename it")
        data = entry.read_bytes()
        found.append(Migration(int(match[1]), match[2], entry.name, data.decode(), hashlib.sha256(data).hexdigest()))
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise MigrationError(f"migrations must be numbered 0001, 0002, ... without gaps: {[m.file for m in found]}")
    return found


def applied(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of the migrations the warehouse has applied ({} when none)."""
    if not conn.execute("select to_regclass('ops.schema_migrations') is not null").fetchone()[0]:
        return {}
    return {v: (n, c) for v, n, c in conn.execute("select version, name, checksum from ops.schema_migrations")}


def _pending(done: dict[int, tuple[str, str]], wanted: list[Migration]) -> list[Migration]:
    known = {m.version: m for m in wanted}
    for version, (name, checksum) in sorted(done.items()):
        m = known.get(version)
        if m is None:
            raise MigrationError(f"the warehouse has migration {version:04d}_{name}, which this code does not know: "
                                 "it was migrated by a newer version of ecrm")
        if m.checksum != checksum:
            raise MigrationError(f"{m.file} was changed after it was applied to this warehouse (checksum "
                                 f"{checksum[:12]} applied, {m.checksum[:12]} on disk): restore it and put the "
                                 "change in a new migration")
    return [m for m in wanted if m.version not in done]


def migrate(url: str, directory: Path | None = None) -> list[Migration]:
    """Apply the pending migrations; returns those applied by this call ([] when up to date)."""
    wanted = migrations(directory)
    with psycopg.connect(url, autocommit=True, application_name="ecrm-migrate") as conn:
        check_server_version(conn.info.server_version)
        if not _pending(applied(conn), wanted):
            _partitions_ahead(conn)
            return []
        # Session-level lock on an autocommit connection: each statement after it takes a new
        # snapshot, so a migrate that waited here sees what the one before it committed.
        conn.execute("select pg_advisory_lock(hashtext(%s))", (LOCK,))
        try:
            if conn.execute("select to_regclass('ops.schema_version') is not null").fetchone()[0]:
                log.info("warehouse made before migrations (ops.schema_version): 0001 upgrades it in place")
            conn.execute(TABLE)
            done = []
            for m in _pending(applied(conn), wanted):
                with conn.transaction():
                    _apply(conn, m)
                    conn.execute("insert into ops.schema_migrations (version, name, checksum) values (%s, %s, %s)",
                                 (m.version, m.name, m.checksum))
                log.info("applied migration %s", m.file)
                done.append(m)
        finally:
            conn.execute("select pg_advisory_unlock(hashtext(%s))", (LOCK,))
        _partitions_ahead(conn)
    return done


def _partitions_ahead(conn: psycopg.Connection) -> None:
    """Today's and the next days' partitions of the raw history (ecrm.warehouse.retention), once the
    migration that partitions it (0006) is applied; when they exist this reads the catalog only."""
    from .retention import ensure_ahead

    if conn.execute("select to_regprocedure('ops.ensure_day_partitions(regclass, date, date)')").fetchone()[0]:
        with conn.transaction():
            ensure_ahead(conn)


def _apply(conn: psycopg.Connection, m: Migration) -> None:
    """Run one migration's SQL; a failure is a MigrationError naming the file, line and statement."""
    try:
        conn.execute(m.sql)
    except psycopg.Error as exc:
        raise MigrationError(f"migration {m.file} failed{_where(m.sql, exc)}: "
                             f"{(exc.diag.message_primary or str(exc)).strip()}; nothing of it was applied") from exc


def _where(sql: str, exc: psycopg.Error) -> str:
    """` at line N (<statement line>)` from the server's error position, when it reports one."""
    position = exc.diag.statement_position
    if not position or not position.isdigit() or int(position) > len(sql):
        return ""
    offset = int(position) - 1  # 1-based, in characters of the whole file's text
    line_no = sql.count("\n", 0, offset) + 1
    line = sql.splitlines()[line_no - 1].strip()
    return f" at line {line_no} ({line[:120]})"


def require_migrated(conn: psycopg.Connection, directory: Path | None = None) -> None:
    """Raise WarehouseNotMigrated unless every migration of this code is applied (one small read)."""
    latest = len(migrations(directory))
    have = max(applied(conn), default=0)
    if have < latest:
        state = "not migrated" if have == 0 else f"at migration {have:04d}, this code needs {latest:04d}"
        raise WarehouseNotMigrated(f"warehouse {state}: run `ecrm warehouse migrate`")
