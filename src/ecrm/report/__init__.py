"""The daily marketing report: `ecrm report DAY` and the publish_segments DAG's `report` task.

Writes <ECRM_REPORTS>/DAY/index.html (one self-contained file: scripts, styles and charts inlined;
renders offline from file:// without a single request), <ECRM_REPORTS>/DAY/email.html (no script,
charts as inlined PNG, inline-styled tables: for browsers and previews) and <ECRM_REPORTS>/DAY/email.eml
(the MIME message to send: charts as cid: parts, a text part, From/To from ECRM_REPORT_FROM/_TO; see
ecrm.report.mail). Reads the marts as the BI role (see ecrm.report.data). ECRM_REPORTS (or --out) may
be an fsspec URL (s3://bucket/reports): the files then go to object storage, and the vega bundle cache
to this machine's cache folder.
"""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

from upath import UPath


def reports_dir() -> Path | UPath:
    from ..settings import get_settings

    return get_settings().reports


def cache_dir(root: Path | UPath) -> Path:
    """Where the vega bundle is cached: next to the reports when they are local, else this machine's
    cache folder (XDG_CACHE_HOME or ~/.cache), never a round trip to object storage."""
    from ..settings import is_local

    if is_local(root):
        return Path(root) / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ecrm"


def write_report(day: date, url: str | None = None, out: str | os.PathLike | None = None) -> dict:
    """Render `day`'s report; returns {"day", "index", "email", "eml", "seconds"} (seconds: query, then
    each part of the rendering, and total). Only reads the warehouse."""
    from ..settings import get_settings, storage_path
    from ..warehouse import connect, resolve_url
    from . import data as report_data
    from .render import render

    clock = time.monotonic()
    settings = get_settings()
    root = storage_path(out) if out else settings.reports
    with connect(url or resolve_url()) as conn:
        figures = report_data.load(conn, day)
    seconds = {"query": round(time.monotonic() - clock, 3)}
    paths = render(figures, root / day.isoformat(), cache_dir=cache_dir(root), sender=settings.report_from,
                   recipients=settings.report_to, seconds=seconds)
    seconds["total"] = round(time.monotonic() - clock, 3)
    return {"day": day.isoformat(), **{k: str(v) for k, v in paths.items()}, "seconds": seconds}
