"""The outbox mailer: one CSV per audience per day plus a manifest, for ESPs that import files.

Files are written sorted and atomically (temp file + rename), so a rerun of the same day writes
byte-identical files and a reader never sees half a file. The manifest carries each file's row
count and sha256 so the importer can verify what it picked up. The files carry e-mail addresses:
they are created 0600 and the day folder 0700 (owner only, like the landing files), whatever the
umask, and files or folders left by an older version are tightened on the next run.

ECRM_OUTBOX may also be an fsspec URL (s3://bucket/outbox, ...): workers on other machines then write
one shared outbox. There an object is replaced whole by one PUT (a reader never sees half of it) and
access is the bucket's policy, not file modes (docs/scaling.md, "Shared storage").
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from datetime import date
from pathlib import Path

import psycopg
from upath import UPath

from ..settings import is_local, storage_path
from .config import MailerConfig
from .state import roomy_statements
from .types import Member, MemberResult

COLUMNS = ("customer_id", "email", "first_name", "segment")


FILE_MODE = 0o600
FOLDER_MODE = 0o700


def day_folder(outbox: Path | UPath, day: date) -> Path | UPath:
    """outbox/<day>, created (or tightened) to owner-only; on object storage a prefix, nothing to create."""
    folder = outbox / day.isoformat()
    if not is_local(folder):
        return folder
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    if folder.stat().st_mode & 0o777 != FOLDER_MODE:
        folder.chmod(FOLDER_MODE)
    return folder


def write_atomic(path: Path | UPath, data: bytes) -> None:
    if not is_local(path):
        if not (path.exists() and path.read_bytes() == data):  # unchanged: keep the object as it is
            path.write_bytes(data)  # one PUT: readers see the old object or the new one, never a part
        return
    if path.exists() and path.read_bytes() == data:
        if path.stat().st_mode & 0o777 != FILE_MODE:
            path.chmod(FILE_MODE)  # written by an older version: tighten, keep content and mtime
        return  # nothing changed: keep the file (and its mtime) as the ESP last saw it
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an existing .tmp keeps its old mode through O_CREAT
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
    finally:
        if fd != -1:
            os.close(fd)
    os.replace(tmp, path)


def write_outbox(outbox: Path | UPath, day: date, audiences: dict[str, list[tuple]], extra: dict | None = None) -> dict:
    """Write outbox/<day>/<audience>.csv (rows of COLUMNS, sorted) and manifest.json from rows in memory;
    returns the manifest. (The adapter streams the same files from the database: OutboxAdapter.end.)"""
    folder = day_folder(outbox, day)
    manifest: dict = {"as_of_date": day.isoformat(), "audiences": {}, **(extra or {})}
    for audience in sorted(audiences):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        rows = sorted(audiences[audience], key=lambda r: (r[0], r[1]))
        writer.writerows(rows)
        data = buffer.getvalue().encode()
        write_atomic(folder / f"{audience}.csv", data)
        manifest["audiences"][audience] = {"file": f"{audience}.csv", "rows": len(rows),
                                           "sha256": hashlib.sha256(data).hexdigest()}
    write_atomic(folder / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return manifest


def _same_content(path: Path | UPath, size: int, digest: str) -> bool:
    """Does the file or object at `path` hold exactly these bytes (same size, same sha256)?"""
    try:
        if path.stat().st_size != size:
            return False
    except FileNotFoundError:
        return False
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            sha.update(block)
    return sha.hexdigest() == digest


def copy_to_file(conn: psycopg.Connection, path: Path | UPath, query: str, params: dict | tuple = ()) -> dict:
    """Stream `COPY (query) TO STDOUT` into `path` with the guarantees of write_atomic: locally a 0600
    temp file renamed over the old one (a reader never sees half a file), on object storage one PUT of
    the whole object; an unchanged file or object is not rewritten (locally its mode is tightened).
    Returns {"rows", "sha256"} (rows as COPY counted them)."""
    sha, size = hashlib.sha256(), 0
    local = is_local(path)
    if local:
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # an existing .tmp keeps its old mode through O_CREAT
        sink = os.fdopen(fd, "wb")
    else:
        sink = io.BytesIO()
    with conn.cursor() as cur:
        try:
            with sink, cur.copy(f"copy ({query}) to stdout with (format csv, header)", params) as copy:
                for chunk in copy:
                    sha.update(chunk)
                    size += len(chunk)
                    sink.write(chunk)
                data = None if local else sink.getvalue()
        except BaseException:
            if local:
                tmp.unlink(missing_ok=True)
            raise
        rows = cur.rowcount
    digest = sha.hexdigest()
    if _same_content(path, size, digest):  # unchanged: keep the file (and its mtime) as the ESP last saw it
        if local:
            tmp.unlink()
            if path.stat().st_mode & 0o777 != FILE_MODE:
                path.chmod(FILE_MODE)  # written by an older version: tighten, keep content and mtime
    elif local:
        os.replace(tmp, path)
    else:
        path.write_bytes(data)  # one PUT: readers see the old object or the new one, never a part
    return {"rows": rows, "sha256": digest}


# The day's confirmed changes (of every run of the target that day), as changes.csv lists them.
CHANGES_SQL = """
select c.action, c.audience, c.customer_id, s.email, s.first_name, c.segment, c.reason
from mailer.sync_changes as c
inner join mailer.sync_runs as r on r.run_id = c.run_id and r.audience = c.audience
left join lateral (  -- by primary key, per change: the day's changes are a few percent of the state
    select email, first_name from mailer.audience_state as s
    where s.target = r.target and s.audience = c.audience and s.email_hash = c.email_hash
) as s on true
where r.target = %(target)s and r.day = %(day)s and c.result = 'sent'
order by c.audience, c.action, c.customer_id, c.email_hash
"""
# An audience's file: its members as the ESP has them, sorted by customer id and address (byte order).
AUDIENCE_SQL = """
select customer_id, email, first_name, segment
from mailer.audience_state
where target = %(target)s and audience = %(audience)s and is_member
order by customer_id collate "C", email collate "C"
"""


class OutboxAdapter:
    """Files for ESPs that import them: outbox/<day>/<audience>.csv with the full audience as pushed
    (the simulator sends campaigns to it) + manifest.json, plus changes.csv with the day's adds,
    updates and removes. Everything is rendered from mailer.audience_state and the audit tables after
    the batches are committed, so the files only ever hold members that passed the push-time checks,
    and a rerun rewrites byte-identical files (unchanged files are not even touched)."""

    name = "outbox"
    set_wise = True  # the sync applies the diff with statements (ecrm.mailer.sync._send_set_wise); apply() is unused

    def __init__(self, config: MailerConfig) -> None:
        self.outbox = storage_path(config.outbox)
        self.target = config.target or "outbox"
        self.manifest: dict = {}

    def preflight(self, audiences: list[str]) -> None:
        return None

    def begin(self, conn: psycopg.Connection, day: date) -> dict:
        return {"outbox": str(self.outbox / day.isoformat())}

    def apply(self, audience: str, action: str, members: list[Member], idempotency_key: str) -> list[MemberResult]:
        return [MemberResult(m.email_hash, "sent") for m in members]  # end() writes the files from state

    def end(self, conn: psycopg.Connection, day: date, run_id: int) -> dict:
        # The published audiences: the day's after a full push (the sync checked that published holds
        # `day`), the last published day's after a compliance-only push (the day's gate blocked): then
        # the files hold those audiences as the ESP now has them, the day's compliance removals applied.
        # Each file is one COPY TO streamed from mailer.audience_state / the audit, never rows in Python.
        published = conn.execute("select max(as_of_date) from published.audience_members").fetchone()[0]
        audiences = [a for (a,) in conn.execute("select distinct audience from published.audience_members")]
        folder = day_folder(self.outbox, day)
        with conn.transaction():  # the audiences' sorts in memory (set local: until the end of these reads)
            return self._write_files(conn, day, folder, published, audiences)

    def _write_files(self, conn: psycopg.Connection, day: date, folder: Path | UPath, published: date | None,
                     audiences: list[str]) -> dict:
        roomy_statements(conn)
        changes = copy_to_file(conn, folder / "changes.csv", CHANGES_SQL, {"target": self.target, "day": day})
        manifest: dict = {"as_of_date": day.isoformat(), "audiences": {},
                          "changes": {"file": "changes.csv", **changes}}
        if published is not None and published != day:
            manifest |= {"mode": "compliance_only", "published_as_of": published.isoformat()}
        for audience in sorted(audiences):
            written = copy_to_file(conn, folder / f"{audience}.csv", AUDIENCE_SQL,
                                   {"target": self.target, "audience": audience})
            manifest["audiences"][audience] = {"file": f"{audience}.csv", **written}
        write_atomic(folder / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        self.manifest = manifest
        return {"manifest": self.manifest}

    def close(self) -> None:
        return None
