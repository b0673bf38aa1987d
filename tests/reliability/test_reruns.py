"""Idempotency under reruns and concurrency, checked on every table a user reads: rerunning a day
three times (ingest, build, publish and push) leaves every raw, intermediate, mart, audience and
published table byte-for-byte as it was and pushes nobody again; two publishes of one day at once
push every member exactly once."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from datetime import date, timedelta

import psycopg
import pytest

from ecrm.intervals import day_interval

START = date(2026, 10, 1)
SCHEMAS = ("raw", "intermediate", "marts", "sync", "published")
pytestmark = pytest.mark.slow


def digests(conn) -> dict[str, str]:
    """sha256 of every table's rows in a stable order (all columns, sorted as text)."""
    tables = conn.execute(
        "select table_schema || '.' || table_name from information_schema.tables "
        "where table_schema = any(%s) and table_type = 'BASE TABLE' and table_name not like '%%__dbt_%%' "
        "order by 1", (list(SCHEMAS),)).fetchall()
    out = {}
    for (table,) in tables:
        rows = conn.execute(f"select t::text from {table} as t order by 1").fetchall()
        out[table] = hashlib.sha256("\n".join(r[0] for r in rows).encode()).hexdigest()
    return out


def pushes(conn) -> Counter:
    """Members the ESP confirmed per (audience, action, email hash): each must be 1."""
    return Counter(conn.execute("select audience, action, email_hash from mailer.sync_changes "
                                "where result in ('sent', 'skipped')").fetchall())


def outbox_files(folder) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def shop(warehouse, tmp_path, monkeypatch):
    from ecrm.pipeline import ingest_initial
    from ecrm.simulate import ShopSimulator

    for key, value in {"ECRM_DATA_DIR": tmp_path, "ECRM_LANDING": tmp_path / "landing",
                       "ECRM_OUTBOX": tmp_path / "outbox"}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("ECRM_GATE_SEVERITY", raising=False)
    url = warehouse.create_database(f"rerun_{tmp_path.name[-20:].replace('-', '_')}")
    sim = ShopSimulator(landing=tmp_path / "landing", outbox=tmp_path / "outbox", truth=tmp_path / "truth",
                        start=START, customers=300, seed=21)
    sim.write_initial()
    ingest_initial(START, url=url)
    return url, sim, tmp_path


def run_day(url: str, day: date, publish: bool = True) -> None:
    from ecrm.pipeline import SOURCES, build_marts, ingest_interval, publish_segments

    for source in SOURCES:
        ingest_interval(source, *day_interval(day), url=url)
    build_marts(*day_interval(day), url=url)
    if publish:
        publish_segments(*day_interval(day), url=url)


def test_three_reruns_of_a_day_change_no_table_and_push_nobody_again(shop):
    url, sim, data = shop
    day1, day2 = START, START + timedelta(days=1)
    for day in (day1, day2):
        sim.write_day(day)
        run_day(url, day)
    with psycopg.connect(url) as conn:
        before, pushed_before = digests(conn), pushes(conn)
    files_before = outbox_files(data / "outbox")
    assert len(before) > 30 and pushed_before and max(pushed_before.values()) == 1

    for _ in range(3):
        run_day(url, day2)
        with psycopg.connect(url) as conn:
            after = digests(conn)
            assert {t: d for t, d in after.items() if before.get(t) != d} == {}, "a rerun changed these tables"
            assert pushes(conn) == pushed_before, "a rerun pushed someone again"
    assert outbox_files(data / "outbox") == files_before


def test_two_publishes_of_one_day_at_once_push_every_member_exactly_once(shop):
    from ecrm.pipeline import PublishAlreadyRunning, publish_segments

    url, sim, _ = shop
    sim.write_day(START)
    run_day(url, START, publish=False)
    outcomes: list[object] = []

    def publish() -> None:
        try:
            outcomes.append(publish_segments(*day_interval(START), url=url))
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcomes.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert any(isinstance(o, dict) for o in outcomes), outcomes
    for o in outcomes:  # the other one finds the warehouse busy: a clear refusal, nothing sent
        assert isinstance(o, dict) or (isinstance(o, PublishAlreadyRunning) and "another publish" in str(o)), repr(o)
    with psycopg.connect(url) as conn:
        pushed = pushes(conn)
        published = conn.execute("select count(*) from published.audience_members").fetchone()[0]
        members = conn.execute("select count(*) from mailer.audience_state where is_member").fetchone()[0]
    assert pushed and max(pushed.values()) == 1
    assert members == sum(1 for (_, action, _) in pushed if action == "add") <= published
