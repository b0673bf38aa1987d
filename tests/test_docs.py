"""`ecrm docs` behind a firewall: the built site loads nothing from outside and still looks right.

`build_docs` (real dbt `docs generate --static`, real GX Data Docs of a copy of expectations/) against a
migrated warehouse, served by `ecrm docs`' own HTTP server on 127.0.0.1, opened in headless Chromium
with every request not to that server aborted and counted. GX's pages must be styled by bootstrap
(computed styles of bootstrap classes), show font-awesome icons in its web font, draw their vega chart
(an svg or canvas), log no console error, and ask for nothing outside; dbt's page too. The vendored
packages carry their licence files. The project's suites draw no chart (GX 1.x draws one only for
expect_column_kl_divergence_to_be_less_than), so the copy gets one suite that does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHART_SUITE = "docs_chart_probe"
SLOW = pytest.mark.slow  # ≈ 85 s together: dbt's cold parse and GX's import build the site once


@pytest.fixture(scope="module")
def site(warehouse, tmp_path_factory):
    """The docs folder built by build_docs, served on a free port of 127.0.0.1; yields (folder, base URL)."""
    from ecrm.quality.docs import build_docs, docs_server

    data = tmp_path_factory.mktemp("docs")
    gx_dir = data / "expectations"
    shutil.copytree(ROOT / "expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    (gx_dir / "gx" / "expectations" / f"{CHART_SUITE}.json").write_text(json.dumps({
        "id": str(uuid.uuid4()), "name": CHART_SUITE, "meta": {}, "notes": None,
        "expectations": [{"id": str(uuid.uuid4()), "type": "expect_column_kl_divergence_to_be_less_than",
                          "kwargs": {"column": "segment", "threshold": 0.1,
                                     "partition_object": {"values": ["Champions", "Loyal", "Lost"],
                                                          "weights": [0.2, 0.3, 0.5]}},
                          "meta": {}}]}))
    saved = os.environ.get("ECRM_GX_PROJECT_DIR")
    os.environ["ECRM_GX_PROJECT_DIR"] = str(gx_dir)
    try:
        folder = build_docs(warehouse.create_database("docs_base"), data / "site", run_date=date(2026, 10, 1))
    finally:
        if saved is None:
            os.environ.pop("ECRM_GX_PROJECT_DIR", None)
        else:
            os.environ["ECRM_GX_PROJECT_DIR"] = saved
    httpd = docs_server(folder, port=0, quiet=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@SLOW
def test_the_vendored_assets_carry_their_licences(site):
    folder, _ = site
    from ecrm.quality.docs_assets import PACKAGES, VENDOR

    vendor = folder / "gx" / VENDOR
    for package in PACKAGES:
        licences = [p for p in (vendor / package.folder).iterdir() if re.match(r"licen[cs]e", p.name, re.I)]
        assert licences and all(p.stat().st_size > 100 for p in licences), package.name
        for path in package.files.values():
            assert (vendor / package.folder / path).stat().st_size > 100, (package.name, path)
    listing = (vendor / "THIRD-PARTY.txt").read_text()
    assert all(f"{p.name}@{p.version} | {p.licence}" in listing for p in PACKAGES)
    for page in [*folder.rglob("*.html"), *folder.rglob("*.css")]:
        if VENDOR not in page.parts:
            text = page.read_text()
            assert not re.search(r"(cdn\.jsdelivr|unpkg\.com|cdnjs\.cloudflare|code\.jquery|bootstrapcdn|"
                                 r"great-expectations-web-assets)", text), page


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium is missing ({CHROMIUM}): the docs' browser test needs it. Install it with "
                    "`apt-get install -y chromium` (Debian/Ubuntu, as root; `make test` does this when run as root).",
                    pytrace=False)
    return CHROMIUM


STYLE = """() => {
  const s = (sel, prop) => { const e = document.querySelector(sel); return e && getComputedStyle(e)[prop]; };
  const icon = document.querySelector('.fas, .fa, .far');
  return {navbar: s('nav.navbar', 'display'), table: s('table.table', 'borderCollapse'),
          sticky: s('.sticky-top', 'position'),
          icon: icon && getComputedStyle(icon, '::before').fontFamily,
          iconFont: document.fonts.check('900 16px "Font Awesome 6 Free"'),
          charts: document.querySelectorAll('[id$="-graph"] svg, [id$="-graph"] canvas').length};
}"""


@SLOW
def test_the_docs_open_styled_with_charts_and_nothing_from_outside(site, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    folder, base = site
    suite_page = next((folder / "gx" / "expectations").rglob(f"{CHART_SUITE}.html")).relative_to(folder)
    pages = ["index.html", "gx/index.html", "gx/expectations/segment_summary.html", suite_page.as_posix(),
             "dbt/index.html"]
    outside, problems, seen = [], [], {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            def route(r):
                if r.request.url.startswith(base):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status}: {r.url}"))
            for path in pages:
                before = len(problems)
                page.goto(base + path, wait_until="networkidle")
                if path == suite_page.as_posix():
                    page.wait_for_selector('[id$="-graph"] svg, [id$="-graph"] canvas', timeout=30_000)
                page.evaluate("document.fonts.ready")
                seen[path] = page.evaluate(STYLE) if path.startswith("gx/") else None
                page.screenshot(path=str(tmp_path / (path.replace("/", "_") + ".png")))
            dbt_nodes = page.evaluate("document.querySelectorAll('a').length")
            assert pages[-1] == "dbt/index.html"
            problems[before:] = _without_dbt_template_urls(problems[before:])
        finally:
            browser.close()
    assert outside == [], f"the docs asked for outside resources: {outside}"
    assert problems == [], "\n".join(problems)
    for path, style in seen.items():
        if style is None:
            continue
        # bootstrap 4: .navbar is a flexbox, .sticky-top sticks, .table collapses borders
        assert style["navbar"] == "flex" and style["sticky"] == "sticky", (path, style)
        if style["icon"] is not None:  # an icon is drawn with font-awesome's vendored web font
            assert '"Font Awesome 6 Free"' in style["icon"] and style["iconFont"], (path, style)
    assert seen["gx/index.html"]["icon"] is not None
    assert seen["gx/expectations/segment_summary.html"]["table"] == "collapse"
    assert seen[suite_page.as_posix()]["charts"] >= 1
    assert dbt_nodes > 20  # dbt's single-page app rendered its tree


def _without_dbt_template_urls(problems: list[str]) -> list[str]:
    """dbt-docs' own page asks its server for three URLs that are unrendered templates (the favicon's
    `${require(...)}`, the file tree's `<use xlink:href="{{ getIcon(...) }}">`): same-origin 404s that
    happen on any server, online too, with nothing to fetch. Drop those and their console lines only."""
    template = re.compile(r"^(404|failed): \S*/dbt/(%7B%7B|\$%7Brequire)")
    known = [p for p in problems if template.match(p)]
    rest = [p for p in problems if not template.match(p)]
    for _ in range(sum(p.startswith("404") for p in known)):
        rest.remove("error: Failed to load resource: the server responded with a status of 404 (File not found)")
    return rest


def test_a_tarball_that_does_not_match_its_pinned_integrity_is_refused(tmp_path):
    """A registry (or mirror) serving other bytes than the pinned ones never reaches the docs, and a
    corrupted cached copy is fetched again rather than used."""
    from dataclasses import replace

    from ecrm.quality.docs_assets import PACKAGES, AssetError, fetch_tarball

    real = next(p for p in PACKAGES if p.name == "bootstrap-datepicker")  # the smallest tarball (≈ 120 KB)
    forged = replace(real, integrity="sha512-" + "A" * 86 + "==")
    with pytest.raises(AssetError, match="does not match the pinned integrity"):
        fetch_tarball(forged, tmp_path)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / f"{real.folder}.tgz").write_bytes(b"truncated")
    assert fetch_tarball(real, tmp_path)[:2] == b"\x1f\x8b"  # gzip, fetched again and checked
    assert (tmp_path / f"{real.folder}.tgz").stat().st_size > 100_000


def test_a_page_still_loading_from_outside_fails_the_build(tmp_path):
    """Known CDN URLs become relative paths (their CDN integrity attributes dropped); an unknown one (a
    new GX template) stops the build with its URL rather than shipping a page that breaks offline."""
    from ecrm.quality.docs_assets import AssetError, rewrite_pages

    jquery = tmp_path / "_vendor" / "jquery@3.7.1" / "dist" / "jquery.min.js"
    jquery.parent.mkdir(parents=True)
    jquery.write_text("/* jQuery */")
    page = tmp_path / "validations" / "a" / "b.html"
    page.parent.mkdir(parents=True)
    page.write_text('<script src="https://code.jquery.com/jquery-3.7.1.min.js" integrity="sha384-x" '
                    'crossorigin="anonymous"></script><a href="https://greatexpectations.io">GX</a>')
    rewrite_pages(tmp_path, {"https://code.jquery.com/jquery-3.7.1.min.js": jquery})
    assert page.read_text() == ('<script src="../../_vendor/jquery@3.7.1/dist/jquery.min.js"></script>'
                                '<a href="https://greatexpectations.io">GX</a>')  # a link is no load
    (tmp_path / "style.css").write_text("body { background: url('https://cdn.example.com/bg.png') }")
    with pytest.raises(AssetError, match=r"style.css: url\('https://cdn.example.com/bg.png"):
        rewrite_pages(tmp_path, {"https://code.jquery.com/jquery-3.7.1.min.js": jquery})
