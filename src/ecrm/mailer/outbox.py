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
    """Write outbox/<day>/<audience>.csv (rows of COLUMNS, sorted) and manifest.json; returns the manifest."""
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


class OutboxAdapter:
    """Files for ESPs that import them: outbox/<day>/<audience>.csv with the full audience as pushed
    (the simulator sends campaigns to it) + manifest.json, plus changes.csv with the day's adds,
    updates and removes. Everything is rendered from mailer.audience_state and the audit tables after
    the batches are committed, so the files only ever hold members that passed the push-time checks,
    and a rerun rewrites byte-identical files (unchanged files are not even touched)."""

    name = "outbox"

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
        published = conn.execute("select max(as_of_date) from published.audience_members").fetchone()[0]
        audiences: dict[str, list[tuple]] = {a: [] for (a,) in conn.execute(
            "select distinct audience from published.audience_members")}
        for audience, *row in conn.execute(
                "select audience, customer_id, email, first_name, segment from mailer.audience_state "
                "where target = %s and is_member order by audience, customer_id", (self.target,)):
            if audience in audiences:
                audiences[audience].append(tuple(row))
        changes = conn.execute(
            """
            select c.action, c.audience, c.customer_id, s.email, s.first_name, c.segment, coalesce(c.reason, '')
            from mailer.sync_changes as c
            inner join mailer.sync_runs as r on r.run_id = c.run_id and r.audience = c.audience
            left join mailer.audience_state as s
                on s.target = r.target and s.audience = c.audience and s.email_hash = c.email_hash
            where r.target = %s and r.day = %s and c.result = 'sent'
            order by c.audience, c.action, c.customer_id, c.email_hash
            """, (self.target, day)).fetchall()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(("action", "audience", "customer_id", "email", "first_name", "segment", "reason"))
        writer.writerows(changes)
        data = buffer.getvalue().encode()
        folder = day_folder(self.outbox, day)
        write_atomic(folder / "changes.csv", data)
        extra: dict = {"changes": {"file": "changes.csv", "rows": len(changes),
                                   "sha256": hashlib.sha256(data).hexdigest()}}
        if published is not None and published != day:
            extra |= {"mode": "compliance_only", "published_as_of": published.isoformat()}
        self.manifest = write_outbox(self.outbox, day, audiences, extra)
        return {"manifest": self.manifest}

    def close(self) -> None:
        return None
