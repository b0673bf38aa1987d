"""The day's nginx access log (combined format): browsing sessions of anonymous visitors and of
customers (stable IP + user agent each), order confirmations, email click-throughs and bots.

The log only knows people by IP and user agent; the warehouse links visitors to customers
through `/checkout/complete?order=` and the `ct` token of email clicks, so every order placed on
the web and every email click leaves exactly such a request.
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from random import Random

import numpy as np

from .catalog import CATEGORIES, Catalog
from .common import MONTHS, SECONDS_PER_DAY, Stream, day_start, n_malformed, np_rng, py_rng
from .population import (
    BROWSER_WEIGHTS,
    BROWSERS,
    IPV4_FIRST_OCTETS,
    IPV6_PREFIXES,
    Identity,
    Population,
    device,
)
from .shop import HOURLY, Order

SHOP_URL = "https://shop.example.com"
ANONYMOUS_SESSIONS = 1400
BOT_LINE_SHARE = 0.11  # bot lines per human line: ~10% of all lines
NOT_FOUND_SHARE = 0.02
STATIC_BUNDLE = ("/static/css/app.3f9a1c.css", "/static/js/vendor.8b2d4e.js", "/static/js/app.3f9a1c.js",
                 "/static/img/logo.svg", "/static/fonts/inter-var.woff2", "/favicon.ico")
SEARCH_WORDS = ("espresso", "teapot", "knife", "vase", "candle", "gift", "blanket", "mug", "puzzle", "cookbook")
REFERRERS = (("-", 0.42), ("https://www.google.com/", 0.38), ("https://www.bing.com/", 0.05),
             ("https://www.instagram.com/", 0.07), ("https://www.facebook.com/", 0.05),
             ("https://duckduckgo.com/", 0.03))
BOTS = (  # (user agent, weight, ip prefixes, kind)
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 0.4, ("66.249.66.", "66.249.68."), "crawler"),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 0.2, ("157.55.39.", "40.77.167."), "crawler"),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", 0.15, ("54.36.148.", "5.39.1."), "crawler"),
    ("python-requests/2.32.3", 0.15, ("3.120.45.", "18.195.7.", "35.158.12."), "script"),
    ("curl/8.5.0", 0.1, ("139.59.140.", "167.99.36.", "104.248.20."), "script"),
)
_BOT_CDF = tuple(accumulate(b[1] for b in BOTS))
_REF_CDF = tuple(accumulate(r[1] for r in REFERRERS))
_BROWSER_CDF = tuple(w / sum(BROWSER_WEIGHTS) for w in accumulate(BROWSER_WEIGHTS))
_HOUR_CDF = tuple(w / sum(HOURLY) for w in accumulate(HOURLY))
CATEGORY_SLUGS = tuple(c.lower().replace(" ", "-") for c in CATEGORIES)
SCRIPT_PATHS = (("/api/products?page={n}", 200), ("/.env", 404), ("/wp-login.php", 404), ("/.git/config", 404),
                ("/", 200), ("/sitemap.xml", 200))


@dataclass(frozen=True)
class Client:
    ip: str
    agent: str
    protocol: str


@dataclass(frozen=True)
class Click:
    """An email click of the day: the request that lands on the shop."""

    ts: int
    customer_id: str
    target: str  # path and query of the clicked URL


class AccessLog:
    """Collects requests of one day and renders them sorted by time (stable within a second)."""

    def __init__(self, day: date) -> None:
        self.day0 = day_start(day)
        self.date_text = f"{day.day:02d}/{MONTHS[day.month - 1]}/{day.year}"
        self.entries: list[tuple[int, int, str]] = []

    def add(self, ts: int, client: Client, method: str, target: str, status: int, size: int, referrer: str) -> None:
        offset = ts - self.day0
        if not 0 <= offset < SECONDS_PER_DAY:
            return  # the part of a session that falls on another day belongs to that day's log
        hh, rest = divmod(offset, 3600)
        mm, ss = divmod(rest, 60)
        self.entries.append((ts, len(self.entries),
                             f'{client.ip} - - [{self.date_text}:{hh:02d}:{mm:02d}:{ss:02d} +0000] '
                             f'"{method} {target} {client.protocol}" {status} {size} "{referrer}" "{client.agent}"'))

    def lines(self) -> list[str]:
        return [text for _, _, text in sorted(self.entries)]


def _pick(rng: Random, cdf: Sequence[float], items: Sequence):
    return items[min(bisect(cdf, rng.random() * cdf[-1]), len(items) - 1)]


def _second_of_day(rng: Random) -> int:
    return min(bisect(_HOUR_CDF, rng.random()), 23) * 3600 + rng.randrange(3600)


def _page(rng: Random, catalog: Catalog) -> tuple[str, str, int]:
    """A browsing page view (method, target, status); a few hit pages that no longer exist."""
    if rng.random() < NOT_FOUND_SHARE:
        return "GET", rng.choice((f"/product/p-9{rng.randint(10, 99)}", "/collections/summer-sale-2019",
                                  "/blog/our-story.html", "/product/espresso-beans-old")), 404
    r = rng.random()
    if r < 0.5:
        return "GET", f"/product/{catalog.pick(rng).product_id}", 200
    if r < 0.72:
        return "GET", f"/category/{rng.choice(CATEGORY_SLUGS)}", 200
    if r < 0.82:
        return "GET", f"/search?q={rng.choice(SEARCH_WORDS)}", 200
    if r < 0.9:
        return "GET", "/", 200
    if r < 0.96:
        return "GET", "/cart", 200
    return "GET", "/account", 200


def _size(rng: Random, target: str, status: int) -> int:
    if status == 404:
        return rng.randint(150, 560)
    if status in (301, 302, 304):
        return 0
    if target.endswith(".js"):
        return rng.randint(60_000, 320_000)
    if target.endswith((".css", ".woff2")):
        return rng.randint(20_000, 90_000)
    if target.endswith((".jpg", ".png", ".svg", ".ico")):
        return rng.randint(1_500, 160_000)
    if target.startswith("/api/") or target.startswith("/cart/add"):
        return rng.randint(200, 4_000)
    return rng.randint(9_000, 65_000)


def _session(rng: Random, log: AccessLog, client: Client, views: list[tuple[int, str, str, int]],
             referrer: str, returning: bool) -> None:
    """Emit page views (ts, method, target, status) plus the assets a browser fetches with them."""
    for i, (ts, method, target, status) in enumerate(views):
        log.add(ts, client, method, target, status, _size(rng, target, status), referrer)
        page_url = f"{SHOP_URL}{target}"
        if i == 0:  # first page: the asset bundle, revalidated (304) by returning browsers
            for asset in STATIC_BUNDLE:
                if asset.endswith((".ico", ".woff2")) and rng.random() < 0.6:
                    continue  # long-cached: browsers rarely ask again
                code = 304 if returning and rng.random() < 0.7 else 200
                log.add(ts + rng.randint(0, 2), client, "GET", asset, code, _size(rng, asset, code), page_url)
        if target.startswith("/product/p-") and status == 200:
            image = f"/media/products/{target.split('/')[2].split('?')[0]}.jpg"
            log.add(ts + rng.randint(0, 2), client, "GET", image, 200, _size(rng, image, 200), page_url)
        referrer = page_url


def _forward(rng: Random, start: int, pages: list[tuple[str, str, int]]) -> list[tuple[int, str, str, int]]:
    views, ts = [], start
    for method, target, status in pages:
        views.append((ts, method, target, status))
        ts += rng.randint(4, 150)
    return views


def _backward(rng: Random, end: int, pages: list[tuple[str, str, int]]) -> list[tuple[int, str, str, int]]:
    """Times for pages whose last one happens exactly at `end` (an order confirmation)."""
    times = [end]
    for _ in pages[1:]:
        times.append(times[-1] - rng.randint(4, 150))
    return [(ts, *page) for ts, page in zip(reversed(times), pages, strict=True)]


def _browse(rng: Random, catalog: Catalog, n: int) -> list[tuple[str, str, int]]:
    return [_page(rng, catalog) for _ in range(n)]


def _random_client(rng: Random) -> Client:
    """An anonymous visitor: a fresh address per session (mostly IPv4, a few IPv6)."""
    if rng.random() < 0.04:
        ip = f"{rng.choice(IPV6_PREFIXES)}:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(12):x}"
    else:
        ip = f"{rng.choice(IPV4_FIRST_OCTETS)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"
    return Client(ip, _pick(rng, _BROWSER_CDF, BROWSERS), "HTTP/2.0" if rng.random() < 0.7 else "HTTP/1.1")


def _customer_client(seed: int, customer_id: str) -> Client:
    ip, agent = device(seed, customer_id)
    return Client(ip, agent, "HTTP/2.0")


def _checkout_pages(order: Order) -> list[tuple[str, str, int]]:
    pages: list[tuple[str, str, int]] = []
    for line in order.lines:
        pages += [("GET", f"/product/{line.product.product_id}", 200), ("POST", "/cart/add", 200)]
    pages += [("GET", "/cart", 200), ("GET", "/checkout", 200), ("POST", "/checkout/payment", 302),
              ("GET", f"/checkout/complete?order={order.order_id}", 200)]
    return pages


def _bot_lines(rng: Random, log: AccessLog, catalog: Catalog, n: int) -> None:
    for _ in range(n):
        agent, _w, prefixes, kind = _pick(rng, _BOT_CDF, BOTS)
        client = Client(f"{rng.choice(prefixes)}{rng.randint(1, 254)}", agent, "HTTP/1.1")
        ts = log.day0 + rng.randrange(SECONDS_PER_DAY)
        if kind == "script":
            target, status = rng.choice(SCRIPT_PATHS)
            target = target.format(n=rng.randint(1, 12))
        else:
            r = rng.random()
            if r < 0.05:
                target, status = rng.choice((("/robots.txt", 200), ("/sitemap.xml", 200)))
            elif r < 0.1:
                target, status = f"/product/p-9{rng.randint(10, 99)}", 404
            elif r < 0.75:
                target, status = f"/product/{catalog.pick(rng).product_id}", 200
            else:
                target, status = f"/category/{rng.choice(CATEGORY_SLUGS)}", 200
        log.add(ts, client, "GET", target, status, _size(rng, target, status), "-")


def _garbage(rng: Random, lines: list[str], n: int) -> list[str]:
    """`n` lines that are not combined-format records: requests cut off mid-line (a crashed
    writer) and stray text. A cut line stays next to its original so the log stays time-ordered."""
    out = list(lines)
    for _ in range(n):
        position = rng.randint(0, len(out))
        if out and rng.random() < 0.6:
            source = out[min(position, len(out) - 1)]
            quote = source.find('"')
            space = source.find(" ", quote + 1) if quote >= 0 else -1
            # Only cut complete records: an earlier cut (or stray text) has no space after the quote.
            if " - - [" in source and space > quote:
                line = source[: rng.randint(quote + 2, space + 2)]  # inside the request
                out.insert(position, line)
                continue
        out.insert(position, rng.choice(("\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc\\x03\\x03",
                                         "-- MARK --", "upstream timed out (110: Connection timed out)",
                                         "GET /index.html HTTP/1.0", "\\x00\\x00\\x00\\x00")))
    return out


def access_log(seed: int, day: date, population: Population, catalog: Catalog, orders: list[Order],
               clicks: list[Click], signups: list[Identity],
               anonymous_sessions: float = ANONYMOUS_SESSIONS) -> tuple[list[str], int, int]:
    """The day's log lines (with garbage), the number of garbage lines and of sessions."""
    rng = py_rng(seed, day, Stream.WEB)
    log = AccessLog(day)
    draws = np_rng(seed, day, Stream.WEB)
    sessions = 0
    for _ in range(int(draws.poisson(anonymous_sessions))):
        views = _forward(rng, log.day0 + _second_of_day(rng), _browse(rng, catalog, rng.randint(3, 8)))
        _session(rng, log, _random_client(rng), views, _pick(rng, _REF_CDF, [r[0] for r in REFERRERS]), False)
        sessions += 1
    # Known customers browse more the more they buy.
    p = population.daily_prob(day)
    browsing = np.flatnonzero(draws.random(len(p)) < np.minimum(0.6, 0.02 + 12 * p))
    for index in browsing:
        client = _customer_client(seed, f"c-{int(index) + 1:06d}")
        views = _forward(rng, log.day0 + _second_of_day(rng), _browse(rng, catalog, rng.randint(3, 8)))
        _session(rng, log, client, views, _pick(rng, _REF_CDF, [r[0] for r in REFERRERS]), True)
        sessions += 1
    for order in orders:
        if order.web:
            views = _backward(rng, order.created_ts, _checkout_pages(order))
            _session(rng, log, _customer_client(seed, order.customer.customer_id), views, "-", True)
            sessions += 1
    for click in clicks:
        pages = [("GET", click.target, 200), *_browse(rng, catalog, rng.randint(1, 4))]
        _session(rng, log, _customer_client(seed, click.customer_id), _forward(rng, click.ts, pages), "-", True)
        sessions += 1
    for customer in signups:
        pages = [("GET", "/", 200), ("GET", "/account/register", 200), ("POST", "/account/register", 302),
                 ("GET", "/account/welcome", 200)]
        _session(rng, log, _customer_client(seed, customer.customer_id),
                 _backward(rng, customer.signup_ts, pages), "-", False)
        sessions += 1
    _bot_lines(rng, log, catalog, round(len(log.entries) * BOT_LINE_SHARE))
    lines = log.lines()
    bad = n_malformed(len(lines))
    return _garbage(py_rng(seed, day, Stream.MALFORMED, "weblog"), lines, bad), bad, sessions
