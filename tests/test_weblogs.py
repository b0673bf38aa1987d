"""Combined-format parsing: the shapes real nginx/Apache logs contain."""

from __future__ import annotations

from datetime import date

import pytest

from ecrm.intervals import day_interval
from ecrm.sources.weblogs import parse_line

INTERVAL = day_interval(date(2026, 10, 1))


def test_email_click_through_carries_utm_and_token():
    row = parse_line('198.51.100.4 - - [01/Oct/2026:08:00:00 +0000] "GET /product/p-1?utm_source=email&'
                     'utm_medium=email&utm_campaign=cmp-1&ct=abc123 HTTP/2.0" 200 100 "-" '
                     '"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"', INTERVAL)
    assert row[4] == "/product/p-1" and row[6] == "HTTP/2.0"
    assert row[13:17] == ("email", "email", "cmp-1", "abc123")
    assert row[11] is False and row[12] is False


def test_ipv6_escaped_quotes_dashes_and_timezone():
    row = parse_line('2001:db8::1 - alice [01/Oct/2026:02:00:00 +0200] "GET /a HTTP/1.1" 304 - '
                     '"-" "Mozilla/5.0 \\"quoted\\" (X11; Linux x86_64)"', INTERVAL)
    assert row[1] == "2001:db8::1" and row[2] == "alice"
    assert row[0] == "2026-10-01T00:00:00+00:00"
    assert row[8] is None and row[9] is None
    assert row[10] == 'Mozilla/5.0 "quoted" (X11; Linux x86_64)'


def test_bots_and_static_assets_are_flagged():
    bot = parse_line('66.249.66.1 - - [01/Oct/2026:08:00:00 +0000] "GET /robots.txt HTTP/1.1" 200 10 "-" '
                     '"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"', INTERVAL)
    asset = parse_line('10.0.0.1 - - [01/Oct/2026:08:00:00 +0000] "GET /static/app.css HTTP/1.1" 200 10 "-" '
                       '"Mozilla/5.0 (X11)"', INTERVAL)
    assert bot[11] is True
    assert asset[12] is True


def test_garbage_and_out_of_interval_lines_are_rejected_with_reasons():
    assert parse_line("this is not a log line", INTERVAL) == ("malformed", "not a combined-format log line")
    code, reason = parse_line('10.0.0.1 - - [02/Oct/2026:08:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"', INTERVAL)
    assert code == "future_timestamp" and "after this load's window" in reason
    code, reason = parse_line('10.0.0.1 - - [20/Sep/2026:08:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"', INTERVAL)
    assert code == "too_late" and "`ecrm ingest weblogs 2026-09-20 --file`" in reason


def test_nginx_json_log_format_gives_the_same_row_as_combined():
    from ecrm.sources.weblogs import parse_json_line

    combined = parse_line('2001:db8::2 - - [01/Oct/2026:09:15:00 +0000] "GET /c?utm_source=email&ct=ab HTTP/2.0" '
                          '200 42 "https://example.com/" "Mozilla/5.0 \\"x\\" (X11)"', INTERVAL)
    json_row = parse_json_line('{"time":"2026-10-01T11:15:00+02:00","remote_addr":"2001:db8::2","remote_user":"",'
                               '"request":"GET /c?utm_source=email&ct=ab HTTP/2.0","status":200,"body_bytes_sent":42,'
                               '"http_referer":"https://example.com/","http_user_agent":"Mozilla/5.0 \\"x\\" (X11)"}',
                               INTERVAL)
    assert json_row == combined
    assert parse_json_line('{"time": "2026-10-01T', INTERVAL)[0] == "malformed"
    assert "invalid JSON" in parse_json_line('{"time": "2026-10-01T', INTERVAL)[1]


# -- the column-wise fast path gives exactly what the line-by-line parser gives -------------------
EDGE_LINES = [
    '203.0.113.9 - - [01/Oct/2026:08:00:00 +0000] "GET /product/p-1 HTTP/1.1" 200 512 "https://www.google.com/" '
    '"Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"',
    '2001:db8::1 - alice [01/Oct/2026:02:00:00 +0200] "GET /a?b=1?c HTTP/2.0" 304 - "-" "-"',
    '10.0.0.1 - - [01/Oct/2026:23:59:59 +0000] "GET /static/app.css HTTP/1.1" 200 10 "-" ""',
    '10.0.0.1 - - [01/Oct/2026:12:00:00 +0000] "GET /IMG/LOGO.PNG? HTTP/1.1" 200 10 "-" "curl/8.5"',
    '10.0.0.1 - - [01/Oct/2026:12:00:00 +0000] "GET /STATIC/x HTTP/1.1" 200 10 "-" "Googlebot/2.1"',
    '10.0.0.2 - - [01/Oct/2026:12:00:00 +0000] "GET /c?utm_source=email&utm_campaign=cmp%201&ct=ab HTTP/1.1" '
    '200 1 "-" "Mozilla/5.0"',
    '10.0.0.2 - - [01/Oct/2026:12:00:01 +0000] "GET /checkout/complete?order=o-9 HTTP/1.1" 200 1 "-" "Mozilla/5.0"',
    '10.0.0.2 - - [01/Oct/2026:12:00:02 +0000] "GET /c?utm_source=news&utm_medium=email&utm_campaign=cmp-1&ct=0a1b '
    'HTTP/1.1" 200 1 "-" "Mozilla/5.0"',
    '10.0.0.2 - - [01/Oct/2026:12:00:03 +0000] "GET /c?utm_source=&utm_source=x&xutm_medium=y&utm_campaign=a=b;c '
    'HTTP/1.1" 200 1 "-" "Mozilla/5.0"',
    '10.0.0.2 - - [01/Oct/2026:12:00:04 +0000] "GET /product/p-1?order=o-1&utm_source=a+b HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.2 - - [01/Oct/2026:12:00:05 +0000] "GET /product/p-2?order=o-2&ct= HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.3 - - [01/Oct/2026:12:00:00 +0000] "GET /q HTTP/1.1" 200 1 "-" "Mozilla/5.0 \\"quoted\\" agent"',
    '10.0.0.3 - - [01/Oct/2026:12:00:00 +0000] "GET /tab HTTP/1.1" 200 1 "-" "agent\twith tab"',
    '10.0.0.3 - - [01/Oct/2026:12:00:00 +0000] "GET /ü HTTP/1.1" 200 1 "-" "Mozilla/5.0 (Ünïcode)"',
    '10.0.0.3 - - [01/Oct/2026:12:00:00 +0000] "GET  /double-space HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.3 - - [01/Oct/2026:12:00:00 +0000] "\\x16\\x03\\x01" 400 157 "-" "-"',
    '10.0.0.3 - - [01/Oct/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 123456789012345678901 "-" "x"',
    '10.0.0.3 - - [31/Feb/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.3 - - [01/oct/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.3 - - [02/Oct/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.3 - - [01/Oct/2026:01:00:00 +0200] "GET / HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.3 - - [01/Oct/2026:12:00:00 +2500] "GET / HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.3 - - [01/Oct/2026:12:00:00 +0000] "GET /no-agent HTTP/1.1" 200 1',
    '10.0.0.3 - - [01/Oct/2026:12:00:00 +0000] "GET /trailing HTTP/1.1" 200 1 "-" "x" "198.51.100.7"',
    '{"time": "2026-10-01T09:15:00+00:00", "remote_addr": "2001:db8::2", "request": "GET /j HTTP/2.0", '
    '"status": 200, "body_bytes_sent": 5, "http_referer": "", "http_user_agent": "Mozilla/5.0"}',
    '10.0.0.4 - - [01/Oct/2026:12:00:06 +0000] "GET /s?q=a+b&utm_source=news%20letter&utm_medium=e+mail&utm_campaign='
    'cmp%2D1&ct=%41b&gclid=x%3Dy HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.4 - - [01/Oct/2026:12:00:07 +0000] "GET /s?utm%5Fsource=key-escaped&utm_medium=m HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.4 - - [01/Oct/2026:12:00:08 +0000] "GET /s?utm_source=tab%09in&utm_campaign=a%5Cb HTTP/1.1" 200 1 "-" "x"',
    '10.0.0.4 - - [01/Oct/2026:12:00:09 +0000] "GET /checkout/complete?order=o%2D7&utm_source=%zz+bad HTTP/1.1" '
    '200 1 "-" "x"',
    '10.0.0.4 - - [01/Oct/2026:12:00:10 +0000] "GET /s?utm_campaign=a%26b%3Dc&utm_source=&utm_source=second HTTP/1.1" '
    '200 1 "-" "x"',
    "",
    "   ",
    "garbage",
]


def test_fast_path_equals_line_by_line_parser(tmp_path, copy_values):
    import random

    from ecrm.sources.weblogs import parse_access_log

    rng = random.Random(7)
    lines = []
    for i in range(3000):  # many ordinary lines so that blocks mix fast and slow rows
        lines.append(EDGE_LINES[i // 4 % len(EDGE_LINES)] if i % 4 == 0 else
                     f'198.51.100.{rng.randrange(256)} - - [01/Oct/2026:{rng.randrange(24):02d}:{rng.randrange(60):02d}:'
                     f'{rng.randrange(60):02d} +0000] "GET /product/p-{rng.randrange(50)} HTTP/1.1" 200 '
                     f'{rng.randrange(9999)} "-" "Mozilla/5.0 (agent {rng.randrange(40)})"')
    log = tmp_path / "access.log"
    log.write_bytes(("\r\n".join(lines[:1000]) + "\n" + "\n".join(lines[1000:])).encode())
    fast = list(parse_access_log(log, INTERVAL))
    assert copy_values(fast) == copy_values(parse_access_log(log, INTERVAL, fast=False))
    assert sum(len(b) for b in fast if not isinstance(b, tuple)) > 2000  # most lines took the fast path


def test_fast_path_keeps_line_numbers_across_blocks_and_bad_bytes(tmp_path):
    from ecrm.sources.common import read_blocks, read_lines

    payload = b"".join(f"line {i}\n".encode() if i % 7 else b"\xff\xfe bad\n" for i in range(1, 400)) + b"no newline"
    path = tmp_path / "x.log"
    path.write_bytes(payload)
    by_line = [(n, raw) for n, _, raw in read_lines(path, "x.log")]
    by_block = [(first + k, raw) for first, block in read_blocks(path, "x.log", size=37)
                for k, raw in enumerate(block.split(b"\n"))]
    assert by_block == by_line


def test_access_log_loads_with_nulls_flags_and_reconciled_counts(conn, tmp_path):
    import gzip

    from ecrm.load.ingest import ingest

    folder = tmp_path / "weblogs"
    folder.mkdir()
    (folder / "access.log.gz").write_bytes(gzip.compress(("\n".join(EDGE_LINES) + "\n").encode()))
    [result] = ingest(conn, "weblogs", folder, INTERVAL)
    assert result.rows_read == len(EDGE_LINES) == result.rows_loaded + result.rows_quarantined
    # 31 Feb, +2500, lower-case month, bigint size, 3 blank/garbage; 2 Oct 00:00 is within the clock
    # skew and 01 Oct 01:00 +0200 (30 Sep UTC) within the lookback: both load, into their own days.
    assert result.rows_quarantined == 7
    row = conn.execute("select requested_at, remote_user, bytes_sent, referrer, user_agent, is_bot, is_static, "
                       "query_string, _line from raw.web_requests where path = '/a'").fetchone()
    assert row[1:] == ("alice", None, None, None, True, False, "b=1?c", 2)
    assert row[0].isoformat() == "2026-10-01T00:00:00+00:00"
    flags = dict(conn.execute("select path, is_static from raw.web_requests where path in "
                              "('/static/app.css', '/IMG/LOGO.PNG', '/STATIC/x', '/product/p-1')").fetchall())
    assert flags == {"/static/app.css": True, "/IMG/LOGO.PNG": True, "/STATIC/x": True, "/product/p-1": False}
    quarantined = conn.execute("select count(*) from quarantine.rejected_rows").fetchone()[0]
    assert quarantined == result.rows_quarantined


def test_cut_off_gzip_access_log_loads_nothing_and_names_the_file(conn, tmp_path):
    import gzip

    import pytest

    from ecrm.load.ingest import ingest
    from ecrm.sources import FileError

    folder = tmp_path / "weblogs"
    folder.mkdir()
    data = gzip.compress(("\n".join(EDGE_LINES[:3]) + "\n").encode() * 20000)
    (folder / "access.log.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileError, match="access.log.gz.*truncated gzip"):
        ingest(conn, "weblogs", folder, INTERVAL)
    assert conn.execute("select count(*) from raw.web_requests").fetchone()[0] == 0
    assert conn.execute("select status from ops.load_ledger").fetchall() == [("failed",)]


@pytest.mark.parametrize("query", [
    "utm_source=a&utm_source=b", "utm_source=&utm_source=b", "utm_source", "utm_source=a+b%20c",
    "utm%5Fsource=x", "ct=%zz", "ct=a=b&order=1", "x=1&&utm_medium=%E2%82%AC", "utm_campaign=%2B+", "order=;a",
    "utm_source=a;utm_medium=b", "a=1&utm_source=caf%C3%A9&ct=0a1b",
])
def test_query_values_equals_parse_qs(query):
    from urllib.parse import parse_qs

    from ecrm.sources.weblogs import WANTED_PARAMS, query_values

    expected = {k: v[0] for k, v in parse_qs(query).items() if k in WANTED_PARAMS}
    assert query_values(query) == expected
