"""Real landing files do not line up with UTC days: the folder says when a file arrived, each line's
own timestamp says which day it belongs to. A file is loaded whole within its window (the folder's
day minus the source's lookback, to its end plus a small clock skew); reloads replace by file."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from ecrm.intervals import day_interval
from ecrm.load.ingest import ingest, ingest_file

D = date(2026, 10, 10)


def log_line(at: datetime, path: str, status: int = 200) -> str:
    return (f'203.0.113.5 - - [{at.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "GET {path} HTTP/1.1" {status} 10 "-" '
            '"Mozilla/5.0 (X11)"')


def four_days(first: date) -> list[str]:
    """A log rotated at 05:25 UTC (06:25 in Berlin) four times: every 10 minutes from first 05:25
    to four days later, plus a request that started before midnight and was written after it."""
    start = datetime(first.year, first.month, first.day, 5, 25, tzinfo=UTC)
    lines = [log_line(start + timedelta(minutes=10 * i), f"/p/{i}") for i in range(4 * 144)]
    lines.append(log_line(datetime(first.year, first.month, first.day, 23, 59, 59, tzinfo=UTC) + timedelta(days=1),
                          "/late-finisher"))
    return lines


def days_of(conn) -> dict[date, int]:
    return dict(conn.execute("select (requested_at at time zone 'UTC')::date, count(*) from raw.web_requests "
                             "group by 1 order by 1").fetchall())


def digest(conn, table: str) -> str:
    rows = conn.execute(f"select t::text from {table} t order by 1").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_a_four_day_log_in_one_folder_loads_every_line_into_its_own_day(conn, tmp_path):
    lines = four_days(D - timedelta(days=3))
    folder = tmp_path / "weblogs" / D.isoformat()
    folder.mkdir(parents=True)
    (folder / "access.log").write_text("\n".join(lines + ["not a log line"]) + "\n")
    [result] = ingest(conn, "weblogs", folder, day_interval(D))
    # Lines from D-3 05:25 to D+1 05:15: those after D's end plus the skew are from the future.
    future = sum(1 for line in lines if "11/Oct/2026" in line and line.split(":")[1:3] > ["00", "10"])
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (len(lines) + 1, len(lines) - future,
                                                                              future + 1)
    codes = dict(conn.execute("select reason_code, count(*) from quarantine.rejected_rows group by 1").fetchall())
    assert codes == {"malformed": 1, "future_timestamp": future}
    assert conn.execute("select quarantined_by_code from ops.load_ledger").fetchone()[0] == codes
    assert list(days_of(conn)) == [D - timedelta(days=3 - i) for i in range(4)] + [D + timedelta(days=1)]

    # The same content in the next day's folder (a copy, a re-sent archive) loads nothing again.
    before = digest(conn, "raw.web_requests")
    nxt = tmp_path / "weblogs" / (D + timedelta(days=1)).isoformat()
    nxt.mkdir()
    (nxt / "access.log.1").write_bytes((folder / "access.log").read_bytes())
    [again] = ingest(conn, "weblogs", nxt, day_interval(D + timedelta(days=1)))
    assert again.status == "skipped_duplicate"
    # A rerun of the day changes nothing.
    [rerun] = ingest(conn, "weblogs", folder, day_interval(D))
    assert rerun.status == "skipped_duplicate"
    assert digest(conn, "raw.web_requests") == before


def test_a_rerun_of_a_day_never_deletes_rows_another_days_file_loaded(conn, tmp_path):
    d1, d2 = tmp_path / "weblogs" / "d1", tmp_path / "weblogs" / "d2"
    d1.mkdir(parents=True)
    d2.mkdir(parents=True)
    morning = datetime(2026, 10, 10, 3, tzinfo=UTC)
    (d1 / "access.log").write_text(log_line(morning, "/from-d1") + "\n")
    # The next day's rotated file holds the rest of the 10th.
    (d2 / "access.log").write_text(log_line(morning + timedelta(hours=20), "/from-d2") + "\n"
                                   + log_line(morning + timedelta(hours=24), "/d2-own") + "\n")
    ingest(conn, "weblogs", d1, day_interval(D))
    ingest(conn, "weblogs", d2, day_interval(D + timedelta(days=1)))
    (d1 / "access.log").write_text(log_line(morning, "/from-d1-corrected") + "\n")  # D redelivered
    ingest(conn, "weblogs", d1, day_interval(D))
    paths = sorted(r[0] for r in conn.execute("select path from raw.web_requests"))
    assert paths == ["/d2-own", "/from-d1-corrected", "/from-d2"]
    statuses = conn.execute("select file like '%d1%', status from ops.load_ledger order by load_id").fetchall()
    assert statuses == [(True, "replaced"), (False, "succeeded"), (True, "succeeded")]


def test_lines_too_late_say_how_to_load_them_and_that_loads_each_line_once(conn, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "weblogs" / D.isoformat()
    folder.mkdir(parents=True)
    old = datetime(2026, 10, 2, 12, tzinfo=UTC)  # 8 days before D: beyond the 3-day lookback
    path = folder / "access.log"
    path.write_text("\n".join([log_line(old, "/old"), log_line(old + timedelta(days=1), "/older-too"),
                               log_line(datetime(2026, 10, 10, 9, tzinfo=UTC), "/today")]) + "\n")
    ingest(conn, "weblogs", folder, day_interval(D))
    [(code, reason)] = conn.execute("select reason_code, reason from quarantine.rejected_rows "
                                    "where raw_text like '%/old %'").fetchall()
    assert code == "too_late" and "`ecrm ingest weblogs 2026-10-02 --file`" in reason

    from ecrm.cli import main

    monkeypatch.setenv("ECRM_WAREHOUSE_URL", _url(conn))
    main(["ingest", "weblogs", "2026-10-02", "--file", str(path)])
    assert json.loads(capsys.readouterr().out)["next"].startswith("rebuild the marts from 2026-10-02")
    assert sorted(r[0] for r in conn.execute("select path from raw.web_requests")) == ["/old", "/older-too", "/today"]
    assert conn.execute("select count(*) from quarantine.rejected_rows").fetchone()[0] == 0
    assert [r[0] for r in conn.execute("select status from ops.load_ledger order by load_id")] == \
        ["replaced", "succeeded"]
    # Loading it again, by either path, loads nothing twice.
    ingest_file(conn, "weblogs", path, date(2026, 10, 2))
    ingest(conn, "weblogs", folder, day_interval(D))
    assert conn.execute("select count(*) from raw.web_requests").fetchone()[0] == 3


def _url(conn) -> str:
    info = conn.info
    return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"


def test_an_esp_export_spanning_midnight_lands_events_in_their_days_once(conn, tmp_path):
    def event(event_id: str, at: datetime) -> str:
        return json.dumps({"sg_event_id": event_id, "event": "open", "email": "a@example.com",
                           "timestamp": int(at.timestamp()), "campaign_id": "cmp-1"})

    # Exports written at 02:00 each day: the previous 24 hours.
    two_am = datetime(2026, 10, 10, 2, tzinfo=UTC)
    d1, d2 = tmp_path / "email" / "d1", tmp_path / "email" / "d2"
    d1.mkdir(parents=True)
    d2.mkdir(parents=True)
    (d1 / "events.jsonl").write_text("\n".join(event(f"a{h}", two_am - timedelta(hours=h)) for h in range(24)) + "\n")
    # The next export overlaps the previous one by three hours (the ESP exports "since the last run,
    # minus a margin"): two of those events were future for the 9th's folder, one was loaded.
    (d2 / "events.jsonl").write_text("\n".join([event(f"a{h}", two_am - timedelta(hours=h)) for h in range(3)]
                                               + [event(f"b{h}", two_am + timedelta(hours=h)) for h in range(1, 24)])
                                     + "\n")
    ingest(conn, "email", d1, day_interval(date(2026, 10, 9)))
    ingest(conn, "email", d2, day_interval(date(2026, 10, 10)))
    per_day = dict(conn.execute("select (occurred_at at time zone 'UTC')::date, count(*) from raw.email_events "
                                "group by 1").fetchall())
    codes = dict(conn.execute("select reason_code, count(*) from quarantine.rejected_rows group by 1").fetchall())
    # Folder of the 9th: 01:00 and 02:00 on the 10th are after its end + skew. Folder of the 10th:
    # those two load now, 00:00 was loaded already, 01:00 on the 11th is its future.
    assert codes == {"future_timestamp": 3, "duplicate_event": 1}
    assert per_day == {date(2026, 10, 9): 21, date(2026, 10, 10): 24, date(2026, 10, 11): 1}


def test_a_shop_export_with_yesterdays_updated_at_is_merged(conn, tmp_path):
    folder = tmp_path / "shop" / D.isoformat()
    folder.mkdir(parents=True)
    late = "2026-10-09T23:58:00+00:00"
    (folder / "customers.csv").write_text(
        "customer_id,email,first_name,country,signed_up_at,updated_at,accepts_marketing\n"
        f"c-1,a@example.com,Ann,DE,{late},{late},true\n")
    (folder / "orders.csv").write_text(
        "order_id,customer_id,email,created_at,updated_at,status,currency,total_amount,discount_amount,coupon_code\n"
        f"o-1,c-1,a@example.com,{late},{late},paid,EUR,10.00,0.00,\n"
        "o-2,c-1,a@example.com,2026-10-10T08:00:00+00:00,2026-10-10T08:00:00+00:00,paid,EUR,5.00,0.00,\n")
    (folder / "order_lines.csv").write_text(
        "order_id,line_number,product_id,product_name,category,quantity,unit_price,discount_amount,updated_at\n")
    ingest(conn, "shop", folder, day_interval(D))
    assert conn.execute("select count(*) from raw.orders").fetchone()[0] == 2
    assert conn.execute("select count(*) from quarantine.rejected_rows").fetchone()[0] == 0


@pytest.mark.parametrize("source,name", [("weblogs", "notes.txt"), ("email", "access.log")])
def test_loading_a_file_that_is_not_of_the_source_names_it(conn, tmp_path, source, name):
    from ecrm.sources import FileError

    path = tmp_path / name
    path.write_text("x\n")
    with pytest.raises(FileError, match=name):
        ingest_file(conn, source, path, D)
