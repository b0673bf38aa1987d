"""Reading what the warehouse pushed to the mailer: outbox/<day>/manifest.json + <audience>.csv.

The manifest written by ecrm.mailer.outbox is ``{"as_of_date": ..., "audiences": {name: {"file",
"rows", "sha256"}}}``; a list of ``{"name"|"audience", "file", "sha256"}`` objects or of names is
accepted too. A file whose sha256 does not match is not sent (a real ESP import would refuse it).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Recipient:
    customer_id: str
    email: str
    first_name: str
    segment: str


@dataclass(frozen=True)
class Audience:
    name: str
    recipients: tuple[Recipient, ...]


def _entries(manifest: object) -> list[dict]:
    """Normalise the accepted manifest shapes to [{"name", "file", "sha256"}] in listed order."""
    audiences = manifest.get("audiences", []) if isinstance(manifest, dict) else manifest
    if isinstance(audiences, dict):
        return [{"name": name, **(info if isinstance(info, dict) else {})} for name, info in audiences.items()]
    entries = []
    for item in audiences or []:
        if isinstance(item, str):
            entries.append({"name": item})
        elif isinstance(item, dict):
            name = item.get("name") or item.get("audience") or Path(str(item.get("file", ""))).stem
            entries.append({**item, "name": name})
    return entries


def _read_audience(folder: Path, entry: dict) -> Audience | None:
    path = folder / str(entry.get("file") or f"{entry['name']}.csv")
    if not path.is_file():
        warnings.warn(f"outbox {folder.name}: {path.name} listed in the manifest is missing", stacklevel=3)
        return None
    data = path.read_bytes()
    expected = str(entry.get("sha256") or entry.get("checksum") or "").lower().removeprefix("sha256:")
    if _HEX64.match(expected) and hashlib.sha256(data).hexdigest() != expected:
        warnings.warn(f"outbox {folder.name}: {path.name} does not match its sha256; not sent", stacklevel=3)
        return None
    rows = csv.DictReader(data.decode("utf-8").splitlines())
    recipients = tuple(Recipient(r["customer_id"].strip(), r["email"].strip(), (r.get("first_name") or "").strip(),
                                 (r.get("segment") or "").strip())
                       for r in rows if r.get("customer_id") and r.get("email"))
    return Audience(str(entry["name"]), recipients)


def read_outbox(outbox: Path, folder_name: str) -> list[Audience] | None:
    """Audiences of one outbox day in manifest order, or None when nothing was pushed that day."""
    folder = outbox / folder_name
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return [a for a in (_read_audience(folder, e) for e in _entries(manifest) if e.get("name")) if a is not None]


def pick_audience(audiences: list[Audience], rotation: int) -> Audience | None:
    """Rotate through the listed audiences, skipping empty ones (week k sends audience k mod n)."""
    n = len(audiences)
    for step in range(n):
        candidate = audiences[(rotation + step) % n]
        if candidate.recipients:
            return candidate
    return None
