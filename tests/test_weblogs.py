"""Combined-format parsing: the shapes real nginx/Apache logs contain."""

from __future__ import annotations

from datetime import date

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
    assert parse_line("this is not a log line", INTERVAL) == "not a combined-format log line"
    late = parse_line('10.0.0.1 - - [02/Oct/2026:08:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"', INTERVAL)
    assert "outside the load interval" in late


def test_nginx_json_log_format_gives_the_same_row_as_combined():
    from ecrm.sources.weblogs import parse_json_line

    combined = parse_line('2001:db8::2 - - [01/Oct/2026:09:15:00 +0000] "GET /c?utm_source=email&ct=ab HTTP/2.0" '
                          '200 42 "https://example.com/" "Mozilla/5.0 \\"x\\" (X11)"', INTERVAL)
    json_row = parse_json_line('{"time":"2026-10-01T11:15:00+02:00","remote_addr":"2001:db8::2","remote_user":"",'
                               '"request":"GET /c?utm_source=email&ct=ab HTTP/2.0","status":200,"body_bytes_sent":42,'
                               '"http_referer":"https://example.com/","http_user_agent":"Mozilla/5.0 \\"x\\" (X11)"}',
                               INTERVAL)
    assert json_row == combined
    assert "invalid JSON" in parse_json_line('{"time": "2026-10-01T', INTERVAL)
