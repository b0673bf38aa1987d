"""The daily marketing report: `ecrm report DAY` and the publish_segments DAG's `report` task.

Writes <ECRM_REPORTS>/DAY/index.html (one self-contained file: scripts, styles and charts inlined;
renders offline from file:// without a single request), <ECRM_REPORTS>/DAY/email.html (no script,
charts as inlined PNG, inline-styled tables: for browsers and previews) and <ECRM_REPORTS>/DAY/email.eml
(the MIME message to send: charts as cid: parts, a text part, From/To from ECRM_REPORT_FROM/_TO; see
ecrm.report.mail). Reads the marts as the BI role (see ecrm.report.data).
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path


def reports_dir() -> Path:
    from ..settings import get_settings

    return get_settings().reports


def write_report(day: date, url: str | None = None, out: Path | None = None) -> dict:
    """Render `day`'s report; returns {"day", "index", "email", "eml", "seconds"} (seconds: query, then
    each part of the rendering, and total). Only reads the warehouse."""
    from ..settings import get_settings
    from ..warehouse import connect, resolve_url
    from . import data as report_data
    from .render import render

    clock = time.monotonic()
    settings = get_settings()
    root = Path(out) if out else settings.reports
    with connect(url or resolve_url()) as conn:
        figures = report_data.load(conn, day)
    seconds = {"query": round(time.monotonic() - clock, 3)}
    paths = render(figures, root / day.isoformat(), cache_dir=root / ".cache", sender=settings.report_from,
                   recipients=settings.report_to, seconds=seconds)
    seconds["total"] = round(time.monotonic() - clock, 3)
    return {"day": day.isoformat(), **{k: str(v) for k, v in paths.items()}, "seconds": seconds}
