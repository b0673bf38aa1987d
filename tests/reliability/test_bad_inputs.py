"""The bad-input corpus: landing files as real systems and real faults write them, each with the
outcome a user relies on. Every line of a loaded file is either a row in raw.* or a quarantine row
with a reason code, the file and the line (read = loaded + quarantined); a file that cannot be
loaded fails the source-day with an error naming it, a `failed` ledger row, and nothing partial.

Each case is one file in its own day folder (with harmless siblings for the source's other files),
all loaded into one database: one day per case, so cases cannot see each other.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from ecrm.intervals import day_interval
from ecrm.load.ingest import ingest
from ecrm.sources import REASON_CODES, FileError

FIRST_DAY = date(2026, 3, 1)
CUSTOMERS_HEADER = "customer_id,email,first_name,country,signed_up_at,updated_at,accepts_marketing\n"
ORDERS_HEADER = ("order_id,customer_id,email,created_at,updated_at,status,currency,total_amount,"
                 "discount_amount,coupon_code\n")
LINES_HEADER = "order_id,line_number,product_id,product_name,category,quantity,unit_price,discount_amount,updated_at\n"
DISCOUNT_HEADER = ORDERS_HEADER.rstrip("\n") + ",discount_codes\n"
CODES_2 = ('[{"code":"SPRING15","amount":"4.50","type":"percentage"},'
           '{"code":"FREESHIP","amount":"4.95","type":"shipping"}]')
SHOP_HEADERS = {"customers.csv": CUSTOMERS_HEADER, "orders.csv": ORDERS_HEADER, "order_lines.csv": LINES_HEADER}
EVENTS_CSV_HEADER = "sg_event_id,event,email,timestamp,campaign_id\n"
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"


@dataclass
class Day:
    """Good lines for one day, so each case can mix them with its bad one."""

    day: date

    @property
    def ts(self) -> str:
        return f"{self.day.isoformat()}T10:00:00+00:00"

    @property
    def epoch(self) -> int:
        return int(datetime(self.day.year, self.day.month, self.day.day, 10, tzinfo=UTC).timestamp())

    def log(self, path: str = "/products/1", agent: str = UA, stamp: str | None = None, size: str = "512",
            addr: str = "10.0.0.1") -> str:
        stamp = stamp or self.day.strftime("%d/%b/%Y:10:00:00 +0000")
        return f'{addr} - - [{stamp}] "GET {path} HTTP/1.1" 200 {size} "-" "{agent}"'

    def json_log(self, **overrides) -> str:
        obj = {"time": self.ts, "remote_addr": "10.0.0.2", "remote_user": "", "request": "GET /cart HTTP/2.0",
               "status": 200, "body_bytes_sent": 42, "http_referer": "", "http_user_agent": UA, **overrides}
        return json.dumps(obj)

    def event(self, event_id: str = "e-1", **overrides) -> str:
        # Event ids are unique across days (the ESP's are global): the day keeps cases apart.
        obj = {"sg_event_id": f"{self.day}-{event_id}" if event_id else event_id, "event": "delivered", "email": "ann@example.com", "timestamp": self.epoch,
               "campaign_id": "cmp-1", "customer_id": "c-1", **overrides}
        return json.dumps(obj)

    def customer(self, customer_id: str = "c-1", email: str = "ann@example.com", first_name: str = "Ann",
                 signed_up_at: str | None = None, accepts: str = "true") -> str:
        return f"{customer_id},{email},{first_name},DE,{signed_up_at or self.ts},{self.ts},{accepts}"

    def order(self, order_id: str = "o-1", total: str = "10.00", created_at: str | None = None,
              status: str = "paid", coupon: str = "") -> str:
        return (f"{order_id},c-1,ann@example.com,{created_at or self.ts},{self.ts},{status},EUR,{total},0.00,"
                f"{coupon}")

    def order_json(self, **overrides) -> str:
        obj = {"order_id": "o-1", "customer_id": "c-1", "email": "ann@example.com", "created_at": self.ts,
               "updated_at": self.ts, "status": "paid", "currency": "EUR", "total_amount": "10.00",
               "discount_amount": "0.00", "coupon_code": None, **overrides}
        return json.dumps(obj)

    def line(self, product_name: str = "Mug", quantity: str = "1", line_number: str = "1") -> str:
        return f"o-1,{line_number},p-1,{product_name},Kitchen,{quantity},10.00,0.00,{self.ts}"


def lines(*texts: str) -> bytes:
    return "".join(f"{t}\n" for t in texts).encode()


@dataclass
class Case:
    id: str
    source: str            # shop | weblogs | email | loyalty
    file: str              # the case's file name in the day folder
    content: object        # bytes, or a function Day -> bytes
    loaded: int | None = None                              # rows expected in raw.* from this file
    codes: dict[str, int] = field(default_factory=dict)     # quarantine reason codes expected
    fails: str | None = None                                # the error must name the file and say this
    continued: int = 0     # line breaks inside quoted CSV values (a record spanning n lines is 1 row read)

    def body(self, day: Day) -> bytes:
        return self.content(day) if callable(self.content) else self.content


def ok(case_id, source, file, content, loaded, continued=0, **codes) -> Case:
    return Case(case_id, source, file, content, loaded=loaded, codes=codes, continued=continued)


def fails(case_id, source, file, content, message) -> Case:
    return Case(case_id, source, file, content, fails=message)


def cut_gzip(data: bytes) -> bytes:
    packed = gzip.compress(data * 400)
    return packed[: len(packed) // 2]


def orders_csv(day: Day, rows: int, bad: dict[int, str] | None = None, newline: str = "\n") -> bytes:
    """An orders export of `rows` data lines; `bad` replaces data line i (1-based) with its text."""
    body = [(bad or {}).get(i, day.order(f"o-{i}")) for i in range(1, rows + 1)]
    return (ORDERS_HEADER + newline.join(body) + newline).encode()


def week_date(day: Day) -> str:
    """The day's 10:00 UTC as an ISO week date: Python's fromisoformat reads it, PostgreSQL does not."""
    year, week, weekday = day.day.isocalendar()
    return f"{year}-W{week:02d}-{weekday}T10:00:00+00:00"


def deep_json(levels: int = 30_000) -> str:
    return "[" * levels + "]" * levels


def long_line_gzip(head: str, size: int = 1 << 20) -> bytes:
    """A gzip whose one line is `size` bytes long (1 MB compresses to ~1 KB)."""
    return gzip.compress(head.encode() + b"x" * size + b"\n")


ARABIC_12 = "\u0661\u0662"    # Arabic-Indic digits: Python's int() and Decimal() read them as 12
ARABIC_DIGITS = str.maketrans("0123456789", "".join(chr(0x660 + i) for i in range(10)))


CASES = [
    # ---- web access logs -------------------------------------------------------------------------
    fails("web-zero-byte", "weblogs", "access.log", b"", "empty file"),
    fails("web-empty-gzip", "weblogs", "access.log.gz", gzip.compress(b""), "empty file"),
    fails("web-cut-gzip", "weblogs", "access.log.gz", lambda d: cut_gzip(lines(d.log(), d.log("/b"))),
          "corrupt or truncated gzip"),
    ok("web-blank-lines", "weblogs", "access.log", b"\n\n\n", 0, empty_line=3),
    ok("web-nul-in-agent", "weblogs", "access.log", lambda d: lines(d.log(), d.log(agent="Moz\x00illa")), 1,
       nul_byte=1),
    ok("web-binary-garbage", "weblogs", "access.log", lambda d: lines(d.log()) + b"\xff\xfe\x00\x81garbage\n", 1,
       not_utf8=1),
    ok("web-control-chars", "weblogs", "access.log", lambda d: lines(d.log(), "\x01\x02\x03\x04"), 1, malformed=1),
    ok("web-year-1", "weblogs", "access.log", lambda d: lines(d.log(stamp="01/Jan/0001:00:30:00 +0100")), 0,
       out_of_range=1),
    ok("web-year-9999", "weblogs", "access.log", lambda d: lines(d.log(), d.log(stamp="31/Dec/9999:23:00:00 +0000")),
       1, future_timestamp=1),
    ok("web-empty-zone", "weblogs", "access.log",
       lambda d: lines(d.log(stamp=d.day.strftime("%d/%b/%Y:10:00:00 "))), 0, invalid_value=1),
    ok("web-no-zone", "weblogs", "access.log", lambda d: lines(d.log(stamp=d.day.strftime("%d/%b/%Y:10:00:00"))),
       0, invalid_value=1),
    ok("web-zone-out-of-range", "weblogs", "access.log",
       lambda d: lines(d.log(stamp=d.day.strftime("%d/%b/%Y:10:00:00 +2500"))), 0, invalid_value=1),
    ok("web-bad-month", "weblogs", "access.log", lambda d: lines(d.log(stamp="01/Foo/2026:10:00:00 +0000")), 0,
       invalid_value=1),
    ok("web-feb-31", "weblogs", "access.log", lambda d: lines(d.log(stamp="31/Feb/2026:10:00:00 +0000")), 0,
       invalid_value=1),
    ok("web-huge-size", "weblogs", "access.log", lambda d: lines(d.log(size="9" * 19)), 0, out_of_range=1),
    ok("web-bad-status", "weblogs", "access.log", lambda d: lines(d.log().replace(" 200 ", " abc ")), 0,
       malformed=1),
    ok("web-long-path", "weblogs", "access.log", lambda d: lines(d.log(), d.log("/" + "a" * 20_000)), 1,
       too_long=1),
    ok("web-long-line", "weblogs", "access.log", lambda d: lines(d.log(agent="x" * 100_000)), 0, too_long=1),
    ok("web-json-nested-addr", "weblogs", "access.log", lambda d: lines(d.json_log(remote_addr={"ip": "1.2.3.4"})),
       0, not_scalar=1),
    ok("web-json-nul", "weblogs", "access.log", lambda d: lines(d.json_log(http_user_agent="a\u0000b"), d.json_log()),
       1, nul_byte=1),
    ok("web-json-bom", "weblogs", "access.log", lambda d: b"\xef\xbb\xbf" + lines(d.json_log(), d.log()), 2),
    ok("web-json-no-time", "weblogs", "access.log", lambda d: lines(d.json_log(time=None)), 0, missing_field=1),
    ok("web-json-time-number", "weblogs", "access.log", lambda d: lines(d.json_log(time=1e20)), 0,
       invalid_value=1),
    ok("web-json-space-in-addr", "weblogs", "access.log", lambda d: lines(d.json_log(remote_addr="1.2.3.4 x")), 0,
       invalid_value=1),
    ok("web-json-array", "weblogs", "access.log", lambda d: lines("[1, 2]", d.log()), 1, malformed=1),
    ok("web-crlf", "weblogs", "access.log", lambda d: lines(d.log()).replace(b"\n", b"\r\n") * 2, 2),
    ok("web-escaped-quotes", "weblogs", "access.log", lambda d: lines(d.log(agent='Moz \\"q\\" x')), 1),
    ok("web-ipv6-http2", "weblogs", "access.log",
       lambda d: lines(d.log(addr="2001:db8::1").replace("HTTP/1.1", "HTTP/2.0")), 1),
    ok("web-cut-last-line", "weblogs", "access.log", lambda d: lines(d.log()) + d.log().encode()[:40], 1,
       malformed=1),
    ok("web-too-late", "weblogs", "access.log",
       lambda d: lines(d.log(), d.log(stamp=(d.day - timedelta(days=9)).strftime("%d/%b/%Y:10:00:00 +0000"))), 1,
       too_late=1),
    ok("web-earlier-days-within-lookback", "weblogs", "access.log",
       lambda d: lines(d.log(), d.log(stamp=(d.day - timedelta(days=2)).strftime("%d/%b/%Y:23:59:00 +0000")),
                       d.log(stamp=(d.day + timedelta(days=1)).strftime("%d/%b/%Y:00:04:00 +0000"))), 3),
    ok("web-future", "weblogs", "access.log",
       lambda d: lines(d.log(), d.log(stamp=(d.day + timedelta(days=1)).strftime("%d/%b/%Y:01:00:00 +0000"))), 1,
       future_timestamp=1),
    ok("web-rotated-gz", "weblogs", "access.log.1.gz", lambda d: gzip.compress(lines(d.log(), d.log("/x"))), 2),
    # ---- e-mail events ---------------------------------------------------------------------------
    fails("email-zero-byte", "email", "events.jsonl", b"", "empty file"),
    fails("email-csv-header-lacks-column", "email", "events.csv",
          lambda d: f"sg_event_id,event,timestamp\n{d.day}-e-1,delivered,{d.epoch}\n".encode(),
          "lacks required column(s) email"),
    fails("email-csv-no-header", "email", "events.csv",
          lambda d: f"e-1,delivered,ann@example.com,{d.epoch},cmp-1\ne-2,open,bo@example.com,{d.epoch},cmp-1\n"
          .encode(), "a file without a header row?"),
    ok("email-csv-good", "email", "events.csv",
       lambda d: (EVENTS_CSV_HEADER + f"{d.day}-e-1,delivered,ann@example.com,{d.epoch},cmp-1\n"
                  f"{d.day}-e-2,open,bo@example.com,{d.epoch},cmp-1\n").encode(), 2),
    ok("email-csv-bom", "email", "events.csv",
       lambda d: ("\ufeff" + EVENTS_CSV_HEADER + f"{d.day}-e-1,delivered,ann@example.com,{d.epoch},cmp-1\n").encode(),
       1),
    ok("email-nested-customer", "email", "events.jsonl",
       lambda d: lines(d.event(customer_id={"id": "c-1"}), d.event("e-2")), 1, not_scalar=1),
    ok("email-nested-list", "email", "events.jsonl", lambda d: lines(d.event(url=["a", "b"])), 0, not_scalar=1),
    ok("email-nul-escape", "email", "events.jsonl", lambda d: lines(d.event(reason="x\u0000y"), d.event("e-2")), 1,
       nul_byte=1),
    ok("email-nul-raw", "email", "events.jsonl", lambda d: lines(d.event()).replace(b"cmp-1", b"cmp\x00-1"), 0,
       malformed=1),
    ok("email-ts-1e20", "email", "events.jsonl", lambda d: lines(d.event(timestamp=1e20)), 0, out_of_range=1),
    ok("email-ts-infinity", "email", "events.jsonl",
       lambda d: lines(d.event()).replace(str(d.epoch).encode(), b"Infinity"), 0, out_of_range=1),
    ok("email-ts-text", "email", "events.jsonl", lambda d: lines(d.event(timestamp="yesterday")), 0,
       invalid_value=1),
    ok("email-no-event-id", "email", "events.jsonl", lambda d: lines(d.event(sg_event_id="")), 0, missing_field=1),
    ok("email-unknown-event", "email", "events.jsonl", lambda d: lines(d.event(event="teleport")), 0,
       invalid_value=1),
    ok("email-long-address", "email", "events.jsonl", lambda d: lines(d.event(email="a" * 10_000 + "@example.com")),
       0, too_long=1),
    ok("email-invalid-address", "email", "events.jsonl", lambda d: lines(d.event(email="not-an-address")), 0,
       invalid_value=1),
    ok("email-bom", "email", "events.jsonl", lambda d: b"\xef\xbb\xbf" + lines(d.event(), d.event("e-2")), 2),
    ok("email-bom-concatenated", "email", "events.jsonl",
       lambda d: b"\xef\xbb\xbf" + lines(d.event()) + b"\xef\xbb\xbf" + lines(d.event("e-2")), 2),
    ok("email-truncated-json", "email", "events.jsonl", lambda d: lines(d.event(), d.event("e-2")[:30]), 1,
       malformed=1),
    ok("email-json-array", "email", "events.jsonl", lambda d: lines("[]", d.event()), 1, malformed=1),
    ok("email-duplicate-id", "email", "events.jsonl", lambda d: lines(d.event(), d.event(event="open")), 1,
       duplicate_in_file=1),
    ok("email-latin1", "email", "events.jsonl", lambda d: lines(d.event()) + b'{"reason": "caf\xe9"}\n', 1,
       not_utf8=1),
    ok("email-too-late", "email", "events.jsonl",
       lambda d: lines(d.event(), d.event("e-2", timestamp=d.epoch - 20 * 86400)), 1, too_late=1),
    ok("email-export-spanning-midnight", "email", "events.jsonl",
       lambda d: lines(d.event(), d.event("e-2", timestamp=d.epoch - 6 * 86400),  # 6 days back: within the lookback
                       d.event("e-3", timestamp=d.epoch + 14 * 3600 + 60),  # 00:01 next day: within the skew
                       d.event("e-4", timestamp=d.epoch + 16 * 3600)), 3, future_timestamp=1),
    ok("email-gzip", "email", "events.jsonl.gz", lambda d: gzip.compress(lines(d.event(), d.event("e-2"))), 2),
    fails("email-cut-gzip", "email", "events.jsonl.gz", lambda d: cut_gzip(lines(d.event())),
          "corrupt or truncated gzip"),
    ok("email-campaign-nested", "email", "campaigns.jsonl",
       lambda d: lines(json.dumps({"campaign_id": "cmp-1", "name": {"en": "Sale"}, "sent_at": d.ts,
                                   "audience": "sync_champions"})), 0, not_scalar=1),
    # ---- shop exports ----------------------------------------------------------------------------
    fails("shop-zero-byte", "shop", "orders.csv", b"", "empty file: no header row"),
    fails("shop-drift", "shop", "orders.csv", ORDERS_HEADER.replace(",currency", "").encode(),
          "schema drift: missing column(s) currency"),
    ok("shop-header-only", "shop", "orders.csv", ORDERS_HEADER.encode(), 0),
    ok("shop-amount-1e309", "shop", "orders.csv", lambda d: (ORDERS_HEADER + d.order(total="1e309") + "\n").encode(),
       0, out_of_range=1),
    ok("shop-amount-11-digits", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order(total="99999999999") + "\n" + d.order("o-2") + "\n").encode(), 1,
       out_of_range=1),
    ok("shop-created-1969", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order(created_at="1969-12-31T00:00:00+00:00") + "\n").encode(), 0,
       out_of_range=1),
    ok("shop-yesterdays-updated-at", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order(created_at=f"{d.day - timedelta(days=1)}T23:50:00+00:00")
                  .replace(f",{d.ts},paid", f",{d.day - timedelta(days=1)}T23:58:00+00:00,paid") + "\n").encode(), 1),
    ok("shop-updated-tomorrow", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order().replace(f",{d.ts},paid", f",{d.day + timedelta(days=1)}T09:00:00+00:00,paid")
                  + "\n").encode(), 0, future_timestamp=1),
    ok("shop-created-future", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order(created_at=f"{d.day + timedelta(days=3)}T00:00:00+00:00") + "\n")
       .encode(), 0, out_of_range=1),
    ok("shop-signup-year-1", "shop", "customers.csv",
       lambda d: (CUSTOMERS_HEADER + d.customer(signed_up_at="0001-01-01T00:00:00+01:00") + "\n").encode(), 0,
       out_of_range=1),
    ok("shop-signup-1900", "shop", "customers.csv",
       lambda d: (CUSTOMERS_HEADER + d.customer(signed_up_at="1900-01-01T00:00:00+00:00") + "\n").encode(), 0,
       out_of_range=1),
    ok("shop-long-email", "shop", "customers.csv",
       lambda d: (CUSTOMERS_HEADER + d.customer(email="a" * 10_000 + "@example.com") + "\n").encode(), 0,
       too_long=1),
    ok("shop-20mb-first-name", "shop", "customers.csv",
       lambda d: (CUSTOMERS_HEADER + d.customer(first_name="x" * 20_000_000) + "\n" + d.customer("c-2") + "\n")
       .encode(), 1, too_long=1),
    ok("shop-10k-first-name", "shop", "customers.csv",
       lambda d: (CUSTOMERS_HEADER + d.customer(first_name="x" * 10_000) + "\n").encode(), 0, too_long=1),
    ok("shop-nul-product", "shop", "order_lines.csv",
       lambda d: (LINES_HEADER + d.line(product_name="Mu\x00g") + "\n").encode(), 0, nul_byte=1),
    ok("shop-bad-boolean", "shop", "customers.csv",
       lambda d: (CUSTOMERS_HEADER + d.customer(accepts="maybe") + "\n").encode(), 0, invalid_value=1),
    ok("shop-zero-quantity", "shop", "order_lines.csv",
       lambda d: (LINES_HEADER + d.line(quantity="0") + "\n").encode(), 0, invalid_value=1),
    ok("shop-huge-line-number", "shop", "order_lines.csv",
       lambda d: (LINES_HEADER + d.line(line_number="9999999999") + "\n").encode(), 0, invalid_value=1),
    ok("shop-unknown-status", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order(status="teleported") + "\n").encode(), 0, invalid_value=1),
    ok("shop-naive-timestamp", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order(created_at=f"{d.day}T10:00:00") + "\n").encode(), 0, invalid_value=1),
    ok("shop-empty-order-id", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order(order_id=" ") + "\n").encode(), 0, missing_field=1),
    ok("shop-duplicate-order", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order() + "\n" + d.order(status="shipped") + "\n").encode(), 1,
       duplicate_in_file=1),
    ok("shop-multiline-quoted", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order(coupon='"SUM\nMER"') + "\n" + d.order("o-2") + "\n").encode(), 2,
       continued=1),
    ok("shop-bom-header", "shop", "orders.csv", lambda d: ("\ufeff" + ORDERS_HEADER + d.order() + "\n").encode(), 1),
    ok("shop-short-row", "shop", "orders.csv", lambda d: (ORDERS_HEADER + "o-1,c-1\n" + d.order("o-2") + "\n")
       .encode(), 1, malformed=1),
    ok("shop-jsonl-nested", "shop", "orders.jsonl", lambda d: lines(d.order_json(customer_id={"id": "c-1"}),
                                                                      d.order_json(order_id="o-2")), 1, not_scalar=1),
    ok("shop-jsonl-nul", "shop", "orders.jsonl", lambda d: lines(d.order_json(coupon_code="A\u0000B")), 0,
       nul_byte=1),
    ok("shop-jsonl-bom", "shop", "orders.jsonl", lambda d: b"\xef\xbb\xbf" + lines(d.order_json()), 1),
    ok("shop-jsonl-inf-amount", "shop", "orders.jsonl",
       lambda d: lines(d.order_json(total_amount=1.0)).replace(b"1.0", b"1e309"), 0, invalid_value=1),
    ok("shop-jsonl-bool-amount", "shop", "orders.jsonl", lambda d: lines(d.order_json(total_amount=True)), 0,
       invalid_value=1),
    # ---- round 2 (issue 26): stray quotes, values PostgreSQL rejects, hostile lengths -------------
    ok("shop-stray-quote-line-10-of-1000", "shop", "orders.csv",
       lambda d: orders_csv(d, 1000, {10: '"' + d.order("o-10")}), 999, unbalanced_quote=1),
    ok("shop-stray-quote-first-line", "shop", "orders.csv",
       lambda d: orders_csv(d, 50, {1: '"' + d.order("o-1")}), 49, unbalanced_quote=1),
    ok("shop-stray-quote-last-line", "shop", "orders.csv",
       lambda d: orders_csv(d, 50, {50: d.order("o-50", coupon='"SUMMER')}), 49, unbalanced_quote=1),
    ok("shop-stray-quote-no-final-newline", "shop", "orders.csv",
       lambda d: orders_csv(d, 20)[:-1] + b',"', 19, unbalanced_quote=1),
    ok("shop-two-stray-quotes", "shop", "orders.csv",
       lambda d: orders_csv(d, 30, {5: '"' + d.order("o-5"), 8: d.order("o-8", coupon='"X')}), 28,
       unbalanced_quote=2),
    ok("shop-closing-looking-stray-quote", "shop", "orders.csv",  # line 8's quote must not close line 5's
       lambda d: orders_csv(d, 30, {5: d.order("o-5", coupon='"A'), 8: d.order("o-8", coupon='B"')}), 29,
       unbalanced_quote=1),
    ok("shop-stray-quote-gzip", "shop", "orders.csv.gz",
       lambda d: gzip.compress(orders_csv(d, 300, {10: '"' + d.order("o-10")})), 299, unbalanced_quote=1),
    ok("shop-stray-quote-crlf", "shop", "orders.csv",
       lambda d: orders_csv(d, 40, {12: '"' + d.order("o-12")}, newline="\r\n"), 39, unbalanced_quote=1),
    ok("shop-quote-run-past-limit", "shop", "order_lines.csv",
       lambda d: (LINES_HEADER + 'o-1,1,p-1,"a description\n' + "x" * 40_000 + "\n" + "y" * 40_000
                  + f'",Kitchen,1,10.00,0.00,{d.ts}\n' + d.line(line_number="2") + "\n").encode(), 1,
       unbalanced_quote=1, malformed=2),
    ok("shop-inch-quote-in-plain-field", "shop", "order_lines.csv",
       lambda d: (LINES_HEADER + d.line(product_name='Monitor 27"') + "\n").encode(), 1),
    ok("shop-multiline-product-name", "shop", "order_lines.csv",
       lambda d: (LINES_HEADER + d.line(product_name='"Mug\nlarge, blue"') + "\n"
                  + d.line(line_number="2") + "\n").encode(), 2, continued=1),
    ok("shop-multiline-crlf-three-lines", "shop", "order_lines.csv",
       lambda d: (LINES_HEADER + d.line(product_name='"Mug\r\nwith ""quotes""\r\nand lines"') + "\r\n"
                  + d.line(line_number="2") + "\r\n").encode(), 2, continued=2),
    ok("shop-crlf-mixed", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order("o-1") + "\r\n" + d.order("o-2") + "\n" + d.order("o-3") + "\r\n")
       .encode(), 3),
    ok("shop-arabic-quantity", "shop", "order_lines.csv",
       lambda d: (LINES_HEADER + d.line(quantity=ARABIC_12) + "\n" + d.line(line_number="2") + "\n").encode(), 1,
       invalid_value=1),
    ok("shop-arabic-line-number", "shop", "order_lines.csv",
       lambda d: (LINES_HEADER + d.line(line_number=ARABIC_12) + "\n" + d.line(line_number="2") + "\n").encode(),
       1, invalid_value=1),
    ok("shop-arabic-price", "shop", "order_lines.csv",
       lambda d: (LINES_HEADER + d.line().replace(",10.00,", f",{ARABIC_12}.00,") + "\n"
                  + d.line(line_number="2") + "\n").encode(), 1, invalid_value=1),
    ok("shop-arabic-total", "shop", "orders.csv",
       lambda d: orders_csv(d, 3, {2: d.order("o-2", total=ARABIC_12)}), 2, invalid_value=1),
    ok("shop-week-date", "shop", "orders.csv",
       lambda d: orders_csv(d, 3, {2: d.order("o-2").replace(f",{d.ts},paid", f",{week_date(d)},paid")}), 2,
       invalid_value=1),
    ok("shop-comma-fraction", "shop", "orders.csv",
       lambda d: orders_csv(d, 3, {2: d.order("o-2").replace(f",{d.ts},paid", f',"{d.day}T10:00:00,5+00:00",paid')}),
       2, invalid_value=1),
    ok("shop-offset-23-59", "shop", "customers.csv",
       lambda d: (CUSTOMERS_HEADER + d.customer().replace(f",{d.ts},true", f",{d.day}T00:00:00+23:59,true") + "\n"
                  + d.customer("c-2") + "\n").encode(), 1, invalid_value=1),
    ok("shop-offset-seconds", "shop", "customers.csv",
       lambda d: (CUSTOMERS_HEADER + d.customer().replace(f",{d.ts},true", f",{d.day}T10:00:00+00:00:30.5,true")
                  + "\n" + d.customer("c-2") + "\n").encode(), 1, invalid_value=1),
    ok("shop-basic-format-timestamp", "shop", "orders.csv",
       lambda d: orders_csv(d, 2, {1: d.order("o-1").replace(f",{d.ts},paid", f",{d.day:%Y%m%d}T100000Z,paid")}),
       1, invalid_value=1),
    ok("shop-lowercase-t", "shop", "orders.csv",
       lambda d: orders_csv(d, 2, {1: d.order("o-1").replace(f",{d.ts},paid", f",{d.day}t10:00:00+00:00,paid")}),
       1, invalid_value=1),
    ok("shop-hour-only-offset-and-z", "shop", "orders.csv",
       lambda d: orders_csv(d, 2, {1: d.order("o-1").replace(f",{d.ts},paid", f",{d.day}T10:00:00Z,paid"),
                                   2: d.order("o-2").replace(f",{d.ts},paid", f",{d.day} 12:00:00.25+01,paid")}),
       2),
    ok("shop-long-line-gzip", "shop", "orders.csv.gz",
       lambda d: gzip.compress(orders_csv(d, 2)) + long_line_gzip("o-9,"), 2, too_long=1),
    ok("shop-jsonl-5000-digit-number", "shop", "orders.jsonl",
       lambda d: lines(d.order_json(order_id="o-2"))
       + d.order_json(total_amount=1).replace(": 1,", ": " + "9" * 5000 + ",").encode() + b"\n", 1,
       out_of_range=1),
    ok("shop-jsonl-lone-surrogate", "shop", "orders.jsonl",
       lambda d: lines(d.order_json(order_id="o-2"), d.order_json(coupon_code="X").replace('"X"', '"\\ud800"')), 1,
       not_utf8=1),
    ok("shop-jsonl-emoji-pair", "shop", "orders.jsonl",
       lambda d: lines(d.order_json(coupon_code="X").replace('"X"', '"\\ud83d\\ude00"')), 1),
    ok("shop-jsonl-deep-nesting", "shop", "orders.jsonl",
       lambda d: lines(d.order_json(order_id="o-2"), deep_json()), 1, malformed=1),
    ok("shop-jsonl-deep-in-object", "shop", "orders.jsonl",
       lambda d: lines(d.order_json(order_id="o-2"), '{"order_id": ' + deep_json(5_000) + "}"), 1, malformed=1),
    ok("shop-jsonl-arabic-quantity", "shop", "order_lines.jsonl",
       lambda d: lines(json.dumps({"order_id": "o-1", "line_number": "1", "product_id": "p-1", "product_name": "Mug",
                                   "category": "Kitchen", "quantity": ARABIC_12, "unit_price": "1.00",
                                   "discount_amount": "0.00", "updated_at": d.ts})), 0, invalid_value=1),
    ok("shop-jsonl-arabic-price-and-line-number", "shop", "order_lines.jsonl",
       lambda d: lines(*[json.dumps({"order_id": "o-1", "line_number": number, "product_id": "p-1",
                                     "product_name": "Mug", "category": "Kitchen", "quantity": 1, "unit_price": price,
                                     "discount_amount": "0.00", "updated_at": d.ts})
                         for number, price in (("1", ARABIC_12), (ARABIC_12, "1.00"), ("3", "1.00"))]), 1,
       invalid_value=2),
    ok("shop-jsonl-week-date", "shop", "orders.jsonl",
       lambda d: lines(d.order_json(order_id="o-2"), d.order_json(updated_at=week_date(d))), 1, invalid_value=1),
    ok("shop-jsonl-quotes-in-strings", "shop", "orders.jsonl",
       lambda d: lines(d.order_json(coupon_code='SAY "HI", \'YO\''), d.order_json(order_id='o-"2"')), 2),
    ok("email-5000-digit-timestamp", "email", "events.jsonl",
       lambda d: lines(d.event(), d.event("e-2").replace(str(d.epoch), "1" * 5000)), 1, out_of_range=1),
    ok("email-lone-surrogate", "email", "events.jsonl",
       lambda d: lines(d.event(), '{"reason":"\\ud800", ' + d.event("e-2")[1:]), 1, not_utf8=1),
    ok("email-low-surrogate-in-address", "email", "events.jsonl",
       lambda d: lines(d.event(), d.event("e-2", email="x").replace('"x"', '"ann\\udc80@example.com"')), 1,
       not_utf8=1),
    ok("email-deep-nesting", "email", "events.jsonl", lambda d: lines(d.event(), deep_json()), 1, malformed=1),
    ok("email-arabic-timestamp-text", "email", "events.jsonl",
       lambda d: lines(d.event(), d.event("e-2", timestamp=str(d.epoch).translate(ARABIC_DIGITS))),
       1, invalid_value=1),
    ok("email-csv-arabic-timestamp", "email", "events.csv",
       lambda d: (EVENTS_CSV_HEADER + f"{d.day}-e-1,delivered,ann@example.com,{d.epoch},cmp-1\n"
                  f"{d.day}-e-2,open,ann@example.com,{ARABIC_12},cmp-1\n").encode(), 1, invalid_value=1),
    ok("email-csv-stray-quote", "email", "events.csv",
       lambda d: (EVENTS_CSV_HEADER + f"{d.day}-e-1,delivered,ann@example.com,{d.epoch},cmp-1\n"
                  f'"{d.day}-e-2,open,ann@example.com,{d.epoch},cmp-1\n'
                  f"{d.day}-e-3,open,ann@example.com,{d.epoch},cmp-1\n").encode(), 2, unbalanced_quote=1),
    ok("email-csv-crlf-and-quoted-comma", "email", "events.csv",
       lambda d: (EVENTS_CSV_HEADER + f'{d.day}-e-1,delivered,ann@example.com,{d.epoch},"cmp,1"\r\n'
                  f"{d.day}-e-2,open,ann@example.com,{d.epoch},cmp-1\n").encode(), 2),
    ok("email-json-escaped-quotes", "email", "events.jsonl",
       lambda d: lines(d.event(reason='550 "mailbox full", try later')), 1),
    ok("email-long-line-gzip", "email", "events.jsonl.gz",
       lambda d: gzip.compress(lines(d.event())) + long_line_gzip('{"reason": "'), 1, too_long=1),
    ok("email-campaign-week-date", "email", "campaigns.jsonl",
       lambda d: lines(json.dumps({"campaign_id": "cmp-1", "name": "Sale", "sent_at": week_date(d),
                                   "audience": "sync_champions"}),
                       json.dumps({"campaign_id": "cmp-2", "name": "Sale", "sent_at": d.ts,
                                   "audience": "sync_champions"})), 1, invalid_value=1),
    ok("web-json-5000-digit-status", "weblogs", "access.log",
       lambda d: lines(d.log(), d.json_log(status=1).replace('"status": 1,', '"status": ' + "2" * 5000 + ",")), 1,
       out_of_range=1),
    ok("web-json-lone-surrogate", "weblogs", "access.log",
       lambda d: lines(d.log(), d.json_log(http_user_agent="X").replace('"X"', '"Moz\\udfff"')), 1, not_utf8=1),
    ok("web-json-deep-nesting", "weblogs", "access.log",
       lambda d: lines(d.log(), '{"time": ' + deep_json() + "}"), 1, malformed=1),
    ok("web-json-week-date", "weblogs", "access.log",
       lambda d: lines(d.log(), d.json_log(time=week_date(d))), 1, invalid_value=1),
    ok("web-json-offset-23-59", "weblogs", "access.log",
       lambda d: lines(d.log(), d.json_log(time=f"{d.day}T10:00:00-23:59")), 1, invalid_value=1),
    ok("web-json-comma-fraction", "weblogs", "access.log",
       lambda d: lines(d.log(), d.json_log(time=f"{d.day}T10:00:00,5+00:00")), 1, invalid_value=1),
    ok("web-json-basic-format", "weblogs", "access.log",
       lambda d: lines(d.log(), d.json_log(time=f"{d.day:%Y%m%d}T100000Z")), 1, invalid_value=1),
    ok("web-arabic-status", "weblogs", "access.log",
       lambda d: lines(d.log(), d.log().replace(" 200 ", " \u0662\u0660\u0660 ")), 1, malformed=1),
    ok("web-arabic-size", "weblogs", "access.log", lambda d: lines(d.log(), d.log(size=ARABIC_12)), 1, malformed=1),
    ok("web-arabic-timestamp", "weblogs", "access.log",
       lambda d: lines(d.log(), d.log(stamp=d.day.strftime("%d/%b/%Y:10:00:00 +0000").replace("10:", "\u0661\u0660:"))),
       1, invalid_value=1),
    ok("web-stray-quote-line-10-of-1000", "weblogs", "access.log",
       lambda d: lines(*[d.log(f"/p/{i}") if i != 10 else d.log('/p/"10') for i in range(1, 1001)]), 999,
       malformed=1),
    ok("web-crlf-mixed-no-final-newline", "weblogs", "access.log",
       lambda d: (d.log("/a") + "\r\n" + d.log("/b") + "\n" + d.log("/c") + "\r\n" + d.log("/d")).encode(), 4),
    ok("web-long-line-gzip", "weblogs", "access.log.gz",
       lambda d: gzip.compress(lines(d.log())) + long_line_gzip('10.0.0.1 - - [') + gzip.compress(lines(d.log("/z"))),
       2, too_long=1),
    ok("web-json-quotes-in-request", "weblogs", "access.log",
       lambda d: lines(d.json_log(request='GET /search?q="mug" HTTP/1.1', http_referer='https://x.example/"a"')), 1),
    # ---- issue 29: discount codes (Shopify's discount_codes array, WooCommerce coupon lines) -------
    ok("shop-discount-codes-csv", "shop", "orders.csv", lambda d: (
        DISCOUNT_HEADER
        + d.order("o-1").replace(",0.00,", ",4.50,") + ',"' + CODES_2.replace('"', '""') + '"\n'
        + d.order("o-2") + ",\n"                                   # no codes
        + d.order("o-3", coupon="SPRING15") + ",\n").encode(), 3),  # the legacy column only
    ok("shop-discount-codes-jsonl", "shop", "orders.jsonl", lambda d: lines(
        d.order_json(discount_amount="4.50", discount_codes=json.loads(CODES_2)),
        d.order_json(order_id="o-2", discount_codes=[{"code": "TEN", "discount": "1.00", "discount_type": "fixed_cart"}]),
        d.order_json(order_id="o-3", discount_codes=[])), 3),
    ok("shop-discount-negative-order", "shop", "orders.csv",
       lambda d: (ORDERS_HEADER + d.order().replace(",0.00,", ",-1.00,") + "\n" + d.order("o-2") + "\n").encode(), 1,
       negative_discount=1),
    ok("shop-discount-negative-code", "shop", "orders.jsonl", lambda d: lines(
        d.order_json(discount_codes=[{"code": "X", "amount": "-5.00", "type": "fixed_amount"}]),
        d.order_json(order_id="o-2")), 1, negative_discount=1),
    ok("shop-discount-negative-line", "shop", "order_lines.csv",
       lambda d: (LINES_HEADER + d.line().replace(",0.00,", ",-1.00,") + "\n" + d.line(line_number="2") + "\n")
       .encode(), 1, negative_discount=1),
    ok("shop-discount-line-above-total", "shop", "order_lines.csv",  # 2 x 10.00 with 25.00 off; 20.00 off is fine
       lambda d: (LINES_HEADER + d.line(quantity="2").replace(",0.00,", ",25.00,") + "\n"
                  + d.line(quantity="2", line_number="2").replace(",0.00,", ",20.00,") + "\n").encode(), 1,
       discount_above_total=1),
    ok("shop-discount-codes-above-total", "shop", "orders.jsonl", lambda d: lines(
        d.order_json(total_amount="10.00", discount_amount="2.00",
                     discount_codes=[{"code": "BIG", "amount": "50.00", "type": "fixed_amount"}]),
        d.order_json(order_id="o-2", total_amount="10.00", discount_amount="2.00",  # shipping is not in the total
                     discount_codes=[{"code": "SHIP", "amount": "50.00", "type": "shipping"}])), 1,
       discount_above_total=1),
    ok("shop-discount-unknown-type", "shop", "orders.jsonl", lambda d: lines(
        d.order_json(discount_codes=[{"code": "X", "amount": "1.00", "type": "bogo"}]),
        d.order_json(order_id="o-2", discount_codes=[{"code": "X", "amount": "1.00", "type": "percentage"}])), 1,
       unknown_discount_type=1),
    ok("shop-discount-codes-not-an-array", "shop", "orders.csv", lambda d: (
        DISCOUNT_HEADER + d.order() + ",SUMMER\n" + d.order("o-2") + ',"[{""code"": ""A""}]"\n').encode(), 0,
       malformed=1, missing_field=1),
    ok("shop-orders-without-discount-columns", "shop", "orders.csv", lambda d: (
        "order_id,customer_id,email,created_at,updated_at,status,currency,total_amount\n"
        + ",".join(d.order().split(",")[:8]) + "\n").encode(), 1),
    ok("shop-lines-without-discount-column", "shop", "order_lines.jsonl", lambda d: lines(json.dumps(
        {"order_id": "o-1", "line_number": 1, "product_id": "p-1", "product_name": "Mug", "category": "Kitchen",
         "quantity": 1, "unit_price": "10.00", "updated_at": d.ts})), 1),
]


def ledger_line(day: Day, event_id: str = "l-1", event_type: str = "earned", points: str = "120",
                tier: str = "") -> str:
    """A loyalty ledger row (ids unique across days, like the app's)."""
    return f"{day.day}-{event_id},m-1,c-1,ann@example.com,{event_type},{points},o-1,{tier},{day.ts}"


LEDGER_HEADER = "event_id,member_id,customer_id,email,event_type,points,order_id,tier,occurred_at"
CASES += [
    ok("loyalty-unknown-event-type", "loyalty", "ledger.csv",
       lambda d: lines(LEDGER_HEADER, ledger_line(d), ledger_line(d, "l-2", "bonus")), 1, unknown_event_type=1),
    ok("loyalty-earned-negative", "loyalty", "ledger.csv",
       lambda d: lines(LEDGER_HEADER, ledger_line(d, points="-5"), ledger_line(d, "l-2", "redeemed", "0")), 0,
       wrong_sign=2),
    ok("loyalty-positive-redemption-and-tier", "loyalty", "ledger.csv",
       lambda d: lines(LEDGER_HEADER, ledger_line(d, event_type="redeemed", points="500"),
                       ledger_line(d, "l-2", "tier_changed", "", "Silver"), ledger_line(d, "l-3", "tier_changed", "")),
       2, missing_field=1),
    ok("loyalty-points-not-whole", "loyalty", "ledger.jsonl", lambda d: lines(
        json.dumps({"event_id": f"{d.day}-l-1", "member_id": "m-1", "event_type": "earned", "points": 1.5,
                    "occurred_at": d.ts}),
        json.dumps({"event_id": f"{d.day}-l-2", "member_id": "m-1", "event_type": "earned", "points": "١٢",
                    "occurred_at": d.ts}),
        json.dumps({"event_id": f"{d.day}-l-3", "member_id": {"id": "m-1"}, "event_type": "earned", "points": 3,
                    "occurred_at": d.ts})), 0, invalid_value=2, not_scalar=1),
    ok("loyalty-header-only", "loyalty", "ledger.csv", lambda d: lines(LEDGER_HEADER), 0),
    fails("loyalty-zero-byte", "loyalty", "ledger.csv", b"", "empty file"),
]

SIBLINGS = {
    "weblogs": {},
    "email": {"events.jsonl": lambda d: lines(d.event("sibling"))},
    "shop": {name: header.encode() for name, header in SHOP_HEADERS.items()},  # header-only: a quiet day
    "loyalty": {},
}
TABLES = {"weblogs": ["web_requests"], "email": ["email_events", "email_campaigns"],
          "shop": ["customers", "orders", "order_lines"], "loyalty": ["loyalty_events"]}


def physical_lines(path) -> int:
    """`wc -l` of the (decompressed) file, counting an unterminated last line, minus a CSV header."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    count = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return count - (1 if ".csv" in path.name else 0)


def _stem(name: str) -> str:
    return name.split(".")[0]


@pytest.fixture(scope="module")
def corpus_db(warehouse):
    import uuid

    import psycopg

    url = warehouse.create_database(f"t_corpus_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def test_the_corpus_is_large_and_covers_every_reason_code():
    assert len(CASES) >= 125
    assert len({c.id for c in CASES}) == len(CASES)
    assert {s: sum(c.source == s for c in CASES) >= 15 for s in ("weblogs", "email", "shop")} == \
        {"weblogs": True, "email": True, "shop": True}
    covered = {code for c in CASES for code in c.codes}
    assert covered >= set(REASON_CODES) - {"duplicate_event", "rejected_by_warehouse"}  # two loads, below; the second line of defence: test_warehouse_rejects.py


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.id for c in CASES])
def test_bad_input(corpus_db, tmp_path, index):
    conn, case = corpus_db, CASES[index]
    day = Day(FIRST_DAY + timedelta(days=index))
    interval = day_interval(day.day)
    folder = tmp_path / case.source / day.day.isoformat()
    folder.mkdir(parents=True)
    for name, content in SIBLINGS[case.source].items():
        if _stem(name) != _stem(case.file):
            (folder / name).write_bytes(content(day) if callable(content) else content)
    path = folder / case.file
    path.write_bytes(case.body(day))

    if case.fails:
        with pytest.raises(FileError) as error:
            ingest(conn, case.source, folder, interval)
        assert case.file in str(error.value) and case.fails in str(error.value)
        failed = conn.execute("select file, error from ops.load_ledger where status = 'failed' and interval_start = %s",
                              (interval[0],)).fetchall()
        assert len(failed) == 1 and case.file in failed[0][0] + failed[0][1] and case.fails in failed[0][1]
        for table in TABLES[case.source]:  # nothing of the day landed, not even the good sibling files
            assert conn.execute(f"select count(*) from raw.{table} where _file like %s",
                                (f"{folder}/%",)).fetchone()[0] == 0
        assert conn.execute("select status from ops.ingest_runs where interval_start = %s",
                            (interval[0],)).fetchall() == [("failed",)]
        return

    results = ingest(conn, case.source, folder, interval)
    mine = [r for r in results if r.file == str(path)]
    assert len(mine) == 1 and mine[0].status == "succeeded"
    result = mine[0]
    table = {"web_logs": "web_requests"}.get(result.source, result.source)
    in_raw = conn.execute(f"select count(*) from raw.{table} where _file = %s", (str(path),)).fetchone()[0]
    codes = Counter(dict(conn.execute(
        "select reason_code, count(*) from quarantine.rejected_rows where _file = %s group by 1",
        (str(path),)).fetchall()))
    assert in_raw == case.loaded
    assert codes == Counter(case.codes)
    assert (result.rows_loaded, result.rows_quarantined) == (case.loaded, sum(case.codes.values()))
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    # ... and against the file itself: every physical line is a row read (a CSV header is not; a
    # record whose quoted value spans lines is one row read, see docs/formats.md)
    ledger_read = conn.execute("select rows_read from ops.load_ledger where file = %s and status = 'succeeded'",
                               (str(path),)).fetchone()[0]
    assert ledger_read == physical_lines(path) - case.continued
    lines_in_file = conn.execute("select array_agg(_line order by _line) from quarantine.rejected_rows "
                                 "where _file = %s", (str(path),)).fetchone()[0] or []
    assert all(line >= 1 for line in lines_in_file)  # every quarantine row says where it came from
