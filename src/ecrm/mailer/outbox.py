"""The outbox mailer: one CSV per audience per day plus a manifest, for ESPs that import files.

Files are written sorted and atomically (temp file + rename), so a rerun of the same day writes
byte-identical files and a reader never sees half a file. The manifest carries each file's row
count and sha256 so the importer can verify what it picked up.
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


def _write_atomic(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return  # nothing changed: keep the file (and its mtime) as the ESP last saw it
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_outbox(outbox: Path, day: date, audiences: dict[str, list[tuple]], extra: dict | None = None) -> dict:
    """Write outbox/<day>/<audience>.csv (rows of COLUMNS, sorted) and manifest.json; returns the manifest."""
    folder = outbox / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
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

