"""The outbox mailer: one CSV per audience per day plus a manifest, for ESPs that import files.

Files are written sorted and atomically (temp file + rename), so a rerun of the same day writes
byte-identical files and a reader never sees half a file. The manifest carries each file's row
count and sha256 so the importer can verify what it picked up. The files carry e-mail addresses:
they are created 0600 and the day folder 0700 (owner only, like the landing files), whatever the
umask, and files or folders left by an older version are tightened on the next run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from datetime import date
from pathlib import Path

COLUMNS = ("customer_id", "email", "first_name", "segment")


FILE_MODE = 0o600
FOLDER_MODE = 0o700


def day_folder(outbox: Path, day: date) -> Path:
    """outbox/<day>, created (or tightened) to owner-only."""
    folder = outbox / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    if folder.stat().st_mode & 0o777 != FOLDER_MODE:
        folder.chmod(FOLDER_MODE)
    return folder


def _write_atomic(path: Path, data: bytes) -> None:
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


def write_outbox(outbox: Path, day: date, audiences: dict[str, list[tuple]], extra: dict | None = None) -> dict:
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
        _write_atomic(folder / f"{audience}.csv", data)
        manifest["audiences"][audience] = {"file": f"{audience}.csv", "rows": len(rows),
                                           "sha256": hashlib.sha256(data).hexdigest()}
    _write_atomic(folder / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return manifest

