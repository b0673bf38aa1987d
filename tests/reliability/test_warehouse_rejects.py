"""The loader's second line of defence (issue 26, defect 3): a row that the parser let through but
PostgreSQL refuses (a week-date timestamp, Arabic-Indic digits, a lone surrogate) is quarantined as
`rejected_by_warehouse` with the server's message, and the rest of the file loads.

The subject here is the loader's fallback, not the parsers: the parsers are being taught to refuse
these values themselves, so each test swaps its file kind's parser for one that yields the given
rows as a parser would (row tuples and column-wise RowBlocks), and drives the public `ingest`."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date

import pyarrow as pa
import pytest

from ecrm.intervals import day_interval
from ecrm.load import ingest as loader
from ecrm.load.ingest import ingest
from ecrm.sources import RowBlock

DAY = date(2026, 10, 1)
INTERVAL = day_interval(DAY)
WEEK_DATE = "2030-W15-7T10:00:00+00:00"
ARABIC_12 = "\u0661\u0662"


def web_row(n: int, **values) -> tuple:
    row = {"requested_at": f"2026-10-01T13:{n % 60:02d}:00+00:00", "remote_addr": "203.0.113.1", "remote_user": None,
           "method": "GET", "path": f"/p/{n}", "query_string": None, "protocol": "HTTP/1.1", "status": "200",
           "bytes_sent": "512", "referrer": None, "user_agent": "Mozilla/5.0", "is_bot": False, "is_static": False,
           "utm_source": None, "utm_medium": None, "utm_campaign": None, "customer_token": None, "order_id": None}
    row.update(values)
    return tuple(row[c] for c in loader.WEB_COLUMNS)


def event_row(n: int, **values) -> tuple:
    row = {"event_id": f"e-{n}", "event": "delivered", "email": f"c{n}@example.com",
           "occurred_at": f"2026-10-01T09:{n % 60:02d}:00+00:00", "campaign_id": "cmp-1", "customer_id": f"c-{n}",
           "is_machine_open": False, "bounce_type": None, "reason": None, "url": None}
    row.update(values)
    return tuple(row[c] for c in loader.EVENT_COLUMNS)


def use_parser(monkeypatch, source: str, kind_name: str, items: list) -> None:
    """Swap `kind_name`'s parser for one yielding `items` (the file still has to exist)."""
    def parse(path, interval, extra_columns=None):
        yield from items

    kinds = [(dataclasses.replace(kind, parse=parse) if kind.name == kind_name else kind, patterns)
             for kind, patterns in loader.SOURCES[source]]
    monkeypatch.setitem(loader.SOURCES, source, kinds)


def block(rows: list[tuple[int, list[str | None]]]) -> RowBlock:
    columns = list(zip(*(values for _, values in rows), strict=True))
    return RowBlock([pa.array(c, pa.string()) for c in columns], pa.array([n for n, _ in rows], pa.int64()))


def quarantined(conn) -> list[tuple]:
    return conn.execute("select _line, reason_code, reason, raw_text from quarantine.rejected_rows "
                        "order by _line").fetchall()


def ledger(conn) -> tuple:
    return conn.execute("select status, rows_read, rows_loaded, rows_quarantined, quarantined_by_code "
                        "from ops.load_ledger").fetchone()


def test_web_log_rows_the_warehouse_refuses_are_quarantined_and_the_rest_loads(conn, tmp_path, monkeypatch,
                                                                              caplog):
    folder = tmp_path / "weblogs"
    folder.mkdir()
    (folder / "access.log").write_text("(the parser below stands in for this file)\n")
    bad = {10: {"requested_at": WEEK_DATE}, 500: {"status": ARABIC_12}, 777: {"path": "/p/\ud800"}}
    items = [(n, web_row(n, **bad.get(n, {}))) for n in range(1, 1001)]
    # And a column-wise block, as the fast path of the web log parser sends them.
    good = [(n, ["2026-10-01T14:00:00+00:00", "203.0.113.2", None, "GET", f"/b/{n}", None, "HTTP/1.1", "200", "1",
                 None, "UA", "f", "f", None, None, None, None, None]) for n in range(1001, 1101)]
    good[42][1][8] = ARABIC_12  # bytes_sent of line 1043
    items.append(block(good))
    use_parser(monkeypatch, "weblogs", "web_logs", items)

    with caplog.at_level(logging.DEBUG):
        ingest(conn, "weblogs", folder, INTERVAL)

    assert conn.execute("select count(*) from raw.web_requests").fetchone()[0] == 1096
    rejected = quarantined(conn)
    assert [(line, code) for line, code, *_ in rejected] == \
        [(10, "rejected_by_warehouse"), (500, "rejected_by_warehouse"), (777, "rejected_by_warehouse"),
         (1043, "rejected_by_warehouse")]
    assert "invalid input syntax for type timestamp" in rejected[0][2]
    assert "invalid input syntax for type integer" in rejected[1][2]
    assert WEEK_DATE in rejected[0][3] and "/p/\\ud800" in rejected[2][3]
    assert ledger(conn) == ("succeeded", 1100, 1096, 4, {"rejected_by_warehouse": 4})
    assert conn.execute("select status from ops.ingest_runs").fetchone() == ("succeeded",)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert WEEK_DATE not in logged and ARABIC_12 not in logged, "refused values stay out of the logs"


def test_order_lines_with_digits_the_warehouse_refuses_are_quarantined(conn, tmp_path, monkeypatch):
    folder = tmp_path / "shop"
    folder.mkdir()
    for name in ("customers.csv", "orders.csv", "order_lines.csv"):
        (folder / name).write_text("(stand-in)\n")
    lines = [(n, ["o-1", str(n), "p-1", "Tea", "food", ARABIC_12 if n in (3, 4) else "2", "4.50", "0.00",
                  "2026-10-01T10:00:00+00:00"]) for n in range(1, 9)]
    use_parser(monkeypatch, "shop", "customers", [])
    use_parser(monkeypatch, "shop", "orders", [])
    use_parser(monkeypatch, "shop", "order_lines", [block(lines)])

    ingest(conn, "shop", folder, INTERVAL)

    assert conn.execute("select count(*) from raw.order_lines").fetchone()[0] == 6
    assert [(line, code) for line, code, *_ in quarantined(conn)] == \
        [(3, "rejected_by_warehouse"), (4, "rejected_by_warehouse")]


def test_an_event_the_warehouse_refuses_does_not_stop_the_day(conn, tmp_path, monkeypatch):
    folder = tmp_path / "email"
    folder.mkdir()
    (folder / "events.jsonl").write_text("(stand-in)\n")
    items = [(n, event_row(n)) for n in range(1, 41)]
    items[6] = (7, event_row(7, event="bounce", bounce_type="bounce", reason="\ud800"))
    items[19] = (20, event_row(20, occurred_at="2026-10-01T10:00:00,5+00:00"))
    use_parser(monkeypatch, "email", "email_events", items)

    ingest(conn, "email", folder, INTERVAL)

    assert conn.execute("select count(*) from raw.email_events").fetchone()[0] == 38
    assert [(line, code) for line, code, *_ in quarantined(conn)] == \
        [(7, "rejected_by_warehouse"), (20, "rejected_by_warehouse")]
    assert ledger(conn)[:4] == ("succeeded", 40, 38, 2)


@pytest.mark.parametrize("failing", ["first", "last", "all"])
def test_isolation_finds_refused_rows_anywhere_in_a_block(conn, tmp_path, monkeypatch, failing):
    folder = tmp_path / "weblogs"
    folder.mkdir()
    (folder / "access.log").write_text("(stand-in)\n")
    bad_lines = {"first": {1}, "last": {64}, "all": set(range(1, 65))}[failing]
    items = [(n, web_row(n, status=ARABIC_12 if n in bad_lines else "200")) for n in range(1, 65)]
    use_parser(monkeypatch, "weblogs", "web_logs", items)

    ingest(conn, "weblogs", folder, INTERVAL, allow_empty=failing == "all")

    assert [line for line, *_ in quarantined(conn)] == sorted(bad_lines)
    assert conn.execute("select count(*) from raw.web_requests").fetchone()[0] == 64 - len(bad_lines)
