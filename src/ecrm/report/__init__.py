"""The daily marketing report: `ecrm report DAY` and the publish_segments DAG's `report` task.

Writes <ECRM_REPORTS>/DAY/index.html (one self-contained file: scripts, styles and charts inlined;
renders offline from file:// without a single request) and <ECRM_REPORTS>/DAY/email.html (no script,
charts as inlined PNG, inline-styled tables). Reads the marts as the BI role (see ecrm.report.data).
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path


def reports_dir() -> Path:
    from ..settings import get_settings

    return get_settings().reports


def write_report(day: date, url: str | None = None, out: Path | None = None) -> dict:
    """Render `day`'s report; returns {"day", "index", "email", "seconds"}. Only reads the warehouse."""
    from ..warehouse import connect, resolve_url
    from . import data as report_data
    from .render import render

    clock = time.monotonic()
    root = Path(out) if out else reports_dir()
    with connect(url or resolve_url()) as conn:
        figures = report_data.load(conn, day)
    queried = time.monotonic() - clock
    paths = render(figures, root / day.isoformat(), cache_dir=root / ".cache")
    return {"day": day.isoformat(), "index": str(paths["index"]), "email": str(paths["email"]),
            "seconds": {"query": round(queried, 3), "total": round(time.monotonic() - clock, 3)}}
