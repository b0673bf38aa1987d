"""Issue 26, defect 2: rows read are counted in physical lines of the file. For every source and
format, hostile files included (a stray quote on line 10 of 1,000, at the last line, near the end
of the parser's 4 MB block, lines without a final newline, CRLF mixed with LF, lines Python's JSON
reader chokes on), `ops.load_ledger.rows_read` equals `wc -l` of the file (minus a CSV header) and
rows_loaded + rows_quarantined. The one documented exception: a CSV value quoted across lines (a
product name with a line break) makes one row of the lines it spans, so each such line break is
one line fewer (docs/formats.md); the files here know how many they hold.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from ecrm.intervals import day_interval
from ecrm.load.ingest import ingest
from ecrm.sources import Reject

DAY = date(2026, 3, 1)
TS = f"{DAY}T10:00:00+00:00"
EPOCH = 1772359200  # DAY 10:00 UTC
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"
ORDERS_HEADER = ("order_id,customer_id,email,created_at,updated_at,status,currency,total_amount,"
                 "discount_amount,coupon_code")
LINES_HEADER = "order_id,line_number,product_id,product_name,category,quantity,unit_price,discount_amount,updated_at"
OTHER_SHOP_FILES = {"customers.csv": "customer_id,email,first_name,country,signed_up_at,updated_at,accepts_marketing\n",
                    "orders.csv": ORDERS_HEADER + "\n", "order_lines.csv": LINES_HEADER + "\n"}
DEEP = "[" * 30_000 + "]" * 30_000


def order(i: int, coupon: str = "") -> str:
    return f"o-{i},c-1,ann@example.com,{TS},{TS},paid,EUR,10.00,0.00,{coupon}"


def log(i: int, path: str = "/p") -> str:
    return f'10.0.0.1 - - [{DAY:%d/%b/%Y}:10:00:00 +0000] "GET {path}/{i} HTTP/1.1" 200 5 "-" "{UA}"'


def nginx(i: int, **overrides) -> str:
    return json.dumps({"time": TS, "remote_addr": "10.0.0.2", "remote_user": "", "request": f"GET /j/{i} HTTP/2.0",
                       "status": 200, "body_bytes_sent": 42, "http_referer": "", "http_user_agent": UA, **overrides})


def event(i: int, **overrides) -> str:
    return json.dumps({"sg_event_id": f"e-{i}", "event": "delivered", "email": "ann@example.com", "timestamp": EPOCH,
                       "campaign_id": "cmp-1", **overrides})


def replace(rows: list[str], changes: dict[int, str]) -> list[str]:
    """`changes` maps a 1-based data line to its new text."""
    return [changes.get(i, row) for i, row in enumerate(rows, start=1)]


def joined(rows: list[str], header: str | None = None, final_newline: bool = True, crlf_every: int = 0) -> bytes:
    """Rows joined with LF (CRLF after every `crlf_every`-th row), optionally without a final newline."""
    text = "".join(f"{row}{chr(13) if crlf_every and i % crlf_every == 0 else ''}\n" for i, row in enumerate(rows))
    if not final_newline:
        text = text[:-1]
    return ((header + "\n") if header else "").encode() + text.encode()


# (file name, content, line breaks inside quoted CSV values)
Files = list[tuple[str, bytes, int]]
orders = [order(i) for i in range(1, 1001)]
big = [order(i) for i in range(1, 45_001)]  # ~4.7 MB: more than one 4 MB block
FORMATS: dict[str, tuple[str, Callable[[], Files]]] = {
    "shop-csv": ("shop", lambda: [
        ("orders.csv", joined(replace(orders, {10: '"' + orders[9]}), ORDERS_HEADER), 0),
        ("orders.csv", joined(replace(orders, {1000: order(1000, '"SUMMER')}), ORDERS_HEADER), 0),
        ("orders.csv", joined(replace(orders, {500: order(500, '"A'), 503: order(503, 'B"')}), ORDERS_HEADER,
                              final_newline=False, crlf_every=3), 0),
        ("orders.csv", joined(orders[:20], ORDERS_HEADER, final_newline=False) + b',"', 0),
        ("orders.csv.gz", gzip.compress(joined(replace(big, {
            10: '"' + big[9], 37_990: order(37_990, '"X'), 38_200: '"' + big[38_199],
            38_100: order(38_100, '"SPRING\nSALE\r\n2026"'),            # a legit value over three lines
            45_000: order(45_000, '"Z')}), ORDERS_HEADER, crlf_every=7)), 2),
        ("order_lines.csv", joined([f'o-1,{i},p-1,"Mug\nno. {i}",Kitchen,1,10.00,0.00,{TS}' for i in range(1, 300)]
                                   + ['o-2,1,p-1,"Mug' + "\nx" * 150, f"o-2,2,p-1,Mug,Kitchen,1,10.00,0.00,{TS}"],
                                   LINES_HEADER), 299),
    ]),
    "shop-jsonl": ("shop", lambda: [
        ("orders.jsonl", joined([json.dumps({"order_id": f"o-{i}", "customer_id": "c-1", "email": "ann@example.com",
                                             "created_at": TS, "updated_at": TS, "status": "paid", "currency": "EUR",
                                             "total_amount": "1.00", "discount_amount": "0.00",
                                             "coupon_code": 'say "hi"'}) for i in range(1, 200)]
                                + ['{"order_id": "o-x", "coupon_code": "\\ud800"}', DEEP, "", '{"a": "b', "\ufeff{}",
                                   '{"total_amount": ' + "9" * 5000 + "}"], final_newline=False), 0),
    ]),
    "web-combined": ("weblogs", lambda: [
        ("access.log", joined(replace([log(i) for i in range(1, 1001)], {10: log(10, '/"q'), 1000: '"'}),
                              crlf_every=2), 0),
        ("access.log.gz", gzip.compress(joined([log(i) for i in range(1, 60_001)], final_newline=False)
                                        + b"\n\xff\xfe garbage\n\n" + ("x" * 300_000).encode() + b"\n" + b"tail"), 0),
    ]),
    "web-nginx-json": ("weblogs", lambda: [
        ("access.log", joined([nginx(i, http_referer='https://x.example/?q="a"') for i in range(1, 300)]
                              + [nginx(0, http_user_agent="\\ud800").replace("\\\\ud800", "\\ud800"), "{" + DEEP + "}",
                                 nginx(0).replace('"status": 200', '"status": ' + "2" * 5000), '{"time": "' + TS],
                              final_newline=False), 0),
    ]),
    "email-jsonl": ("email", lambda: [
        ("events.jsonl", joined([event(i, reason='550 "full"') for i in range(1, 500)]
                                + ['{"reason": "\\udc80"}', DEEP, "", '{"timestamp": ' + "1" * 5000 + "}", '"'],
                                crlf_every=5), 0),
    ]),
    "email-csv": ("email", lambda: [
        ("events.csv", joined([f'e-{i},delivered,ann@example.com,{EPOCH},"cmp,{i}"' for i in range(1, 500)]
                              + [f'"e-x,open,ann@example.com,{EPOCH},cmp-1', "", '"', "\xe9t\xe9"],
                              "sg_event_id,event,email,timestamp,campaign_id", final_newline=False), 0),
    ]),
}


def physical_lines(data: bytes, name: str) -> int:
    """`wc -l` (plus an unterminated last line), minus the header row of a CSV file."""
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0) - (1 if ".csv" in name else 0)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_rows_read_is_the_files_line_count(conn, tmp_path, fmt):
    source, make = FORMATS[fmt]
    for n, (name, content, continued) in enumerate(make()):
        day = DAY + timedelta(days=n)  # one day folder per file; its lines' timestamps are DAY's (within lookback)
        folder = tmp_path / source / day.isoformat()
        folder.mkdir(parents=True)
        for other, header in OTHER_SHOP_FILES.items() if source == "shop" else ():
            if other.split(".")[0] != name.split(".")[0]:
                (folder / other).write_text(header)
        (folder / name).write_bytes(content)
        ingest(conn, source, folder, day_interval(day))
        read, loaded, quarantined = conn.execute(
            "select rows_read, rows_loaded, rows_quarantined from ops.load_ledger where file = %s and status = "
            "'succeeded'", (str(folder / name),)).fetchone()
        assert (n, read) == (n, physical_lines(content, name) - continued)
        assert read == loaded + quarantined
        in_quarantine = conn.execute("select count(*) from quarantine.rejected_rows r join ops.load_ledger l "
                                     "on r._load_id = l.load_id where l.file = %s", (str(folder / name),)).fetchone()[0]
        assert in_quarantine == quarantined


@pytest.mark.parametrize("block_size", [48, 100, 333, 4096])
def test_stray_quotes_and_multi_line_values_across_block_ends(tmp_path, monkeypatch, copy_values, block_size):
    """Tiny read blocks put every record edge at a block end: a value still open at a block's end
    waits for the next block, a stray quote still costs one line, and both paths agree."""
    from functools import partial

    from ecrm.sources import common, shop

    monkeypatch.setattr(shop, "read_blocks", partial(common.read_blocks, size=block_size))
    rows = [order(i) for i in range(1, 301)]
    rows = replace(rows, {3: '"' + rows[2], 50: order(50, '"SUMMER\nSALE"'), 51: order(51, '"A\r\nB\r\nC"'),
                          120: order(120, '"X'), 121: order(121, 'Y"'), 200: order(200, '"' + "z\n" * 120 + '"'),
                          300: order(300, '"open at the end')})
    path = tmp_path / "orders.csv"
    content = joined(rows, ORDERS_HEADER, crlf_every=4)
    path.write_bytes(content)
    window = (datetime(1, 1, 2, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    fast = list(shop.parse_csv(shop.SPECS["orders"], path, window))
    slow = list(shop.parse_csv(shop.SPECS["orders"], path, window, fast=False))
    assert copy_values(fast) == copy_values(slow)
    assert len(slow) == physical_lines(content, path.name) - 3  # rows 50 and 51 hold 3 quoted line breaks
    unbalanced = sorted(line for line, item in slow if isinstance(item, Reject) and item.code == "unbalanced_quote")
    # physical lines: data row i is line i + 1 up to row 50, then 3 more after rows 50-51, 120 more after row 200
    # (its value would span 121 lines, over the limit: its first and last line are refused, the 119 between malformed)
    assert unbalanced == [4, 124, 204, 324, 424]
    assert [type(item).__name__ for line, item in slow if line in (125, 325)] == ["tuple", "tuple"]  # Y" and row 201
