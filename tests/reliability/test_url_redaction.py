"""Defect 6 (issue 26): e-mail addresses and identifier parameters in URLs never leave raw.

A simulated shop's day plus hostile access-log lines (an address in the path, percent-encoded in
the path, in a referrer's query, a reset token with an address, an address in utm_content, a session
id as a matrix parameter) goes through the real pipeline: ingest, dbt build, publish, report. raw
keeps the lines (and BI cannot read raw); intermediate, the web marts (read by ecrm_bi_reader) and
the report files (index.html, email.html, email.eml) hold none of the addresses or tokens, the
redacted paths group into one page, and utm parameters survive. The redacted parameter names are
data (dbt var url_identifier_params), and docs/formats.md lists exactly them."""

from __future__ import annotations

import email
import email.policy
import os
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import errors

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 10, 1)
HITS = 150  # per hostile line, each from its own address: the hostile pages are the day's top pages
SECRETS = ("ann@example.com", "carl%40example.net", "dora@example.com", "eve%40example.com", "s3cr3tT0ken",
           "fred@example.com", "gail@example.com", "JSESS10NID", "hank%2540example.org")
HOSTILE = [  # (path and query, referrer)
    ("/account/ann@example.com/orders", "-"),
    ("/account/carl%40example.net/orders", "-"),
    ("/product/p-1", "https://webmail.example.org/compose?to=dora@example.com&subject=hello"),
    ("/password/reset?token=s3cr3tT0ken&Email=eve%40example.com", "-"),
    ("/landing?utm_source=Newsletter&utm_medium=email&utm_content=fred@example.com&utm_campaign=c-1", "-"),
    ("/search?q=gail@example.com", "-"),
    ("/login;jsessionid=JSESS10NID", "https://shop.example.com/cart?ct=0123456789abcdef&e=hank%2540example.org"),
]


def hostile_lines() -> list[str]:
    lines = []
    for n, (target, referrer) in enumerate(HOSTILE):
        for i in range(HITS):
            at = datetime(DAY.year, DAY.month, DAY.day, 9 + n, 0, tzinfo=UTC) + timedelta(seconds=7 * i)
            lines.append(f'198.51.{n}.{i} - - [{at:%d/%b/%Y:%H:%M:%S +0000}] "GET {target} HTTP/1.1" 200 512 '
                         f'"{referrer}" "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"')
    return lines


@pytest.fixture(scope="module")
def built(warehouse, tmp_path_factory):
    """One day of a simulated shop plus the hostile lines: ingested, built, published, reported."""
    from ecrm import pipeline, transform
    from ecrm.intervals import day_interval
    from ecrm.publish import publish
    from ecrm.report import write_report
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("redact")
    saved = {k: os.environ.get(k) for k in ("ECRM_DATA_DIR", "ECRM_LANDING", "ECRM_OUTBOX")}
    os.environ.update({"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"),
                       "ECRM_OUTBOX": str(data / "outbox")})
    try:
        sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=DAY,
                            customers=300, seed=26, delivery="shop,email")
        sim.write_initial()
        url = warehouse.create_database(f"redact_{uuid.uuid4().hex[:8]}")
        pipeline.ingest_initial(DAY, url=url)
        sim.write_day(DAY)
        (data / "landing" / "weblogs" / DAY.isoformat() / "hostile.log").write_text("\n".join(hostile_lines()) + "\n")
        for source in pipeline.SOURCES:
            pipeline.ingest_interval(source, *day_interval(DAY), url=url)
        transform.build(DAY, url)
        with psycopg.connect(url, autocommit=True) as conn:
            publish(conn, DAY)
        report = write_report(DAY, url, out=data / "reports")
        yield url, report
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _leaks(texts) -> list[str]:
    return sorted({s for text in texts if text for s in SECRETS if s.lower() in text.lower()})


def test_raw_keeps_the_lines_where_bi_cannot_read_them(built):
    url, _ = built
    with psycopg.connect(url, autocommit=True) as conn:
        raw = [r[0] + "?" + (r[1] or "") + " " + (r[2] or "") for r in conn.execute(
            "select path, query_string, referrer from raw.web_requests where _file like '%%hostile.log'")]
        assert len(raw) == len(HOSTILE) * HITS and _leaks(raw) == sorted(SECRETS)
        conn.execute("set role ecrm_bi_reader")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("select path from raw.web_requests limit 1")


def test_no_address_or_token_below_raw(built):
    url, _ = built
    with psycopg.connect(url) as conn:
        texts = [v for row in conn.execute(
            "select path, query_string, referrer, remote_user, utm_source, utm_medium, utm_campaign "
            "from staging.stg_web__requests") for v in row]
        texts += [v for row in conn.execute("select path, query_string, referrer from intermediate.int_web_page_views")
                  for v in row]
        texts += [v for row in conn.execute("select landing_path, exit_path, referrer from intermediate.int_web_sessions")
                  for v in row]
        assert _leaks(texts) == []
        # and what the redaction left: one page for every account, utm values, the structure of each URL
        views = dict(conn.execute("select path || coalesce('?' || query_string, ''), count(*) "
                                  "from intermediate.int_web_page_views where path not like '/p/%%' group by 1"))
        assert views["/account/[email]/orders"] == 2 * HITS
        assert views["/password/reset?token=[redacted]&Email=[redacted]"] == HITS
        assert views["/landing?utm_source=Newsletter&utm_medium=email&utm_content=[email]&utm_campaign=c-1"] == HITS
        assert views["/search?q=[email]"] == HITS and views["/login;jsessionid=[redacted]"] == HITS
        referrers = {r[0] for r in conn.execute("select distinct referrer from intermediate.int_web_page_views")}
        assert {"https://webmail.example.org/compose?to=[redacted]&subject=hello",
                "https://shop.example.com/cart?ct=[redacted]&e=[redacted]"} <= referrers
        assert conn.execute("select count(*) from intermediate.int_web_page_views where utm_source = 'newsletter' "
                            "and utm_campaign = 'c-1'").fetchone()[0] == HITS


def test_the_bi_role_reads_no_address_in_the_web_marts(built):
    url, _ = built
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set role ecrm_bi_reader")
        pages = dict(conn.execute("select path, page_views from marts.fct_web_pages_daily where view_date = %s", (DAY,)))
        sessions = [v for row in conn.execute("select referrer, landing_path, exit_path from marts.fct_web_sessions")
                    for v in row]
    assert _leaks([*pages, *sessions]) == []
    assert pages["/account/[email]/orders"] == 2 * HITS  # one page, not one per address
    assert "https://webmail.example.org/compose?to=[redacted]&subject=hello" in sessions


def _eml_texts(raw: bytes) -> list[str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return [part.get_content() for part in msg.walk() if part.get_content_maintype() == "text"]


def test_the_report_files_hold_no_address(built):
    _, report = built
    index = Path(report["index"]).read_text(encoding="utf-8")
    mail = Path(report["email"]).read_text(encoding="utf-8")
    eml = Path(report["eml"]).read_bytes()
    assert _leaks([index, mail, eml.decode("utf-8", "replace"), *_eml_texts(eml)]) == []
    assert "/account/[email]/orders" in index  # the hostile page is among the day's top pages


def test_the_redacted_parameters_are_one_list_and_the_docs_show_it():
    project = yaml.safe_load((ROOT / "dbt_project" / "dbt_project.yml").read_text())
    params = [str(name) for name in project["vars"]["url_identifier_params"]]
    assert {"email", "e", "mail", "token", "reset", "key", "password", "pwd", "session", "sid", "auth", "code",
            "phone", "to", "customer", "ct"} <= set(params)
    assert not {p for p in params if p.startswith("utm_")}
    doc = (ROOT / "docs" / "formats.md").read_text()
    section = doc.split("## Redaction", 1)[1].split("\n## ", 1)[0]
    listed = re.search(r"<!-- url_identifier_params -->(.*?)<!-- /url_identifier_params -->", section, re.S)[1]
    assert re.findall(r"`([a-z0-9_]+)`", listed) == params
