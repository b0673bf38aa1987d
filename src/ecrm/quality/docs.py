"""One local site with the dbt docs and the GX Data Docs: build both, then serve the folder.

`python -m ecrm.quality.docs [--port 8080] [--no-serve]` (or `ecrm docs` once wired into the CLI)
writes .ecrm/docs/{index.html, dbt/index.html, gx/...} and serves it on http://127.0.0.1:8080/.
dbt's `docs generate --static` gives one self-contained HTML file (manifest and catalog inlined),
so the dbt part needs no server-side JSON; GX's site is static HTML already. The CDN assets GX's
pages load (bootstrap, jQuery, font-awesome, vega) are vendored into gx/_vendor/ from the npm
registry and the pages rewritten to them (docs_assets.py), so the site opens behind a firewall.
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import date
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..settings import dbt_target_dir, get_settings

INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>ecrm-warehouse docs</title>
<style>body{{font-family:sans-serif;max-width:42rem;margin:3rem auto;line-height:1.5}}</style></head>
<body><h1>ecrm-warehouse docs</h1>
<ul>
<li><a href="dbt/index.html">dbt docs</a>: models, columns, tests, lineage (built as of {run_date})</li>
<li><a href="gx/index.html">Great Expectations Data Docs</a>: the suites and every gate run's results</li>
</ul>
<p>Quality results per day: <code>select * from ops.quality_results where run_date = '...'</code>;
quarantined rows: <code>ops.quality_quarantine</code>. See docs/quality.md.</p>
</body></html>
"""


def _latest_run_date(url: str) -> date:
    """dbt needs a run_date to compile; use the last published day (else the last built one, else today)."""
    import psycopg

    with psycopg.connect(url) as conn:
        for query in ("select max(as_of_date) from ops.publish_runs",
                      "select max(run_date) from ops.stage_runs where stage = 'build_marts'"):
            try:
                value = conn.execute(query).fetchone()[0]
            except psycopg.errors.UndefinedTable:
                conn.rollback()
                continue
            if value:
                return value
    return date.today()


def build_docs(url: str, out_dir: Path | None = None, run_date: date | None = None) -> Path:
    """Build dbt docs and GX Data Docs into one folder; returns it."""
    from ..transform import run_dbt
    from .docs_assets import vendor_docs_assets
    from .gate import gx_context

    settings = get_settings()
    out = out_dir or settings.root / ".ecrm" / "docs"
    run_date = run_date or _latest_run_date(url)
    shutil.rmtree(out, ignore_errors=True)
    (out / "dbt").mkdir(parents=True)
    run_dbt(["docs", "generate", "--static", "--vars", json.dumps({"run_date": run_date.isoformat()})], url)
    shutil.copy(dbt_target_dir(settings.dbt_project_dir) / "static_index.html", out / "dbt" / "index.html")

    context = gx_context()
    sites = context.build_data_docs()  # renders every stored validation result and suite
    site = Path(next(iter(sites.values())).removeprefix("file://")).parent
    shutil.copytree(site, out / "gx")
    vendor_docs_assets(out / "gx")  # GX's pages load bootstrap, jQuery, font-awesome, vega from CDNs
    (out / "index.html").write_text(INDEX.format(run_date=run_date.isoformat()))
    return out


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the stdlib's name)
        pass


def docs_server(folder: Path, port: int = 8080, host: str = "127.0.0.1", quiet: bool = False) -> ThreadingHTTPServer:
    """An HTTP server for `folder` (port 0: any free port); the caller runs serve_forever()."""
    handler = _QuietHandler if quiet else SimpleHTTPRequestHandler
    return ThreadingHTTPServer((host, port), partial(handler, directory=str(folder)))


def serve(folder: Path, port: int = 8080, host: str = "127.0.0.1") -> None:
    """Serve `folder` until interrupted (local only: 127.0.0.1 by default)."""
    with docs_server(folder, port, host) as httpd:
        print(f"docs at http://{host}:{port}/  (Ctrl-C stops)", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> None:
    from ..warehouse import resolve_url

    parser = argparse.ArgumentParser(description="build and serve the dbt docs and the GX Data Docs")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--no-serve", action="store_true", help="only build the site")
    args = parser.parse_args(argv)
    folder = build_docs(resolve_url())
    print(f"built {folder}")
    if not args.no_serve:
        serve(folder, args.port)


if __name__ == "__main__":
    main()
