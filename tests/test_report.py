"""The daily marketing report, tested as a person sees it.

One small warehouse built by the real pipeline (simulator -> loaders -> dbt -> gate -> publish, two
days), then `ecrm.report.write_report` for the second day: the figures in both files equal the marts
(recomputed here with SQL, some from other tables than the report reads), nothing personal is in
them, email.html holds no script and only inline PNG images, index.html references nothing outside
itself, and a real headless Chromium opens index.html from file:// with every outside request
aborted and counted (0), no console error, and every chart drawn. email.eml is parsed as a mail
client does (every cid: has its image part, a text part with the headline figures) and sent through
a local SMTP server (tests/smtp_sink.py).
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
import re
import shutil
import smtplib
from collections import Counter
from datetime import date, timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest
from smtp_sink import SmtpSink

from ecrm.intervals import day_interval

ROOT = Path(__file__).resolve().parents[1]
START = date(2026, 10, 1)
DAY1, DAY2 = START, START + timedelta(days=1)
CHROMIUM = "/usr/bin/chromium"
ENV = ("ECRM_DATA_DIR", "ECRM_LANDING", "ECRM_OUTBOX", "ECRM_GX_PROJECT_DIR", "ECRM_REPORTS", "ECRM_REPORT_FROM",
       "ECRM_REPORT_TO")
SENDER = "Shop reports <reports@shop.test>"  # .test: reserved, nobody's address
RECIPIENTS = "Marketing team <marketing@shop.test>, head-of-crm@shop.test"
COMPLETENESS: dict[date, dict] = {}


@pytest.fixture(scope="module")
def built(warehouse, tmp_path_factory):
    """Days 1 and 2 built, gated and published; yields (url, reports folder, write_report's result).
    The web log is delivered rotated at 06:25 shop time (the default): DAY2's run holds its first hours only.
    COMPLETENESS[day] keeps marts.fct_source_completeness_daily as it was after that day's build."""
    from ecrm.pipeline import SOURCES, build_marts, ingest_initial, ingest_interval, publish_segments
    from ecrm.report import write_report
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("report-data")
    gx_dir = data / "expectations"
    shutil.copytree(ROOT / "expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update({"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"),
                       "ECRM_OUTBOX": str(data / "outbox"), "ECRM_GX_PROJECT_DIR": str(gx_dir),
                       "ECRM_REPORTS": str(data / "reports"), "ECRM_REPORT_FROM": SENDER,
                       "ECRM_REPORT_TO": RECIPIENTS})
    try:
        url = warehouse.create_database("report_base")
        sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                            customers=400, seed=16, loyalty=True)
        sim.write_initial()
        ingest_initial(START, url=url)
        for day in (DAY1, DAY2):
            sim.write_day(day)
            for source in SOURCES:
                ingest_interval(source, *day_interval(day), url=url)
            build_marts(*day_interval(day), url=url)
            publish_segments(*day_interval(day), url=url)
            with psycopg.connect(url) as conn:
                built = conn.execute("select to_regclass('marts.fct_source_completeness_daily')").fetchone()[0]
                COMPLETENESS[day] = {(r[0], r[1]): r[2:] for r in conn.execute(
                    "select source, event_date, complete, reason, covered_until from marts.fct_source_completeness_daily")
                } if built else {}
        result = write_report(DAY2, url)
        yield url, data / "reports", result
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside <style>."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def _metrics(html: str) -> dict[str, str]:
    return {unescape(k): v for k, v in re.findall(r'data-metric="([^"]+)" data-value="([^"]*)"', html)}


def _num(value: str) -> float | None:
    return None if value == "" else float(value)


@pytest.fixture(scope="module")
def files(built):
    _, _, result = built
    index, email = Path(result["index"]), Path(result["email"])
    return index, email, index.read_text(encoding="utf-8"), email.read_text(encoding="utf-8")


def test_both_files_are_written_where_ecrm_reports_says(built, files):
    _, reports, result = built
    index, email, _, _ = files
    assert index == reports / DAY2.isoformat() / "index.html" and index.stat().st_size > 100_000
    assert email == reports / DAY2.isoformat() / "email.html" and email.stat().st_size > 10_000
    assert Path(result["eml"]) == reports / DAY2.isoformat() / "email.eml"
    assert result["day"] == DAY2.isoformat()
    assert {"query", "charts", "templates", "mail", "total"} <= result["seconds"].keys()


def test_figures_equal_the_marts(built, files):
    url, _, _ = built
    _, _, index_html, email_html = files
    shown = _metrics(index_html)
    assert shown == _metrics(email_html), "the browser and the e-mail version tell different numbers"
    with psycopg.connect(url) as conn:
        def one(query, *params):
            return conn.execute(query, params).fetchone()

        customers = one("select count(*) from marts.fct_customer_rfm_daily where snapshot_date = %s", DAY2)[0]
        assert _num(shown["customers"]) == customers > 0
        active = one("select count(*) from marts.fct_customer_rfm_daily where snapshot_date = %s and frequency > 0",
                     DAY2)[0]
        assert _num(shown["active_customers"]) == active
        orders, revenue, attributed = one("select orders, revenue, attributed_revenue from marts.fct_attribution_daily "
                                          "where order_date = %s", DAY2)
        assert _num(shown["orders"]) == orders > 0
        assert _num(shown["revenue"]) == pytest.approx(float(revenue))
        assert _num(shown["email_revenue_share"]) == pytest.approx(float(attributed / revenue), abs=1e-6)
        assert _num(shown["average_order_value"]) == pytest.approx(float(round(revenue / orders, 2)))
        for segment, n, money in conn.execute("select segment, count(*), sum(monetary) from "
                                              "marts.fct_customer_rfm_daily where snapshot_date = %s group by 1",
                                              (DAY2,)):
            assert _num(shown[f"segment:{segment}"]) == n
            assert _num(shown[f"segment_revenue:{segment}"]) == pytest.approx(float(money))
        # lifecycle from dim_customers (as of the last build, DAY2): the report reads the RFM snapshots
        for stage, n in conn.execute("select lifecycle_stage, count(*) from marts.dim_customers group by 1"):
            assert _num(shown[f"lifecycle:{stage}"]) == n
        moved = one("select count(*) from marts.fct_segment_transitions where transition_date between %s and %s",
                    DAY2 - timedelta(days=6), DAY2)[0]
        assert _num(shown["moved"]) == moved
        # the site section shows the last complete web day: DAY2's log covers its first hours only
        sessions = one("select sessions from marts.fct_web_kpis_daily where kpi_date = %s", DAY1)
        assert _num(shown["sessions"]) == sessions[0] > 0
        for campaign, money in conn.execute("select campaign_id, attributed_revenue from marts.fct_campaign_kpis "
                                            "where sent_date between %s and %s", (DAY2 - timedelta(days=29), DAY2)):
            assert _num(shown[f"campaign_revenue:{campaign}"]) == pytest.approx(float(money))
        checks = one("select count(*) from ops.quality_results where run_date = %s and checkpoint = 'publish_gate' "
                     "and suite <> 'quarantine'", DAY2)[0]
        assert _num(shown["gate:checks"]) == checks > 0
        assert _num(shown["gate:failed"]) == 0
        for source, loaded in conn.execute(
                "select source, sum(rows_loaded) from ops.load_ledger where status = 'succeeded' and "
                "interval_start = %s group by source", (day_interval(DAY2)[0],)):
            assert _num(shown[f"loaded:{source}"]) == loaded
    # every figure says how it compares: the day before exists, a week before does not (n/a)
    assert index_html.count("vs day before") >= 4 and "n/a" in index_html
    assert f"{DAY2 - timedelta(days=1):%d %b}" in index_html and f"{DAY2 - timedelta(days=7):%d %b}" in index_html
    assert "read as <code>ecrm_bi_reader</code>" in index_html, "the marts were not read through the BI role"


def test_a_day_is_complete_once_a_later_file_covers_its_end(built):
    """The web log rotated at 06:25 Berlin (04:25 UTC in October) leaves DAY2 partial after DAY2's run;
    DAY1 was partial after its own run and became complete when DAY2's file arrived."""
    from datetime import UTC, datetime, time

    after1, after2 = COMPLETENESS[DAY1], COMPLETENESS[DAY2]
    complete, reason, until = after1[("web_logs", DAY1)]
    assert (complete, reason) == (False, "not_yet_covered")
    assert datetime.combine(DAY1, time(4), UTC) <= until < datetime.combine(DAY1, time(4, 26), UTC)
    complete, reason, until = after2[("web_logs", DAY2)]
    assert (complete, reason) == (False, "not_yet_covered")
    assert datetime.combine(DAY2, time(4), UTC) <= until < datetime.combine(DAY2, time(4, 26), UTC)
    assert after2[("web_logs", DAY1)] == (True, "covered", datetime.combine(DAY2, time(0), UTC))
    # lines before the first folder's day (the first file's last hours of the day before): never whole
    assert not [key for key, row in after2.items() if key[1] < DAY1 and row[0]]
    # the ESP export of 02:00 UTC (or no event yet): the run day is partial
    assert after2[("email_events", DAY2)][:2] == (False, "not_yet_covered")
    assert max(day for _, day in after2) == DAY2, "no day after the run date"
    url, _, _ = built
    with psycopg.connect(url) as conn:  # the web marts carry the flag dashboards and metrics filter on
        for table, column in (("fct_web_kpis_daily", "kpi_date"), ("fct_web_pages_daily", "view_date")):
            flags = dict(conn.execute(f"select {column}, bool_and(is_complete_day) from marts.{table} "
                                      f"where {column} in (%s, %s) group by 1", (DAY1, DAY2)).fetchall())
            assert flags == {DAY1: True, DAY2: False}, table


def test_the_site_section_never_compares_a_partial_day(built, files, eml):
    _, _, index_html, email_html = files
    for html in (index_html, email_html):
        site = html[html.index('id="site"'):html.index('id="health"')]
        text = unescape(re.sub(r"<[^>]+>", " ", site))
        assert f"{DAY2:%d %b} is partial" in text, "the partial run day is not marked"
        assert "until 04:" in text, "the note does not say until when the day is covered"
        assert f"Top pages {DAY1:%d %b}" in text and f"Top pages {DAY2:%d %b}" not in text
        # DAY1 is compared with the day before only if that day is whole: it is not (history began mid-day)
        assert not re.search(r"[▲▼] [−+-]?\d", text), "a comparison with a partial day is printed"
    text = eml[1].get_body(preferencelist=("plain",)).get_content()
    assert f"{DAY2:%d %b} is partial" in text


def test_no_personal_data(built, files):
    url, _, _ = built
    _, _, index_html, email_html = files
    with psycopg.connect(url) as conn:
        addresses = [r[0] for r in conn.execute("select email from marts.dim_customers where email is not null")]
    assert len(addresses) > 100
    for html in (index_html, email_html):
        assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", html), "an e-mail address is in the report"
        assert not [a for a in addresses if a in html]


def test_email_has_no_script_and_only_inline_png_images(files):
    _, _, _, email_html = files
    tags = _tags(email_html)
    assert "<script" not in email_html.lower() and not [t for t, _ in tags if t in ("script", "link", "iframe")]
    images = [a["src"] for t, a in tags if t == "img"]
    assert len(images) >= 6
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [a for _, a in tags for k, v in a.items() if k in ("src", "href") and re.match(r"(https?:)?//", v)]
    assert "<style" not in email_html.lower(), "mail clients drop <style>: every style is inline"


def test_index_references_nothing_outside_itself(files):
    _, _, index_html, _ = files
    tags = _tags(index_html)
    assert not [t for t, a in tags if t == "link" or (t == "script" and "src" in a) or t in ("iframe", "img")]
    refs = [v for _, a in tags for k, v in a.items() if k in ("src", "href", "srcset", "action", "poster")]
    assert all(v.startswith(("#", "data:")) for v in refs), refs
    styles = " ".join(re.findall(r"<style[^>]*>(.*?)</style>", index_html, re.S))
    assert "url(" not in styles and "@import" not in styles
    assert '"$schema"' not in index_html  # the specs carry no URL either
    assert index_html.count("window.vegaEmbed=") == 1, "vega-embed is inlined exactly once"


def test_a_segment_has_the_same_colour_in_the_chart_and_the_tables(files):
    _, _, index_html, email_html = files
    specs = json.loads(re.search(r'<script type="application/json" id="chart-specs">(.*?)</script>', index_html,
                                 re.S).group(1))
    scale = specs["segments"]["encoding"]["color"]["scale"]
    chart = dict(zip(scale["domain"], scale["range"], strict=True))
    assert len(set(chart.values())) == len(chart), "two segments share a colour"
    for html in (index_html, email_html):
        table = {unescape(name): colour for colour, name in
                 re.findall(r'<span style="color:(#[0-9a-f]{6})" aria-hidden="true">■</span> ([^<]+)</td>', html)}
        assert len(table) >= 3 and all(chart[name] == colour for name, colour in table.items()), table


@pytest.fixture(scope="session")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium is missing ({CHROMIUM}): the report's browser test needs it. Install it with "
                    "`apt-get install -y chromium` (Debian/Ubuntu, as root; `make test` does this when run as root).",
                    pytrace=False)
    return CHROMIUM


def test_index_renders_offline_in_chromium(files, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    index, _, index_html, _ = files
    expected = set(re.findall(r'data-chart="([^"]+)"', index_html))
    assert {"revenue", "segments", "pareto", "pareto_trend", "lifecycle", "site"} <= expected
    outside, problems = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1200})

            def route(r):
                if r.request.url.startswith("file://"):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.on("requestfailed", lambda r: r.url.startswith("file://") or outside.append(r.url))
            page.goto(index.as_uri())
            page.wait_for_selector("body[data-charts-drawn], body[data-charts-error]", timeout=60_000)
            assert page.get_attribute("body", "data-charts-error") is None
            assert page.get_attribute("body", "data-charts-drawn") == str(len(expected))
            drawn = page.eval_on_selector_all(
                ".chart", "els => els.map(e => [e.dataset.chart, e.querySelectorAll('svg path, svg rect, svg text')"
                          ".length, (e.querySelector('svg') || {}).clientWidth || 0])")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert outside == [], f"the report asked for outside resources: {outside}"
    assert problems == []
    assert {d[0] for d in drawn} == expected
    assert all(marks > 10 and width > 100 for _, marks, width in drawn), drawn
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_the_backtest_section_shows_the_forecasts_backtest_mart(built, files):
    """Predicted vs actual purchases per calibration repeat-purchase group, as marts.fct_clv_backtest
    holds them for the day, in both versions, with its chart."""
    url, _, _ = built
    _, _, index_html, email_html = files
    with psycopg.connect(url) as conn:
        groups = conn.execute("select calibration_repeat_purchases, customers, predicted_orders_mean, "
                              "actual_orders_mean from marts.fct_clv_backtest where snapshot_date = %s order by 1",
                              (DAY2,)).fetchall()
    assert len(groups) >= 3
    for html in (index_html, email_html):
        assert 'data-backtest="done"' in html
        shown = re.findall(r'<tr data-backtest-group="(\d+)">(.*?)</tr>', html, re.S)
        assert [int(g) for g, _ in shown] == [g for g, *_ in groups]
        for (_, row), (_, customers, predicted, actual) in zip(shown, groups, strict=True):
            cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            assert cells[1:] == [f"{customers:,}", f"{predicted:.3f}", f"{actual:.3f}"]
    assert 'data-chart="backtest"' in index_html
    assert 'alt="Backtest: predicted and actual purchases' in email_html  # the chart as an image in the e-mail


def test_the_discounts_and_loyalty_section_shows_the_marts(built, files):
    """Codes used in the last 30 days and the loyalty liability, as the marts hold them (recomputed
    here from the ledger in raw), in both versions; the liability's chart in the browser version."""
    url, _, _ = built
    _, _, index_html, email_html = files
    with psycopg.connect(url) as conn:
        codes = dict(conn.execute("select discount_code, sum(orders) from marts.fct_discount_performance_daily "
                                  "where order_date between %s and %s group by 1",
                                  (DAY2 - timedelta(days=29), DAY2)).fetchall())
        owed = conn.execute("select sum(points) * 0.01 from raw.loyalty_events where occurred_at < %s",
                            (day_interval(DAY2)[1],)).fetchone()[0]
    assert codes and owed > 0
    for html in (index_html, email_html):
        assert '<h2 id="rewards"' in html
        shown = _metrics(html)
        assert {k.split(":", 1)[1]: int(float(v)) for k, v in shown.items() if k.startswith("code_orders:")} == {
            c: n for c, n in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))[:10]}
        assert round(float(shown["loyalty_liability"]), 2) == round(float(owed), 2)
        assert "An association, not an effect" in html
    assert 'data-chart="loyalty_liability"' in index_html


def test_cli_writes_the_report_and_a_day_without_marts_fails_clearly(built, tmp_path, monkeypatch, capsys):
    from ecrm.cli import main
    from ecrm.report import write_report
    from ecrm.report.data import ReportDataMissing

    url, _, _ = built
    monkeypatch.setenv("ECRM_WAREHOUSE_URL", url)
    monkeypatch.delenv("ECRM_REPORT_FROM")
    monkeypatch.delenv("ECRM_REPORT_TO")
    main(["report", DAY1.isoformat(), "--out", str(tmp_path)])  # the first day: nothing to compare with yet
    assert "@" not in capsys.readouterr().out, "an address in the command's output"
    html = (tmp_path / DAY1.isoformat() / "index.html").read_text(encoding="utf-8")
    assert "n/a" in html and 'id="chart-specs"' in html
    assert not re.search(r"<script", (tmp_path / DAY1.isoformat() / "email.html").read_text(), re.I)
    # unconfigured, the message goes to a placeholder that says what to set (and no server delivers)
    msg = email.message_from_bytes((tmp_path / DAY1.isoformat() / "email.eml").read_bytes(), policy=email.policy.default)
    assert [(a.display_name, a.domain) for a in msg["To"].addresses] == [("set ECRM_REPORT_TO", "example.invalid")]
    assert msg["From"].addresses[0].domain == "example.invalid" and "ECRM_REPORT_FROM" in str(msg["From"])
    with pytest.raises(ReportDataMissing, match="ecrm build 2026-10-09"):
        write_report(date(2026, 10, 9), url, out=tmp_path)


# --- email.eml: the message to send ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def eml(built):
    _, _, result = built
    raw = Path(result["eml"]).read_bytes()
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


def _images(msg) -> list:
    return [part for part in msg.walk() if part.get_content_maintype() == "image"]


def test_eml_shows_every_chart_from_its_own_part(files, eml):
    _, _, _, email_html = files
    raw, msg = eml
    assert msg.get_content_type() == "multipart/alternative"
    plain, related = msg.get_payload()
    assert plain.get_content_type() == "text/plain" and related.get_content_type() == "multipart/related"
    assert related.get_payload()[0].get_content_type() == "text/html"
    html = msg.get_body(("html",)).get_content()
    referenced = [src[4:] for t, a in _tags(html) if t == "img" for src in [a["src"]]]
    assert len(referenced) >= 6 and all(a["src"].startswith("cid:") for t, a in _tags(html) if t == "img")
    parts = Counter(p["Content-ID"].strip("<>") for p in _images(msg))
    assert all(parts[cid] == 1 for cid in referenced), "a cid: without exactly one image part"
    assert set(parts) == set(referenced), "an image part the HTML does not show"
    by_cid = {p["Content-ID"].strip("<>"): p for p in _images(msg)}
    shown = [by_cid[cid].get_content() for cid in referenced]
    assert all(p.get_content_type() == "image/png" and p.get_content_disposition() == "inline" for p in by_cid.values())
    # the same charts, in the same places, as email.html's inline images; the same figures
    inline = [base64.b64decode(a["src"].split(",", 1)[1]) for t, a in _tags(email_html) if t == "img"]
    assert shown == inline and all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in shown)
    assert _metrics(html) == _metrics(email_html)
    # what mail clients refuse or fetch: none of it
    assert "<script" not in html.lower() and not [t for t, _ in _tags(html) if t in ("script", "link", "iframe")]
    assert "data:image" not in html and not re.search(r"https?://", html)
    assert not [v for _, a in _tags(html) for v in a.values() if (v or "").strip().lower().startswith("data:")]
    assert len(html.encode()) < 102_000, "Gmail clips an HTML body over 102 KB behind 'View entire message'"
    # 7-bit, short lines: any SMTP hop takes it unchanged
    raw.decode("ascii")
    assert max(len(line) for line in raw.splitlines()) <= 998


def test_eml_headers_and_text_part(built, eml):
    url, _, _ = built
    _, msg = eml
    assert f"{DAY2:%a %d %b %Y}" in msg["Subject"]
    assert str(msg["From"]) == SENDER
    assert [a.addr_spec for a in msg["To"].addresses] == ["marketing@shop.test", "head-of-crm@shop.test"]
    assert msg["Date"].datetime is not None and msg["Message-ID"].startswith(f"<ecrm-report.{DAY2.isoformat()}.")
    assert msg["Auto-Submitted"] == "auto-generated"
    text = msg.get_body(("plain",)).get_content()
    with psycopg.connect(url) as conn:
        customers = conn.execute("select count(*) from marts.fct_customer_rfm_daily where snapshot_date = %s",
                                 (DAY2,)).fetchone()[0]
        orders, revenue, attributed = conn.execute(
            "select orders, revenue, attributed_revenue from marts.fct_attribution_daily where order_date = %s",
            (DAY2,)).fetchone()
        addresses = [r[0] for r in conn.execute("select email from marts.dim_customers where email is not null")]

    def figure(label: str) -> str:
        found = re.search(rf"^  {re.escape(label)} {{2,}}(\S.*?)   vs day before (\S+)", text, re.M)
        assert found, f"no {label} line in the text part"
        return found.group(1)

    assert figure("Customers") == f"{customers:,}"
    assert figure("Orders") == f"{orders:,}"
    assert figure("Revenue") == f"{revenue:,.2f} EUR"
    assert figure("Average order value") == f"{round(revenue / orders, 2):,.2f} EUR"
    assert figure("Revenue from e-mail") == f"{attributed / revenue * 100:.1f}%"
    assert "Quality gate: passed" in text
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            assert not [a for a in addresses if a in part.get_content()], "a customer's address in the e-mail"


def test_eml_goes_through_smtp_unchanged(eml):
    raw, msg = eml
    with SmtpSink() as sink, smtplib.SMTP(sink.host, sink.port, timeout=30) as smtp:
        refused = smtp.send_message(email.message_from_bytes(raw, policy=email.policy.default))
    assert refused == {}
    [(sender, recipients, data)] = sink.messages
    assert sender == "<reports@shop.test>"
    assert recipients == ["<marketing@shop.test>", "<head-of-crm@shop.test>"]
    got = email.message_from_bytes(data, policy=email.policy.default)
    for header in ("Subject", "From", "To", "Message-ID", "Date"):
        assert got[header] == msg[header]
    for kind in ("html", "plain"):  # lines end in CRLF on the wire
        assert got.get_body((kind,)).get_content().splitlines() == msg.get_body((kind,)).get_content().splitlines()
    assert {p["Content-ID"]: p.get_content() for p in _images(got)} == {
        p["Content-ID"]: p.get_content() for p in _images(msg)}


def test_a_report_address_that_is_not_one_is_refused_without_echoing_it():
    from ecrm.report.mail import addresses

    with pytest.raises(ValueError, match="ECRM_REPORT_TO: entry 2 is not an e-mail address") as caught:
        addresses("marketing@shop.test, Jane Doe jane.doe.shop.test", "ECRM_REPORT_TO")
    assert "jane" not in str(caught.value).lower()


def test_money_is_labelled_with_the_shops_currency(built, tmp_path, monkeypatch):
    """ECRM_REPORT_CURRENCY labels every amount, the revenue note and the charts' axes (EUR by default)."""
    from ecrm.report import write_report

    url, _, _ = built
    default_html = Path(built[2]["index"]).read_text(encoding="utf-8")
    assert " EUR" in default_html and " CHF" not in default_html
    monkeypatch.setenv("ECRM_REPORTS", str(tmp_path))
    monkeypatch.setenv("ECRM_REPORT_CURRENCY", "CHF")
    html = Path(write_report(DAY2, url)["index"]).read_text(encoding="utf-8")
    assert " EUR" not in html and "EUR)" not in html
    assert re.search(r"[\d,]+\.\d\d CHF", html) and "in CHF." in html and "Revenue (CHF)" in html
