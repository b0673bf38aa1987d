"""The raw history partitioned by day (migration 0006, ecrm.warehouse.retention): an existing warehouse
is upgraded in place with every row, loads land in their days' partitions, the loader's guarantees
(a re-delivered file replaces its load, an event id loaded on another day is a `duplicate_event`) hold,
and retention drops exactly the days older than it keeps while the next day's build still works."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from ecrm.intervals import day_interval
from ecrm.load.ingest import ingest
from ecrm.warehouse.migrate import MIGRATIONS_DIR, migrate
from ecrm.warehouse.retention import (
    RetentionRefused,
    day_partitions,
    ensure_partitions,
    min_keep_days,
    retention,
)

DAY = date(2026, 10, 1)
TABLES = {"raw.web_requests": "_load_id, _line", "raw.email_events": "event_id",
          "quarantine.rejected_rows": "rejected_id"}
WEB_LINE = '203.0.113.7 - - [{stamp} +0000] "GET /p/{n} HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11)"\n'


def fingerprint(conn, table: str) -> tuple[int, str]:
    """Row count and md5 of every row's text in key order: equal only if every value is."""
    return conn.execute(f"select count(*), md5(coalesce(string_agg(t::text, '|' order by {TABLES[table]}), '')) "
                        f"from {table} t").fetchone()


def rows_per_partition(conn, table: str) -> dict[str, int]:
    return dict(conn.execute(f"select tableoid::regclass::text, count(*) from {table} group by 1").fetchall())


@pytest.fixture
def before_0006(tmp_path) -> Path:
    """The migrations as they were before the history was partitioned (0001-0005)."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for entry in MIGRATIONS_DIR.iterdir():
        if entry.name.endswith(".sql") and entry.name < "0006":
            shutil.copy(entry, folder / entry.name)
    return folder


def test_an_old_warehouse_is_partitioned_in_place_and_keeps_every_row(bare_db_url, before_0006):
    migrate(bare_db_url, before_0006)
    with psycopg.connect(bare_db_url, autocommit=True) as conn:
        conn.execute(
            "insert into raw.web_requests (requested_at, remote_addr, path, status, is_bot, is_static, _file, _line, "
            "_load_id) select timestamptz '2026-09-28 23:30+00' + n * interval '17 minutes', '203.0.113.' || n % 9, "
            "'/p/' || n, 200, n % 5 = 0, false, 'weblogs/2026-10-01/access.log', n, 1 + n / 200 "
            "from generate_series(1, 600) n")
        conn.execute(
            "insert into raw.email_events (event_id, event, email, occurred_at, campaign_id, is_machine_open, _file, "
            "_line, _load_id) select 'e' || n, 'open', 'person' || n || '@example.com', "
            "timestamptz '2026-09-29 00:00+00' + n * interval '1 hour', 'cmp-' || n % 3, n % 2 = 0, "
            "'email/2026-10-01/events.csv', n, 9 from generate_series(1, 72) n")
        conn.execute("insert into quarantine.rejected_rows (source, _file, _line, reason, reason_code, _load_id) "
                     "values ('web_logs', 'weblogs/2026-10-01/access.log', 601, 'not a log line', 'unparseable', 3)")
        # dbt's staging views read the raw tables: the upgrade re-points them (same view, new table)
        conn.execute("create schema staging; create view staging.stg_web__requests as "
                     "select requested_at, path from raw.web_requests")
        conn.execute("drop role if exists partitions_reader; create role partitions_reader nologin; "
                     "grant select on raw.email_events to partitions_reader")
        before = {table: fingerprint(conn, table) for table in TABLES}
    applied = [m.file for m in migrate(bare_db_url)]  # 0006, then the migrations after it (0007, ...)
    assert applied[0] == "0006_partitioned_raw_history.sql" and applied == sorted(applied)
    with psycopg.connect(bare_db_url) as conn:
        assert {table: fingerprint(conn, table) for table in TABLES} == before
        kinds = dict(conn.execute("select oid::regclass::text, relkind from pg_class where oid = any("
                                  "array['raw.web_requests', 'raw.email_events']::regclass[])").fetchall())
        assert kinds == {"raw.web_requests": "p", "raw.email_events": "p"}
        web = rows_per_partition(conn, "raw.web_requests")
        days = conn.execute("select (requested_at at time zone 'UTC')::date, count(*) from raw.web_requests "
                            "group by 1").fetchall()
        assert web == {f"raw.web_requests_p{d:%Y%m%d}": n for d, n in days}  # every row in its day's partition
        assert set(rows_per_partition(conn, "raw.email_events")) == {
            "raw.email_events_p20260929", "raw.email_events_p20260930", "raw.email_events_p20261001",
            "raw.email_events_p20261002"}
        assert conn.execute("select count(*) from staging.stg_web__requests").fetchone()[0] == 600
        assert conn.execute("select has_table_privilege('partitions_reader', 'raw.email_events', 'select')").fetchone()[0]
        assert conn.execute("select to_regclass('raw.web_requests_unpartitioned')").fetchone()[0] is None
    assert migrate(bare_db_url) == []


def test_a_day_s_web_log_lands_in_the_partitions_of_its_lines_days_and_a_redelivery_replaces_it(conn, tmp_path):
    folder = tmp_path / "weblogs" / DAY.isoformat()
    folder.mkdir(parents=True)
    log = folder / "access.log"
    # the day's lines and late ones of two days before (within the 3-day lookback)
    log.write_text(WEB_LINE.format(stamp="29/Sep/2026:22:00:00", n=1) + WEB_LINE.format(stamp="01/Oct/2026:13:05:22", n=2)
                   + WEB_LINE.format(stamp="01/Oct/2026:23:59:59", n=3))
    ingest(conn, "weblogs", folder, day_interval(DAY))
    assert rows_per_partition(conn, "raw.web_requests") == {"raw.web_requests_p20260929": 1,
                                                             "raw.web_requests_p20261001": 2}
    # every day of the load's window has its partition (created before the load)
    days = {p.day for p in day_partitions(conn, "raw.web_requests")}
    assert {DAY - timedelta(days=n) for n in range(4)} <= days
    log.write_text(WEB_LINE.format(stamp="30/Sep/2026:08:00:00", n=4) + WEB_LINE.format(stamp="01/Oct/2026:14:00:00", n=5)
                   + WEB_LINE.format(stamp="01/Oct/2026:15:00:00", n=6))  # a corrected redelivery
    ingest(conn, "weblogs", folder, day_interval(DAY))
    assert conn.execute("select path from raw.web_requests order by 1").fetchall() == [("/p/4",), ("/p/5",), ("/p/6",)]
    assert rows_per_partition(conn, "raw.web_requests") == {"raw.web_requests_p20260930": 1,
                                                             "raw.web_requests_p20261001": 2}


def test_an_event_id_loaded_on_another_day_is_quarantined_as_duplicate_event(conn, tmp_path):
    header = "sg_event_id,event,email,timestamp,sg_machine_open\n"
    stamp = int(day_interval(DAY)[0].timestamp()) + 3600
    first = tmp_path / "email" / DAY.isoformat()
    first.mkdir(parents=True)
    (first / "events.csv").write_text(header + f"e1,open,a@example.com,{stamp},false\n")
    ingest(conn, "email", first, day_interval(DAY))
    # the ESP resends e1 two days later, stamped with that day: another partition, same event id
    later = tmp_path / "email" / (DAY + timedelta(days=2)).isoformat()
    later.mkdir(parents=True)
    (later / "events.csv").write_text(header + f"e1,open,a@example.com,{stamp + 2 * 86400},false\n"
                                      f"e2,click,a@example.com,{stamp + 2 * 86400},\n")
    results = ingest(conn, "email", later, day_interval(DAY + timedelta(days=2)))
    assert (results[0].rows_read, results[0].rows_loaded, results[0].rows_quarantined) == (2, 1, 1)
    assert conn.execute("select reason_code, _line from quarantine.rejected_rows").fetchall() == [("duplicate_event", 2)]
    assert rows_per_partition(conn, "raw.email_events") == {"raw.email_events_p20261001": 1,
                                                             "raw.email_events_p20261003": 1}


def test_a_row_of_a_day_without_a_partition_is_kept_and_moves_into_its_day_when_created(conn):
    conn.execute("insert into raw.web_requests (requested_at, remote_addr, path, status, is_bot, is_static, _file, "
                 "_line, _load_id) values ('2031-05-04 10:00+00', '203.0.113.1', '/x', 200, false, false, 'f', 1, 1)")
    assert rows_per_partition(conn, "raw.web_requests") == {"raw.web_requests_default": 1}
    assert ensure_partitions(conn, "raw.web_requests", date(2031, 5, 3), date(2031, 5, 5)) == 3
    assert ensure_partitions(conn, "raw.web_requests", date(2031, 5, 3), date(2031, 5, 5)) == 0
    assert rows_per_partition(conn, "raw.web_requests") == {"raw.web_requests_p20310504": 1}


def test_migrate_creates_today_s_and_the_next_days_partitions(db_url):
    from datetime import UTC, datetime

    today = datetime.now(UTC).date()
    with psycopg.connect(db_url) as conn:
        for table in ("raw.web_requests", "raw.email_events"):
            days = {p.day for p in day_partitions(conn, table)}
            assert {today + timedelta(days=n) for n in range(8)} <= days


def test_retention_drops_exactly_the_days_older_than_it_keeps(conn):
    keep = min_keep_days()
    as_of = date(2027, 3, 1)
    first_kept = as_of - timedelta(days=keep - 1)
    for table in ("raw.web_requests", "raw.email_events"):
        ensure_partitions(conn, table, first_kept - timedelta(days=3), as_of + timedelta(days=2))
    conn.execute("insert into raw.web_requests (requested_at, remote_addr, path, status, is_bot, is_static, _file, "
                 "_line, _load_id) select d + interval '12 hours', '203.0.113.1', '/x', 200, false, false, 'f', n, 1 "
                 "from generate_series(1, 5) n, generate_series(%s::timestamptz, %s::timestamptz, interval '1 day') d",
                 (first_kept - timedelta(days=3), as_of))
    kept_rows = conn.execute("select count(*) from raw.web_requests where requested_at >= %s", (first_kept,)).fetchone()[0]
    with pytest.raises(RetentionRefused, match=f"below {keep}"):
        retention(conn, keep - 1, as_of)
    assert conn.execute("select count(*) from raw.web_requests").fetchone()[0] == kept_rows + 15  # nothing dropped
    dropped = retention(conn, keep, as_of)
    assert sorted((p.table, p.day) for p in dropped) == sorted(
        (table, first_kept - timedelta(days=n)) for table in ("raw.web_requests", "raw.email_events")
        for n in (1, 2, 3))
    assert conn.execute("select count(*) from raw.web_requests").fetchone()[0] == kept_rows
    assert min(p.day for p in day_partitions(conn, "raw.web_requests")) == first_kept
    assert conn.execute("select to_regclass('raw.web_requests_default') is not null").fetchone()[0]
    assert retention(conn, keep, as_of) == []


def test_cli_retention_refuses_too_few_days_with_its_exit_code(db_url, monkeypatch, capsys):
    from ecrm.cli import main

    monkeypatch.setenv("ECRM_WAREHOUSE_URL", db_url)
    with pytest.raises(SystemExit) as exit_:
        main(["warehouse", "retention", "--keep-days", "3"])
    assert exit_.value.code == 22
    assert "below" in capsys.readouterr().err
    main(["warehouse", "retention", "--keep-days", str(min_keep_days()), "--dry-run"])
    assert capsys.readouterr().out.splitlines()[-1].startswith("would drop 0 day partition(s)")


@pytest.mark.slow
def test_after_retention_the_next_days_still_load_and_build(warehouse, tmp_path, monkeypatch):
    """Three simulated days built; retention, as of the reference day that makes the first one expire,
    drops it; two more days load and build, and the incremental marts keep the dropped day's figures
    (it is outside the build's lookback, as it always is when --keep-days is at least min_keep_days)."""
    from ecrm import pipeline
    from ecrm.simulate import ShopSimulator

    monkeypatch.setenv("ECRM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ECRM_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("ECRM_OUTBOX", str(tmp_path / "outbox"))
    sim = ShopSimulator(landing=tmp_path / "landing", outbox=tmp_path / "outbox", truth=tmp_path / "truth",
                        start=DAY, customers=300, seed=5, delivery="shop,email")
    sim.write_initial()
    url = warehouse.create_database("partitions_retention")
    pipeline.ingest_initial(DAY, url=url)
    days = [DAY + timedelta(days=n) for n in range(5)]

    def load(day: date) -> None:
        sim.write_day(day)
        for source in pipeline.SOURCES:
            pipeline.ingest_interval(source, *day_interval(day), url=url)

    kpis = "select kpi_date, sessions from marts.fct_web_kpis_daily where kpi_date = %s"
    for day in days[:3]:
        load(day)
    pipeline.build_marts(*day_interval(days[2]), url=url)
    with psycopg.connect(url, autocommit=True) as conn:
        first_day = conn.execute(kpis, (days[0],)).fetchall()
        assert first_day and first_day[0][1] > 0
        web_days = {p.day for p in day_partitions(conn, "raw.web_requests")}
        dropped = retention(conn, min_keep_days(), days[0] + timedelta(days=min_keep_days()))
        assert {p.day for p in dropped if p.table == "raw.web_requests"} == {d for d in web_days if d <= days[0]}
        assert conn.execute("select count(*) from raw.web_requests where requested_at < %s",
                            (day_interval(days[1])[0],)).fetchone()[0] == 0
    for day in days[3:]:
        load(day)
    pipeline.build_marts(*day_interval(days[4]), url=url)
    with psycopg.connect(url) as conn:
        assert conn.execute(kpis, (days[0],)).fetchall() == first_day
        assert conn.execute(kpis, (days[4],)).fetchall()
