"""Loading landing files: typed rows in raw.*, bad rows quarantined with file, line and reason,
the ledger reconciles, reruns and duplicate deliveries change nothing, file errors load nothing."""

from __future__ import annotations

import gzip
from datetime import date

import pytest

from ecrm.intervals import day_interval
from ecrm.load.ingest import ingest
from ecrm.sources import FileError

DAY = date(2026, 10, 1)
INTERVAL = day_interval(DAY)
CUSTOMERS_HEADER = "customer_id,email,first_name,country,signed_up_at,updated_at,accepts_marketing\n"
ORDERS_HEADER = ("order_id,customer_id,email,created_at,updated_at,status,currency,total_amount,"
                 "discount_amount,coupon_code\n")
LINES_HEADER = "order_id,line_number,product_id,product_name,category,quantity,unit_price,discount_amount,updated_at\n"
TS = "2026-10-01T10:00:00+00:00"


def write_shop(folder, orders: str, customers: str = "", lines: str = ""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customers.csv").write_text(CUSTOMERS_HEADER + customers)
    (folder / "orders.csv").write_text(ORDERS_HEADER + orders)
    (folder / "order_lines.csv").write_text(LINES_HEADER + lines)
    return folder


def ledger(conn):
    return conn.execute("select source, status, rows_read, rows_loaded, rows_quarantined from ops.load_ledger "
                        "order by load_id").fetchall()


def quarantine(conn):
    return conn.execute("select source, _file, _line, reason from quarantine.rejected_rows order by _line").fetchall()


def test_bad_orders_are_quarantined_with_file_line_and_reason(conn, tmp_path):
    folder = write_shop(tmp_path / "shop", orders=(
        f"o-1,c-1,a@example.com,{TS},{TS},paid,EUR,10.00,0.00,\n"                        # line 2: superseded
        f"o-2,c-1,a@example.com,{TS},2026-10-02T10:00:00+00:00,paid,EUR,1.00,0.00,\n"    # 3: from the future
        f"o-3,c-1,a@example.com,{TS},{TS},paid,EUR,-10.00,0.00,\n"                       # 4: negative
        f"o-4,c-1,a@example.com,{TS},{TS},paid,XYZ,10.00,0.00,\n"                        # 5: currency
        f"o-5,c-1,not-an-email,{TS},{TS},paid,EUR,10.00,0.00,\n"                         # 6: email
        f"o-6,c-1,a@example.com,yesterday,{TS},paid,EUR,10.00,0.00,\n"                   # 7: timestamp
        f"o-7,c-1,a@example.com,{TS},{TS},paid,EUR,abc,0.00,\n"                          # 8: not numeric
        f"o-1,c-1,a@example.com,{TS},{TS},paid,EUR,10.00,0.00,\n"                        # 9: duplicate: wins
        "o-8,c-1,a@example.com,2026-10-01T10:00\n"))                                     # 10: truncated
    results = ingest(conn, "shop", folder, INTERVAL, "test")
    orders = next(r for r in results if r.source == "orders")
    assert (orders.rows_read, orders.rows_loaded, orders.rows_quarantined) == (9, 1, 8)
    reasons = {line: reason for _, _, line, reason in quarantine(conn)}
    assert "after this load's window" in reasons[3]
    assert "negative amount" in reasons[4]
    assert "unknown currency" in reasons[5]
    assert "invalid email" in reasons[6]
    assert "not a timestamp of the form" in reasons[7]
    assert "not a number" in reasons[8]
    assert "duplicate" in reasons[2] and "later line wins" in reasons[2]
    assert "truncated" in reasons[10]
    assert all(file.endswith("orders.csv") for _, file, _, _ in quarantine(conn))
    assert conn.execute("select order_id, total_amount, _line from raw.orders").fetchall() == [("o-1", 10, 9)]


def test_rows_read_equals_loaded_plus_quarantined(conn, tmp_path):
    folder = write_shop(tmp_path / "shop", orders=f"o-1,c-1,a@example.com,{TS},{TS},paid,EUR,10.00,0.00,\nbroken\n",
                        customers=f"c-1,a@example.com,Ann,DE,{TS},{TS},true\n")
    ingest(conn, "shop", folder, INTERVAL)
    for source, _status, read, loaded, quarantined in ledger(conn):
        assert read == loaded + quarantined, source
    assert conn.execute("select count(*) from quarantine.rejected_rows").fetchone()[0] == 1


def test_rerun_and_duplicate_delivery_load_once(conn, tmp_path):
    orders = f"o-1,c-1,a@example.com,{TS},{TS},paid,EUR,10.00,0.00,\n"
    folder = write_shop(tmp_path / "a", orders=orders)
    ingest(conn, "shop", folder, INTERVAL)
    before = conn.execute("select * from raw.orders").fetchall()
    ingest(conn, "shop", folder, INTERVAL)                              # rerun of the interval
    ingest(conn, "shop", write_shop(tmp_path / "b", orders=orders), INTERVAL)  # same file delivered twice
    assert conn.execute("select * from raw.orders").fetchall() == before
    statuses = [status for source, status, *_ in ledger(conn) if source == "orders"]
    assert statuses == ["succeeded", "skipped_duplicate", "skipped_duplicate"]


def test_latest_order_version_wins_and_history_is_kept(conn, tmp_path):
    ingest(conn, "shop", write_shop(tmp_path / "d1", orders=f"o-1,c-1,a@example.com,{TS},{TS},paid,EUR,10.00,0.00,\n"),
           INTERVAL)
    refund = "2026-10-02T09:00:00+00:00"
    ingest(conn, "shop", write_shop(tmp_path / "d2", orders=f"o-1,c-1,a@example.com,{TS},{refund},refunded,EUR,10.00,0.00,\n"),
           day_interval(date(2026, 10, 2)))
    assert conn.execute("select status from raw.orders").fetchall() == [("refunded",)]
    history = conn.execute("select status from raw.order_status_history order by updated_at").fetchall()
    assert history == [("paid",), ("refunded",)]


@pytest.mark.parametrize("case", ["missing", "empty", "drift", "cut_gzip"])
def test_file_level_errors_load_nothing_and_name_the_file(conn, tmp_path, case):
    folder = write_shop(tmp_path / "shop", orders=f"o-1,c-1,a@example.com,{TS},{TS},paid,EUR,10.00,0.00,\n",
                        customers=f"c-1,a@example.com,Ann,DE,{TS},{TS},true\n")
    bad = folder / "order_lines.csv"
    if case == "missing":
        bad.unlink()
    elif case == "empty":
        bad.write_text("")
    elif case == "drift":
        bad.write_text(LINES_HEADER.replace(",category", "") + f"o-1,1,p-1,Mug,1,10.00,0.00,{TS}\n")
    elif case == "cut_gzip":
        bad.unlink()
        data = gzip.compress((LINES_HEADER + f"o-1,1,p-1,Mug,Kitchen,1,10.00,0.00,{TS}\n" * 2000).encode())
        (folder / "order_lines.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileError) as error:
        ingest(conn, "shop", folder, INTERVAL)
    assert "order_lines.csv" in str(error.value)
    # Nothing from the interval landed, not even the good files: no partial load.
    assert conn.execute("select count(*) from raw.orders").fetchone()[0] == 0
    assert conn.execute("select count(*) from raw.customers").fetchone()[0] == 0
    failed = conn.execute("select file, error from ops.load_ledger where status = 'failed'").fetchall()
    assert len(failed) == 1 and "order_lines.csv" in failed[0][0]


def test_non_utf8_line_is_quarantined(conn, tmp_path):
    folder = write_shop(tmp_path / "shop", orders="")
    (folder / "orders.csv").write_bytes(ORDERS_HEADER.encode() +
                                        f"o-1,c-1,a@example.com,{TS},{TS},paid,EUR,10.00,0.00,caf\xe9\n".encode("latin-1"))
    ingest(conn, "shop", folder, INTERVAL)
    assert quarantine(conn)[0][3] == "non-UTF-8 bytes"


def test_web_log_interval_is_replaced_on_changed_file(conn, tmp_path):
    folder = tmp_path / "weblogs"
    folder.mkdir()
    line = '203.0.113.7 - - [01/Oct/2026:13:05:22 +0000] "GET /p/{n} HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11)"\n'
    (folder / "access.log").write_text(line.format(n=1) + line.format(n=2))
    ingest(conn, "weblogs", folder, INTERVAL)
    (folder / "access.log").write_text(line.format(n=3))   # a corrected redelivery
    ingest(conn, "weblogs", folder, INTERVAL)
    assert conn.execute("select path from raw.web_requests").fetchall() == [("/p/3",)]


def test_shop_json_lines_gzip_export_loads_like_csv(conn, tmp_path):
    import json

    folder = write_shop(tmp_path / "shop", orders="")
    (folder / "orders.csv").unlink()
    records = [{"order_id": "o-1", "customer_id": "c-1", "email": "a@example.com", "created_at": TS, "updated_at": TS,
                "status": "paid", "currency": "EUR", "total_amount": 12.5, "discount_amount": 0, "coupon_code": None,
                "channel": "web"}]
    payload = "\n".join(json.dumps(r) for r in records) + "\n" + '{"order_id": "o-2", "customer_id"\n'
    (folder / "orders.jsonl.gz").write_bytes(gzip.compress(payload.encode()))
    results = ingest(conn, "shop", folder, INTERVAL)
    orders = next(r for r in results if r.source == "orders")
    assert (orders.rows_read, orders.rows_loaded, orders.rows_quarantined) == (2, 1, 1)
    assert orders.extra_columns == ["channel"], "an added column is reported, not silently dropped"
    assert conn.execute("select total_amount from raw.orders").fetchone()[0] == 12.5
    assert "invalid JSON" in quarantine(conn)[0][3]
    assert "channel" in conn.execute("select error from ops.load_ledger where source = 'orders'").fetchone()[0]


def test_email_events_jsonl_and_csv_report_dedupe_and_machine_opens(conn, tmp_path):
    import json

    folder = tmp_path / "email"
    folder.mkdir()
    stamp = int(INTERVAL[0].timestamp()) + 3600
    events = [
        {"sg_event_id": "e1", "event": "open", "email": "a@example.com", "timestamp": stamp, "sg_machine_open": True},
        {"sg_event_id": "e2", "event": "open", "email": "a@example.com", "timestamp": stamp,
         "useragent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"},
        {"sg_event_id": "e3", "event": "open", "email": "b@example.com", "timestamp": stamp, "useragent": "Mozilla/5.0"},
        {"sg_event_id": "e3", "event": "open", "email": "b@example.com", "timestamp": stamp},
        {"sg_event_id": "e4", "event": "bounce", "email": "not-an-email", "timestamp": stamp},
    ]
    (folder / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    results = ingest(conn, "email", folder, INTERVAL)
    assert (results[0].rows_read, results[0].rows_loaded, results[0].rows_quarantined) == (5, 3, 2)
    flags = dict(conn.execute("select event_id, is_machine_open from raw.email_events").fetchall())
    assert flags == {"e1": True, "e2": True, "e3": False}
    # The next day's CSV report repeats e1 (ESPs resend): it is a duplicate, not a second open.
    next_day = tmp_path / "email2"
    next_day.mkdir()
    later = stamp + 86400
    (next_day / "events.csv").write_text("sg_event_id,event,email,timestamp,sg_machine_open\n"
                                         f"e1,open,a@example.com,{later},false\ne5,click,a@example.com,{later},\n")
    results = ingest(conn, "email", next_day, day_interval(date(2026, 10, 2)))
    assert (results[0].rows_read, results[0].rows_loaded, results[0].rows_quarantined) == (2, 1, 1)
    assert conn.execute("select count(*) from raw.email_events").fetchone()[0] == 4


def test_landing_zone_on_another_fsspec_backend(conn):
    """The loader reads through fsspec paths (UPath / Airflow's ObjectStoragePath), not just local files."""
    from upath import UPath

    folder = UPath("memory://landing/shop/2026-10-01")
    (folder / "customers.csv").write_text(CUSTOMERS_HEADER + f"c-1,a@example.com,Ann,DE,{TS},{TS},true\n")
    (folder / "orders.csv").write_text(ORDERS_HEADER + f"o-1,c-1,a@example.com,{TS},{TS},paid,EUR,10.00,0.00,\n")
    (folder / "order_lines.csv").write_text(LINES_HEADER + f"o-1,1,p-1,Mug,Kitchen,1,10.00,0.00,{TS}\n")
    results = ingest(conn, "shop", folder, INTERVAL)
    assert [r.status for r in results] == ["succeeded"] * 3
    assert conn.execute("select file from ops.load_ledger where source = 'orders'").fetchone()[0].startswith("memory://")


def test_order_lines_fast_path_falls_back_on_existing_or_repeated_keys(conn, tmp_path):
    """Lines normally only add rows and go straight into raw.order_lines; a re-exported line (a key
    already loaded) or a key repeated within the file takes the staging + merge path instead."""
    line = "o-1,{n},p-1,Mug,Kitchen,{q},10.00,0.00,{ts}\n"
    ingest(conn, "shop", write_shop(tmp_path / "d1", orders="", lines=line.format(n=1, q=1, ts=TS)), INTERVAL)
    later = "2026-10-02T08:00:00+00:00"
    lines = line.format(n=1, q=3, ts=later) + line.format(n=2, q=1, ts=later) + line.format(n=2, q=2, ts=later)
    results = ingest(conn, "shop", write_shop(tmp_path / "d2", orders="", lines=lines), day_interval(date(2026, 10, 2)))
    result = next(r for r in results if r.source == "order_lines")
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 2, 1)
    assert conn.execute("select line_number, quantity from raw.order_lines order by 1").fetchall() == [(1, 3), (2, 2)]
    assert [r[3] for r in quarantine(conn)] == ["duplicate order_id/line_number o-1/2 within the file (a later line wins)"]


def test_copy_lines_escape_exactly_what_copy_text_format_needs(conn):
    """The fast COPY line builder must round-trip NULLs, booleans, backslashes, tabs and newlines."""
    from ecrm.load.ingest import _copy_line

    rows = [(None, True, "plain", 7), ("a\\b", False, "tab\there", 0), ("\\N", None, "two\nlines\r", -1)]
    conn.execute("create temp table t (a text, b boolean, c text, d int)")
    with conn.cursor().copy("copy t from stdin") as copy:
        for row in rows:
            copy.write(_copy_line(row) + "\n")
    assert conn.execute("select * from t").fetchall() == [tuple(r) for r in rows]


SHOP_EDGE_ROWS = {
    "order_lines": [
        f"o-1,1,p-1,Mug,Kitchen,1,10.00,0.00,{TS}",
        f'o-1,2,p-2,"Mug, large",Kitchen,2,12.50,1.00,{TS}',            # quoted comma
        f'o-1,3,p-3,"Mug ""Deluxe""",Kitchen,1,9.99,0,{TS}',             # escaped quotes
        f"o-1,4,p-4,Müsli Schale,Küche,1,10,0.00,{TS}",                 # non-ASCII text and category
        f"o-1,5,p-5,,Kitchen,3,1.5,0.00,{TS}",                          # empty product name stays ''
        f"o-2,1,p-1, Mug ,Kitchen ,1,10.00,0.00,{TS}",                  # spaces a converter strips
        f"o-2,2,p-1,Mug,Kitchen,0,10.00,0.00,{TS}",                     # quantity 0
        f"o-2,3,p-1,Mug,Kitchen,007,10.00,0.00,{TS}",
        f"o-2,4,p-1,Mug,Kitchen,1,-1.00,0.00,{TS}",                     # negative amount
        f"o-2,5,p-1,Mug,Kitchen,1,1.005,0.00,{TS}",                     # three decimals
        f"o-2,x,p-1,Mug,Kitchen,1,1.00,0.00,{TS}",
        "o-2,6,p-1,Mug,Kitchen,1,1.00,0.00,2026-10-02T00:00:00+00:00",  # outside the interval
        "o-2,7,p-1,Mug,Kitchen,1,1.00,0.00,2026-10-01T10:00:00",        # no offset
        "o-2,8,p-1,Mug,Kitchen,1,1.00,0.00,2026-02-30T10:00:00+00:00",
        f"o-2,9,p-1,Mug,Kitchen,1,1.00,{TS}",                           # a field short
        "",
        f",10,p-1,Mug,Kitchen,1,1.00,0.00,{TS}",                        # empty key
        f"o-3,1,p-1,Mug\tTab,Kitchen,1,1.00,0.00,{TS}",
        f"o-3,2,p-1,Mug\\Slash,Kitchen,1,1.00,0.00,{TS}",
        f'o-3,3,p-1,"two\nlines",Kitchen,1,1.00,0.00,{TS}',              # a value over two lines
        f"o-3,4,p-1,Mug,Kitchen,1,1.00,0.00,{TS}",
    ],
    "orders": [
        f"o-1,c-1,a@example.com,{TS},{TS},paid,EUR,10.00,0.00,",
        f"o-2,c-1, a@example.com ,{TS},{TS},PAID,eur,10.00,0.00, WELCOME ",
        f"o-3,c-1,a@example.com,{TS},{TS},lost,EUR,10.00,0.00,",
        f"o-4,c-1,a@example.com,{TS},{TS},paid,XXX,10.00,0.00,",
        f"o-5,c-1,not-an-email,{TS},{TS},paid,EUR,10.00,0.00,",
        f"o-6,c-1,a+b.c@sub.example.co.uk,{TS},{TS},refunded,GBP,0,0,SUMMER10",
    ],
    "customers": [
        f"c-1,a@example.com,Ann,DE,{TS},{TS},true",
        f"c-2,b@example.com,,,{TS},{TS}, Yes ",
        f"c-3,c@example.com,Zoë,FR,{TS},{TS},maybe",
        f"c-4,d@example.com,Bo,SE,yesterday,{TS},0",
    ],
}
SHOP_HEADERS = {"order_lines": LINES_HEADER, "orders": ORDERS_HEADER, "customers": CUSTOMERS_HEADER}


@pytest.mark.parametrize("name", list(SHOP_EDGE_ROWS))
def test_shop_csv_fast_path_equals_line_by_line_parser(tmp_path, copy_values, name):
    from ecrm.sources.shop import SPECS, parse_csv

    rows = [r for r in SHOP_EDGE_ROWS[name] if "\n" not in r]
    body = [rows[i % len(rows)].replace("o-", f"o{i}-").replace("c-", f"c{i}-") for i in range(600)]
    body[550:550] = [r for r in SHOP_EDGE_ROWS[name] if "\n" in r]
    path = tmp_path / f"{name}.csv"
    # CRLF in the first half, a non-UTF-8 line in the middle; the multi-line value comes late
    path.write_bytes(SHOP_HEADERS[name].encode() + "\r\n".join(body[:300]).encode() + b"\r\n"
                     + b"caf\xe9,1\n" + "\n".join(body[300:]).encode() + b"\n")
    fast = list(parse_csv(SPECS[name], path, INTERVAL))
    assert copy_values(fast) == copy_values(parse_csv(SPECS[name], path, INTERVAL, fast=False))
    assert sum(len(b) for b in fast if not isinstance(b, tuple)) > 100  # the fast path did the bulk


def test_shop_csv_with_extra_and_reordered_columns_takes_the_fast_path_too(tmp_path, copy_values):
    from ecrm.sources.shop import SPECS, parse_csv

    header = "line_number,order_id,gift_wrap,product_id,product_name,category,quantity,unit_price,discount_amount,updated_at\n"
    path = tmp_path / "order_lines.csv"
    path.write_text(header + "".join(f"{i},o-1,no,p-1,Mug,Kitchen,1,10.00,0.00,{TS}\n" for i in range(1, 50)))
    extra: list[str] = []
    fast = list(parse_csv(SPECS["order_lines"], path, INTERVAL, extra))
    assert extra == ["gift_wrap"]
    assert copy_values(fast) == copy_values(parse_csv(SPECS["order_lines"], path, INTERVAL, fast=False))
    assert [len(b) for b in fast] == [49]


@pytest.mark.parametrize("block_size", [64, 200, 1 << 20])
def test_shop_csv_blocks_and_multi_line_values_across_block_ends(tmp_path, copy_values, monkeypatch, block_size):
    from functools import partial

    from ecrm.sources import common, shop

    monkeypatch.setattr(shop, "read_blocks", partial(common.read_blocks, size=block_size))
    rows = [f"o-{i},1,p-1,Mug,Kitchen,1,10.00,0.00,{TS}" for i in range(40)]
    rows[25] = f'o-25,1,p-1,"a mug\nover, three\nlines",Kitchen,1,10.00,0.00,{TS}'
    rows[30] = f'o-30,1,p-1,"Mug, ""large""",Kitchen,1,10.00,0.00,{TS}'
    path = tmp_path / "order_lines.csv"
    path.write_text(LINES_HEADER + "\n".join(rows) + "\n")
    fast = list(shop.parse_csv(shop.SPECS["order_lines"], path, INTERVAL))
    slow = copy_values(shop.parse_csv(shop.SPECS["order_lines"], path, INTERVAL, fast=False))
    assert copy_values(fast) == slow
    assert [line for line, _ in slow][24:28] == [26, 27, 30, 31]  # a 3-line value is reported where it starts
    assert sum(len(b) for b in fast if not isinstance(b, tuple)) >= 20


def test_discount_codes_load_as_json_and_missing_discounts_stay_unknown(conn, tmp_path):
    """Issue 29: several codes per order (Shopify's discount_codes) load normalised; the legacy
    coupon_code column keeps loading; an older export without discount columns loads them as NULL
    (unknown), never as 0; a campaign's discount_code lands with the campaign."""
    import json

    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "customers.csv").write_text(CUSTOMERS_HEADER)
    codes = json.dumps([{"code": "SPRING15", "amount": 4.5, "type": "percentage"},
                        {"code": "FREESHIP", "amount": "4.95", "type": "shipping"}])
    (folder / "orders.csv").write_text(
        ORDERS_HEADER.rstrip("\n") + ",discount_codes\n"
        + f"o-1,c-1,a@example.com,{TS},{TS},paid,EUR,25.50,4.50,SPRING15,\"{codes.replace(chr(34), chr(34) * 2)}\"\n"
        + f"o-2,c-1,a@example.com,{TS},{TS},paid,EUR,30.00,0.00,,\n"
        + f"o-3,c-1,a@example.com,{TS},{TS},paid,EUR,27.00,3.00,WELCOME10,\n")
    (folder / "order_lines.csv").write_text(LINES_HEADER)
    ingest(conn, "shop", folder, INTERVAL, "test")
    older = tmp_path / "older"  # an export of before discounts were exported at all
    older.mkdir()
    (older / "customers.csv").write_text(CUSTOMERS_HEADER)
    (older / "orders.csv").write_text("order_id,customer_id,email,created_at,updated_at,status,currency,total_amount\n"
                                      f"o-4,c-1,a@example.com,{TS},{TS},paid,EUR,12.00\n")
    (older / "order_lines.csv").write_text("order_id,line_number,product_id,product_name,category,quantity,"
                                           f"unit_price,updated_at\no-4,1,p-1,Mug,Kitchen,1,12.00,{TS}\n")
    ingest(conn, "shop", older, INTERVAL, "test")
    got = {r[0]: r[1:] for r in conn.execute(
        "select order_id, discount_amount::text, coupon_code, discount_codes from raw.orders order by 1")}
    assert got["o-1"] == ("4.50", "SPRING15", [{"code": "SPRING15", "type": "percentage", "amount": "4.50"},
                                               {"code": "FREESHIP", "type": "shipping", "amount": "4.95"}])
    assert got["o-2"] == ("0.00", None, None)
    assert got["o-3"] == ("3.00", "WELCOME10", None)
    assert got["o-4"] == (None, None, None)  # unknown, not zero
    assert conn.execute("select discount_amount from raw.order_lines where order_id = 'o-4'").fetchone() == (None,)
    assert conn.execute("select count(*) from quarantine.rejected_rows").fetchone()[0] == 0


EVENT_EDGE_LINES = [
    '{"sg_event_id":"e-dup","event":"open","event":"click","email":"a@example.com","timestamp":1790000000}',
    '{"sg_event_id":"e-num","event":"open","email":"a@example.com","timestamp":1790000000,"customer_id":42}',
    '{"sg_event_id":"e-float","event":"open","email":"a@example.com","timestamp":1790000000.5}',
    '{"sg_event_id":"e-text-ts","event":"open","email":"a@example.com","timestamp":"1790000000"}',
    '{"sg_event_id":"e-null-flag","event":"open","email":"a@example.com","timestamp":1790000000,"sg_machine_open":null}',
    '{"sg_event_id":"e-text-flag","event":"open","email":"a@example.com","timestamp":1790000000,"sg_machine_open":"1"}',
    '{"sg_event_id":"e-proxy","event":"open","email":"a@example.com","timestamp":1790000000,'
    '"useragent":"Mozilla/5.0 (via ggpht.com GoogleImageProxy)"}',
    '{"sg_event_id":"e-flag-false","event":"open","email":"a@example.com","timestamp":1790000000,'
    '"sg_machine_open":false,"useragent":"GoogleImageProxy"}',
    '{"sg_event_id":"e-blocked","event":"bounce","type":"blocked","email":"a@example.com","timestamp":1790000000,'
    '"reason":"421 later"}',
    '{"sg_event_id":"e-hard","event":"bounce","email":"a@example.com","timestamp":1790000000,"reason":""}',
    '{"sg_event_id":"","event":"open","email":"a@example.com","timestamp":1790000000}',
    '{"event":"open","email":"a@example.com","timestamp":1790000000}',
    '{"sg_event_id":"e-unknown","event":"opened","email":"a@example.com","timestamp":1790000000}',
    '{"sg_event_id":"e-early","event":"open","email":"a@example.com","timestamp":1700000000}',
    '{"sg_event_id":"e-late","event":"open","email":"a@example.com","timestamp":1890000000}',
    '{"sg_event_id":"e-space","event":"open","email":" a@example.com ","timestamp":1790000000}',
    '{"sg_event_id":"e-nbsp","event":"open","email":"a\u00a0b@example.com","timestamp":1790000000}',
    '{"sg_event_id":"e-umlaut","event":"open","email":"j\u00fcrgen@example.de","timestamp":1790000000}',
    '{"sg_event_id":"e-long","event":"open","email":"' + "a" * 250 + '@example.com","timestamp":1790000000}',
    '{"sg_event_id":"e-noat","event":"open","email":"example.com","timestamp":1790000000}',
    '{"sg_event_id":"e-nested","event":"open","email":"a@example.com","timestamp":1790000000,"category":["x"]}',
    '{"sg_event_id":"e-nested-id","event":"open","email":"a@example.com","timestamp":1790000000,"url":{"a":1}}',
    '{"sg_event_id":"e-nul","event":"open","email":"a@example.com","timestamp":1790000000,"reason":"a\\u0000b"}',
    '{"sg_event_id":"e-surrogate","event":"open","email":"a@example.com","timestamp":1790000000,"reason":"\\ud800"}',
    '{"sg_event_id":"e-tab","event":"click","email":"a@example.com","timestamp":1790000000,"url":"https://x/?a\\tb"}',
    '{"sg_event_id":"e-brace","event":"click","email":"a@example.com","timestamp":1790000000,"url":"https://x/{id}"}',
    '{"sg_event_id":"e-comma","event":"open","email":"a@example.com","timestamp":1790000000,}',
    '{"sg_event_id":"e-nan","event":"open","email":"a@example.com","timestamp":NaN}',
    '{"sg_event_id":"e-big","event":"open","email":"a@example.com","timestamp":1790000000,"x":123456789012345678901234}',
    '{"sg_event_id":"e-true","event":"open","email":"a@example.com","timestamp":true}',
    '\ufeff{"sg_event_id":"e-bom","event":"open","email":"a@example.com","timestamp":1790000000}',
    '[{"sg_event_id":"e-array"}]',
    '{"sg_event_id":"e-deep40","event":"open","email":"a@example.com","timestamp":1790000000,"x":'
    + "[" * 40 + "]" * 40 + "}",
    '{"sg_event_id":"e-deep2000","event":"open","email":"a@example.com","timestamp":1790000000,"x":'
    + "[" * 2000 + "]" * 2000 + "}",
    '{"sg_event_id":"e-two","event":"open","email":"a@example.com","timestamp":1790000000} {"sg_event_id":"x"}',
    '{"sg_event_id":"e-campaign","event":"delivered","email":"a@example.com","timestamp":1790000000,'
    '"campaign_id":"","customer_id":"c-1"}',
    "",
    "   ",
    "not json",
]


@pytest.mark.parametrize("block_size", [None, 4096])
def test_email_events_fast_path_equals_line_by_line_parser(tmp_path, copy_values, monkeypatch, block_size):
    """pyarrow's JSON reader gives the rows and rejects json.loads + the event checks give, line for
    line, whatever the line: a key twice, a value of another type, a null flag, escapes, nesting."""
    import json
    import random

    from ecrm.sources import RowBlock, common, email

    if block_size:  # many small blocks: each with its own mix of read and refused lines
        real = common.read_blocks
        monkeypatch.setattr(email, "read_blocks", lambda path, display: real(path, display, block_size))
    rng = random.Random(5)
    lines = []
    for i in range(4000):
        event = {"sg_event_id": f"ev-{i}", "event": rng.choice(["delivered", "open", "click", "processed"]),
                 "email": f"u{rng.randrange(500)}@example.com", "timestamp": 1790000000 + rng.randrange(-50000, 30000),
                 "campaign_id": f"cmp-{rng.randrange(3)}", "customer_id": f"c-{rng.randrange(500)}",
                 "sg_message_id": f"m.{i}", **rng.choice([{}, {"sg_machine_open": True}, {"useragent": "Mozilla/5.0"}])}
        lines.append(EVENT_EDGE_LINES[i // 50 % len(EVENT_EDGE_LINES)].replace('"e-', f'"e{i}-') if i % 50 == 0
                     else json.dumps(event, separators=(",", ":")))
    path = tmp_path / "events.jsonl"
    path.write_bytes(("\r\n".join(lines[:1500]) + "\n" + "\n".join(lines[1500:])).encode())
    interval = (day_interval(date(2026, 9, 21))[0], day_interval(date(2026, 9, 23))[1])
    fast = list(email.parse_events(path, interval))
    assert copy_values(fast) == copy_values(email.parse_events(path, interval, fast=False))
    assert sum(len(b) for b in fast if isinstance(b, RowBlock)) > 2000  # most lines took the fast path
