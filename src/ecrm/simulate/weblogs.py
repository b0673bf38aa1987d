"""The day's nginx access log (combined format): browsing sessions of anonymous visitors and of
customers (stable IP + user agent each), order confirmations, email click-throughs and bots.

The log only knows people by IP and user agent; the warehouse links visitors to customers
through `/checkout/complete?order=` and the `ct` token of email clicks, so every order placed on
the web and every email click leaves exactly such a request.
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate
from random import Random

import numpy as np

from .catalog import CATEGORIES, Catalog
from .common import MONTHS, SECONDS_PER_DAY, Stream, clf_time, day_start, n_malformed, np_rng, py_rng
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
# How anonymous visitors arrive: (referrer, weight, arrival). Search engines send only their origin
# (no query since HTTPS), social apps their origin or link shim and often utm parameters.
REFERRERS = (("-", 0.42, "direct"), ("https://www.google.com/", 0.34, "search"),
             ("https://www.google.de/", 0.04, "search"), ("https://www.bing.com/", 0.05, "search"),
             ("https://duckduckgo.com/", 0.03, "search"), ("https://www.instagram.com/", 0.05, "social"),
             ("https://l.instagram.com/", 0.02, "social"), ("https://www.facebook.com/", 0.03, "social"),
             ("https://l.facebook.com/", 0.02, "social"))
# Share of sessions that leave after their landing page (a bounce), by arrival: real shops see
# 30-50% overall, most from search and social arrivals on a product page. Orders and sign-ups
# never bounce (they take several pages by construction).
BOUNCE = {"direct": 0.3, "search": 0.45, "social": 0.6, "browsing customer": 0.25, "email click": 0.3}
SOCIAL_CAMPAIGNS = ("autumn-picks", "gift-guide", "new-in", "reel-teapot")
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
    """Collects the requests that start on one UTC day.

    `clip`: keep only requests stamped on the day and render them sorted by time (one file per UTC
    day). Otherwise requests of a session that runs over midnight are kept, and each request gets the
    time it finished: nginx writes a line when the request is done, stamped with its start
    (see `Request`; the rotated files are cut by finish time)."""

    def __init__(self, day: date, seed: int = 0, clip: bool = True) -> None:
        self.day0 = day_start(day)
        self.clip = clip
        self.date_text = f"{day.day:02d}/{MONTHS[day.month - 1]}/{day.year}"
        self.entries: list[tuple[int, int, str]] = []
        self.finished: list[int] = []
        self._duration = py_rng(seed, day, Stream.WEB, "duration")  # its own stream: never shifts the others

    def add(self, ts: int, client: Client, method: str, target: str, status: int, size: int, referrer: str) -> None:
        offset = ts - self.day0
        if 0 <= offset < SECONDS_PER_DAY:
            hh, rest = divmod(offset, 3600)
            mm, ss = divmod(rest, 60)
            stamp = f"{self.date_text}:{hh:02d}:{mm:02d}:{ss:02d} +0000"
        elif self.clip:
            return  # the part of a session that falls on another day belongs to that day's log
        else:
            stamp = clf_time(ts)
        self.entries.append((ts, len(self.entries),
                             f'{client.ip} - - [{stamp}] '
                             f'"{method} {target} {client.protocol}" {status} {size} "{referrer}" "{client.agent}"'))
        self.finished.append(ts + _duration(self._duration, size))

    def lines(self) -> list[str]:
        return [text for _, _, text in sorted(self.entries)]

    def requests(self) -> list[Request]:
        return [Request(finished, ts, seq, text)
                for (ts, seq, text), finished in zip(self.entries, self.finished, strict=True)]


@dataclass(frozen=True, order=True)
class Request:
    """One line of a log, ordered the way nginx writes it: by the time the request finished."""

    finished: int
    ts: int      # the start, which the line is stamped with
    seq: int
    text: str


def _duration(rng: Random, size: int) -> int:
    """Seconds a request takes: most finish within their second, large or slow ones take longer."""
    r = rng.random()
    if r < 0.9:
        return 0
    if r < 0.985:
        return rng.randint(1, 3) + size // 400_000
    return rng.randint(4, 90)  # slow mobile clients, stalled downloads, long checkouts


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


@dataclass
class Traffic:
    """What the simulator knows about the sessions it started on a day (truth/web.json)."""

    sessions: int = 0
    bounced: int = 0  # sessions of one page view
    arrivals: dict[str, int] = field(default_factory=dict)  # per arrival: direct, search, social, ...

    def count(self, arrival: str, pages: int) -> None:
        self.sessions += 1
        self.bounced += pages == 1
        self.arrivals[arrival] = self.arrivals.get(arrival, 0) + 1

    def as_dict(self) -> dict:
        return {"sessions": self.sessions, "bounced_sessions": self.bounced,
                "sessions_by_arrival": dict(sorted(self.arrivals.items()))}


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


def _landing(rng: Random, catalog: Catalog, arrival: str, referrer: str) -> tuple[str, str, int]:
    """The first page of an anonymous visit: search arrivals land on products and categories, social
    ones on a product, often tagged with utm parameters; direct visitors mostly type the home page."""
    if arrival == "search":
        if rng.random() < 0.65:
            return "GET", f"/product/{catalog.pick(rng).product_id}", 200
        return "GET", f"/category/{rng.choice(CATEGORY_SLUGS)}", 200
    if arrival == "social":
        target = f"/product/{catalog.pick(rng).product_id}"
        if rng.random() < 0.6:
            source = "instagram" if "instagram" in referrer else "facebook"
            target += f"?utm_source={source}&utm_medium=social&utm_campaign={rng.choice(SOCIAL_CAMPAIGNS)}"
        return "GET", target, 200
    return ("GET", "/", 200) if rng.random() < 0.6 else _page(rng, catalog)


def _bounced(rng: Random, arrival: str, pages: list) -> list:
    """The session's pages, cut to its landing page when the visitor bounces."""
    return pages[:1] if rng.random() < BOUNCE[arrival] else pages


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


def day_requests(seed: int, day: date, population: Population, catalog: Catalog, orders: list[Order],
                 clicks: list[Click], signups: list[Identity], anonymous_sessions: float = ANONYMOUS_SESSIONS,
                 clip: bool = True) -> tuple[AccessLog, Traffic]:
    """The requests of sessions starting on `day` (see AccessLog for `clip`) and what they were."""
    rng = py_rng(seed, day, Stream.WEB)
    log = AccessLog(day, seed, clip)
    draws = np_rng(seed, day, Stream.WEB)
    traffic = Traffic()

    def visit(client: Client, views: list, referrer: str, returning: bool, arrival: str) -> None:
        _session(rng, log, client, views, referrer, returning)
        traffic.count(arrival, len(views))

    for _ in range(int(draws.poisson(anonymous_sessions))):
        referrer, _w, arrival = _pick(rng, _REF_CDF, REFERRERS)
        pages = [_landing(rng, catalog, arrival, referrer), *_browse(rng, catalog, rng.randint(2, 7))]
        views = _forward(rng, log.day0 + _second_of_day(rng), _bounced(rng, arrival, pages))
        visit(_random_client(rng), views, referrer, False, arrival)
    # Known customers browse more the more they buy.
    p = population.daily_prob(day)
    browsing = np.flatnonzero(draws.random(len(p)) < np.minimum(0.6, 0.02 + 12 * p))
    for index in browsing:
        client = _customer_client(seed, f"c-{int(index) + 1:06d}")
        referrer, _w, arrival = _pick(rng, _REF_CDF, REFERRERS)  # counted by how they arrive
        pages = _bounced(rng, "browsing customer", _browse(rng, catalog, rng.randint(3, 8)))
        visit(client, _forward(rng, log.day0 + _second_of_day(rng), pages), referrer, True, arrival)
    for order in orders:
        if order.web:
            visit(_customer_client(seed, order.customer.customer_id),
                  _backward(rng, order.created_ts, _checkout_pages(order)), "-", True, "order")
    for click in clicks:
        pages = _bounced(rng, "email click", [("GET", click.target, 200), *_browse(rng, catalog, rng.randint(1, 4))])
        visit(_customer_client(seed, click.customer_id), _forward(rng, click.ts, pages), "-", True, "email click")
    for customer in signups:
        pages = [("GET", "/", 200), ("GET", "/account/register", 200), ("POST", "/account/register", 302),
                 ("GET", "/account/welcome", 200)]
        visit(_customer_client(seed, customer.customer_id), _backward(rng, customer.signup_ts, pages), "-", False,
              "sign-up")
    _bot_lines(rng, log, catalog, round(len(log.entries) * BOT_LINE_SHARE))
    return log, traffic


def with_garbage(seed: int, day: date, lines: list[str]) -> tuple[list[str], int]:
    """The file's lines with a few garbage lines scattered in, and how many."""
    bad = n_malformed(len(lines))
    return _garbage(py_rng(seed, day, Stream.MALFORMED, "weblog"), lines, bad), bad


def access_log(seed: int, day: date, population: Population, catalog: Catalog, orders: list[Order],
               clicks: list[Click], signups: list[Identity],
               anonymous_sessions: float = ANONYMOUS_SESSIONS) -> tuple[list[str], int, int]:
    """The day's log lines (with garbage), the number of garbage lines and of sessions: one file per
    UTC day, sorted by time."""
    log, traffic = day_requests(seed, day, population, catalog, orders, clicks, signups, anonymous_sessions)
    lines, bad = with_garbage(seed, day, log.lines())
    return lines, bad, traffic.sessions


# -- realistic traffic: the long tail of user agents, referrers and query strings -------------------
# Browsers x versions x operating systems, weighted by a Zipf law over the catalogue (a real log's
# top agent has ~10% of the lines, the top 20 ~60%, and hundreds more share the rest).
_CHROME_OS = ("Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7", "X11; Linux x86_64",
              "X11; CrOS x86_64 14541.0.0")
_ANDROID = ("Linux; Android 14; SM-S918B", "Linux; Android 13; Pixel 7", "Linux; Android 14; Pixel 8 Pro",
            "Linux; Android 12; SM-A525F", "Linux; Android 13; M2101K6G", "Linux; Android 10; K",
            "Linux; Android 14; SM-A546B", "Linux; Android 11; moto g(30)")
_IOS = ("17_6", "17_5_1", "18_0", "18_1", "16_7_10", "17_4_1")
_APPS = ("Instagram 350.1.0.46.93 (iPhone14,5; iOS 17_6; de_DE; de; scale=3.00; 1170x2532; 646420537)",
         "FBAN/FBIOS;FBAV/480.0.0.41.108;FBBV/647063127;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.6",
         "GSA/332.0.665236510")


def _agent_catalogue() -> tuple[str, ...]:
    agents = []
    for major in range(131, 111, -1):
        for os_ in _CHROME_OS:
            agents.append(f"Mozilla/5.0 ({os_}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.0.0 Safari/537.36")
        for device_ in _ANDROID:
            agents.append(f"Mozilla/5.0 ({device_}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.0.0 "
                          f"Mobile Safari/537.36")
        agents.append(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      f"Chrome/{major}.0.0.0 Safari/537.36 Edg/{major}.0.{2000 + major * 7}.{major % 90}")
        agents.append(f"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
                      f"SamsungBrowser/{major - 105}.0 Chrome/{major - 6}.0.0.0 Mobile Safari/537.36")
    for major in range(132, 115, -1):
        for os_ in ("Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10.15", "X11; Linux x86_64",
                    "X11; Ubuntu; Linux x86_64", "Android 14; Mobile"):
            agents.append(f"Mozilla/5.0 ({os_}; rv:{major}.0) Gecko/20100101 Firefox/{major}.0")
    for ios in _IOS:
        version = ios.split("_")[0] + "." + ios.split("_")[1]
        for device_ in ("iPhone; CPU iPhone OS", "iPad; CPU OS"):
            agents.append(f"Mozilla/5.0 ({device_} {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                          f"Version/{version} Mobile/15E148 Safari/604.1")
            agents.append(f"Mozilla/5.0 ({device_} {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                          f"CriOS/130.0.6723.90 Mobile/15E148 Safari/604.1")
        for app in _APPS:
            agents.append(f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
                          f"(KHTML, like Gecko) Mobile/15E148 {app}")
    for mac in ("10_15_7", "14_6_1", "15_0"):
        for version in ("17.6", "18.0", "18.1", "16.6"):
            agents.append(f"Mozilla/5.0 (Macintosh; Intel Mac OS X {mac}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                          f"Version/{version} Safari/605.1.15")
    return tuple(agents)


AGENTS = _agent_catalogue()
_AGENT_CDF = tuple(accumulate(1 / (rank + 1) ** 1.1 for rank in range(len(AGENTS))))
MORE_BOTS = ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/130.0.6723.116 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
             "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
             "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
             "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
             "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
             "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
             "Mozilla/5.0 (compatible; DotBot/1.2; +https://opensiteexplorer.org/dotbot; help@moz.com)",
             "Go-http-client/1.1", "python-requests/2.32.3", "curl/8.5.0")
SEARCH_PHRASES = ("espresso kanne", "teapot cast iron", "küchenmesser damast", "vase blau", "duftkerze lavendel",
                  "geschenk für mama", "wolldecke grau", "tasse 400ml", "puzzle 1000 teile", "kochbuch vegan",
                  "café crème tasse", "bougie parfumée", "theepot glas", "regalo 50€", "mug \"best dad\"")


def _quote(text: str, plus: bool) -> str:
    from urllib.parse import quote, quote_plus

    return quote_plus(text) if plus else quote(text, safe="")


def realistic_agent(rng: Random) -> str:
    return _pick(rng, _AGENT_CDF, AGENTS)


def realistic_referrer(rng: Random, page: str) -> str:
    """Search engines with encoded queries, social networks' link shims, webmail, the shop itself."""
    r = rng.random()
    phrase = rng.choice(SEARCH_PHRASES)
    if r < 0.3:
        return "-"
    if r < 0.5:
        return f"{SHOP_URL}{page}"
    if r < 0.7:
        return (f"https://www.google.{rng.choice(('com', 'de', 'fr', 'nl'))}/search?q={_quote(phrase, True)}"
                f"&sca_esv={rng.getrandbits(64):016x}&source=hp&ei={rng.getrandbits(96):024x}&oq="
                f"{_quote(phrase[:5], True)}&gs_lp=Egdnd3Mtd2l6{rng.getrandbits(128):032x}&sclient=gws-wiz")
    if r < 0.76:
        return f"https://www.bing.com/search?q={_quote(phrase, True)}&form=QBLH&sp=-1&cvid={rng.getrandbits(128):032X}"
    if r < 0.82:
        return f"https://duckduckgo.com/?q={_quote(phrase, False)}&t=h_&ia=web"
    if r < 0.9:
        return (f"https://l.facebook.com/l.php?u={_quote(SHOP_URL + page, False)}&h=AT{rng.getrandbits(160):040x}"
                f"&__tn__=-UK-R")
    if r < 0.95:
        return rng.choice(("https://www.instagram.com/", "https://t.co/", "https://www.pinterest.de/",
                           "android-app://com.google.android.gm/", "https://outlook.live.com/",
                           "https://mail.google.com/", "https://webmail.gmx.net/"))
    return f"https://www.google.com/url?sa=t&rct=j&q=&esrc=s&source=web&cd=&url={_quote(SHOP_URL + page, False)}"


def realistic_target(rng: Random, catalog: Catalog) -> str:
    """Paths with the query strings real traffic carries: encoded searches, filters, ad click ids, utm."""
    r = rng.random()
    if r < 0.35:
        target = f"/product/{catalog.pick(rng).product_id}"
    elif r < 0.55:
        target = f"/category/{rng.choice(CATEGORY_SLUGS)}?sort={rng.choice(('price-asc', 'newest'))}&page={rng.randint(1, 9)}"
    elif r < 0.65:
        target = f"/search?q={_quote(rng.choice(SEARCH_PHRASES), rng.random() < 0.5)}"
    elif r < 0.75:
        target = rng.choice(STATIC_BUNDLE)
    else:
        target = f"/product/{catalog.pick(rng).product_id}"
    if rng.random() < 0.12:
        campaign = rng.choice(("herbst sale", "newsletter-kw40", "black_friday", "soldes été", "retarget 30d"))
        target += ("&" if "?" in target else "?") + (
            f"utm_source={rng.choice(('google', 'facebook', 'newsletter', 'instagram'))}"
            f"&utm_medium={rng.choice(('cpc', 'email', 'social', 'paid_social'))}"
            f"&utm_campaign={_quote(campaign, rng.random() < 0.5)}")
    elif rng.random() < 0.08:
        target += ("&" if "?" in target else "?") + rng.choice(("gclid", "fbclid", "msclkid")) + \
            f"={rng.getrandbits(256):064x}"
    return target


def realistic_lines(seed: int, day: date, n: int, catalog: Catalog | None = None) -> list[str]:
    """`n` combined-format lines of `day` with a real log's variety (for benchmarks): hundreds of
    user agents, long encoded referrers, %- and +-encoded queries, utm, IPv6 (5%), bots (10%)."""
    rng = py_rng(seed, day, Stream.WEB, "realistic")
    catalog = catalog or Catalog(seed)
    log = AccessLog(day, seed)
    for i in range(n):
        ts = log.day0 + i * SECONDS_PER_DAY // n
        if rng.random() < 0.1:
            agent = rng.choice(MORE_BOTS)
            client = Client(f"{rng.choice(('66.249.66.', '157.55.39.', '5.255.253.', '85.208.96.'))}{rng.randint(1, 254)}",
                            agent, "HTTP/1.1")
            target = f"/product/{catalog.pick(rng).product_id}"
            referrer = "-"
        else:
            client = _random_client(rng)
            client = Client(client.ip, realistic_agent(rng), client.protocol)
            target = realistic_target(rng, catalog)
            referrer = realistic_referrer(rng, target)
        status = 200 if rng.random() < 0.93 else rng.choice((301, 304, 404))
        log.add(ts, client, "GET" if rng.random() < 0.95 else "POST", target, status, _size(rng, target, status),
                referrer)
    return log.lines()
