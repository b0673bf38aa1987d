"""Shop orders: who orders on a day, what they buy, and how each order's status evolves.

An order's whole future (payment, shipping, refund or cancellation up to 14 days later) is drawn
when it is created, from a stream keyed by (day, customer). A later day's export therefore just
regenerates the orders of the previous 14 days and emits the status changes that fall on it.
"""

from __future__ import annotations

import csv
import io
import json
from bisect import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate
from random import Random

import numpy as np

from .catalog import Catalog, Product
from .common import SECONDS_PER_DAY, Stream, add_days, day_start, hash_unit, iso, money, np_rng, py_rng
from .population import Identity, Population

ORDER_COLUMNS = ("order_id", "customer_id", "email", "created_at", "updated_at", "status", "currency",
                 "total_amount", "discount_amount", "coupon_code", "discount_codes")
LINE_COLUMNS = ("order_id", "line_number", "product_id", "product_name", "category", "quantity", "unit_price",
                "discount_amount", "updated_at")
CUSTOMER_COLUMNS = ("customer_id", "email", "first_name", "country", "signed_up_at", "updated_at",
                    "accepts_marketing")
MAX_FOLLOW_UP_DAYS = 14     # refunds come at most this many days after the order
ORDERS_PER_DAY_BLOCK = 1000  # order numbers are allocated per day: o-<day index * 1000 + k>
RESERVED_PER_DAY = 100       # the top of each block is kept for deliberately malformed rows
COUPONS = (("WELCOME10", 10), ("SPRING15", 15), ("VIP20", 20), ("NEWS5", 5))
FREE_SHIPPING, FREE_SHIPPING_SHARE, SHIPPING_CENTS = "FREESHIP", 0.03, 495  # a second code on some orders
CANCEL_SHARE, SLOW_PAYMENT_SHARE, REFUND_SHARE, WEB_SHARE = 0.02, 0.03, 0.051, 0.95
# Share of orders per hour of day (UTC): lunch and evening peaks.
HOURLY = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 4, 4.3, 4.6, 5.2, 5, 4.6, 4.3, 4.3, 4.8, 5.6, 6.6, 7.2,
          6.8, 5, 2.6)
_HOUR_CDF = tuple(w / sum(HOURLY) for w in accumulate(HOURLY))


@dataclass(frozen=True)
class Line:
    product: Product
    quantity: int
    unit_price: int  # cents
    discount: int    # cents, for the whole line

    @property
    def net(self) -> int:
        return self.quantity * self.unit_price - self.discount


@dataclass(frozen=True)
class Order:
    order_id: str
    customer: Identity
    created_ts: int
    coupon: str
    lines: tuple[Line, ...]
    timeline: tuple[tuple[int, str], ...]  # (unix ts, status), chronological, first at creation day
    web: bool                              # placed through the web shop (leaves a checkout page view)
    induced: bool = field(default=False)   # exists only because of a campaign (for the truth)
    free_shipping: bool = field(default=False)  # a FREESHIP code beside the coupon (shipping is not in the total)
    coupon_type: str = field(default="percentage")

    @property
    def codes(self) -> list[dict]:
        """Shopify's discount_codes: the coupon (its money: the line discounts it made) and free shipping."""
        codes = []
        if self.coupon:
            codes.append({"code": self.coupon, "amount": money(self.discount), "type": self.coupon_type})
        if self.free_shipping:
            codes.append({"code": FREE_SHIPPING, "amount": money(SHIPPING_CENTS), "type": "shipping"})
        return codes

    @property
    def total(self) -> int:
        return sum(line.net for line in self.lines)

    @property
    def discount(self) -> int:
        return sum(line.discount for line in self.lines)

    def status_in(self, start_ts: int, end_ts: int) -> tuple[int, str] | None:
        """The last status change in [start_ts, end_ts): what a day's export shows for the order."""
        inside = [event for event in self.timeline if start_ts <= event[0] < end_ts]
        return inside[-1] if inside else None

    def row(self, updated_ts: int, status: str) -> list[str]:
        return [self.order_id, self.customer.customer_id, self.customer.email, iso(self.created_ts),
                iso(updated_ts), status, "EUR", money(self.total), money(self.discount), self.coupon,
                json.dumps(self.codes, separators=(",", ":")) if self.codes else ""]

    def line_rows(self) -> list[list[str]]:
        return [[self.order_id, str(n), ln.product.product_id, ln.product.name, ln.product.category,
                 str(ln.quantity), money(ln.unit_price), money(ln.discount), iso(self.created_ts)]
                for n, ln in enumerate(self.lines, start=1)]


@dataclass(frozen=True)
class Treatment:
    """The campaign effect on one day: delivered customers get `uplift` added to their daily order
    probability; an order that only the uplift explains cannot happen before the email arrived."""

    uplift: float = 0.0
    earliest: Mapping[int, int] = field(default_factory=dict)  # customer number -> earliest unix ts
    # lifecycle flows (ecrm.simulate.flows): customer number -> extra daily probability, from the day's start
    flow_uplift: Mapping[int, float] = field(default_factory=dict)
    # discount campaigns: customer number -> (code, percent off, valid from unix ts) for orders of the day
    codes: Mapping[int, tuple[str, int, int]] = field(default_factory=dict)


def _time_of_day(rng: Random, earliest: int) -> int:
    """Seconds into the day following the hourly profile, not before `earliest` (seconds)."""
    for _ in range(20):
        seconds = min(bisect(_HOUR_CDF, rng.random()), 23) * 3600 + rng.randrange(3600)
        if seconds >= earliest:
            return seconds
    return rng.randint(min(earliest, SECONDS_PER_DAY - 1), SECONDS_PER_DAY - 1)


def _business_ts(rng: Random, day0: int, offset_days: int) -> int:
    return day0 + offset_days * SECONDS_PER_DAY + rng.randint(7 * 3600, 19 * 3600)


def _timeline(rng: Random, day0: int, created: int) -> tuple[tuple[int, str], ...]:
    """placed -> paid -> shipped, with some cancellations and refunds, all within 14 days."""
    fate = rng.random()
    if fate < CANCEL_SHARE:
        return (created, "placed"), (_business_ts(rng, day0, rng.randint(1, 5)), "cancelled")
    if fate < CANCEL_SHARE + SLOW_PAYMENT_SHARE:  # bank transfer: paid a day or two later
        paid_day = rng.randint(1, 2)
        events = [(created, "placed"), (_business_ts(rng, day0, paid_day), "paid")]
    else:
        events = [(min(created + rng.randint(20, 900), day0 + SECONDS_PER_DAY - 1), "paid")]
        paid_day = 0
    ship_day = paid_day + rng.randint(1, 2)
    events.append((_business_ts(rng, day0, ship_day), "shipped"))
    if rng.random() < REFUND_SHARE:
        events.append((_business_ts(rng, day0, rng.randint(ship_day + 1, MAX_FOLLOW_UP_DAYS)), "refunded"))
    return tuple(events)


def _lines(rng: Random, catalog: Catalog, coupon_pct: int) -> tuple[Line, ...]:
    n = rng.choices((1, 2, 3, 4), (0.5, 0.28, 0.15, 0.07))[0]
    lines = []
    for product in catalog.pick_distinct(rng, n):
        quantity = rng.choices((1, 2, 3, 4), (0.78, 0.16, 0.04, 0.02))[0]
        sale_pct = rng.choice((10, 20, 30)) if rng.random() < 0.06 else 0
        pct = max(coupon_pct, sale_pct)
        gross = quantity * product.price_cents
        lines.append(Line(product, quantity, product.price_cents, (gross * pct + 50) // 100))
    return tuple(lines)


def _order(seed: int, day: date, customer: Identity, number: int, earliest: int, catalog: Catalog,
           induced: bool, campaign_code: tuple[str, int, int] | None = None) -> Order:
    """One order with its future; the stream is keyed by customer so other orders never shift it.
    A customer holding a campaign's code uses it (instead of any other coupon) once it has arrived."""
    rng = py_rng(seed, day, Stream.ORDER_DETAILS, number)
    day0 = day_start(day)
    created = day0 + _time_of_day(rng, earliest - day0)
    coupon, pct = rng.choice(COUPONS) if rng.random() < 0.12 else ("", 0)
    if campaign_code and created >= campaign_code[2]:
        coupon, pct = campaign_code[0], campaign_code[1]
    lines = _lines(rng, catalog, pct)
    timeline = _timeline(rng, day0, created)
    web = rng.random() < WEB_SHARE
    free_shipping = hash_unit(seed, "free-shipping", day.isoformat(), number) < FREE_SHIPPING_SHARE
    return Order("", customer, created, coupon, lines, timeline, web, induced, free_shipping)


def order_id(epoch: date, day: date, k: int) -> str:
    """Globally unique and stable: a block of numbers per day since the history start."""
    return f"o-{(day - epoch).days * ORDERS_PER_DAY_BLOCK + k + 1:07d}"


def orders_for_day(seed: int, day: date, epoch: date, population: Population, catalog: Catalog,
                   treatment: Treatment) -> list[Order]:
    """All orders created on `day`, sorted by creation time, with their ids.

    One uniform draw per customer: the customer orders when it is below the daily probability
    (plus the uplift when treated). Treated customers thus keep every order they would have placed
    anyway, and the extra orders are exactly those the uplift explains.
    """
    p = population.daily_prob(day)
    u = np_rng(seed, day, Stream.ORDER_DRAWS).random(len(p))
    boost = np.zeros(len(p))
    for number in treatment.earliest:
        if number <= len(p):
            boost[number - 1] = treatment.uplift
    for number, extra in treatment.flow_uplift.items():  # flows, discount uplift and pull-forward
        if number <= len(p):
            boost[number - 1] += extra
    buyers = np.flatnonzero(u < p + boost)
    day0 = day_start(day)
    orders = []
    for index in buyers:
        number = int(index) + 1
        induced = bool(u[index] >= p[index])
        earliest = treatment.earliest.get(number, day0) if induced else day0
        orders.append(_order(seed, day, population.lookup(number), number, earliest, catalog, induced,
                             treatment.codes.get(number)))
    orders.sort(key=lambda o: (o.created_ts, o.customer.customer_id))
    if len(orders) > ORDERS_PER_DAY_BLOCK - RESERVED_PER_DAY:
        raise OverflowError(f"{len(orders)} orders on {day}: more than the per-day id block")
    return [Order(order_id(epoch, day, k), o.customer, o.created_ts, o.coupon, o.lines, o.timeline, o.web,
                  o.induced, o.free_shipping) for k, o in enumerate(orders)]


def day_order_rows(day: date, today: list[Order], earlier: Iterable[Order],
                   start_ts: int | None = None) -> list[list[str]]:
    """orders.csv of a day: new orders plus earlier ones whose status changed that day, each with its
    latest status in [start_ts, end of day) (start_ts: the day's start, or a few minutes before it
    when the export re-reads the end of the previous day)."""
    start_ts = day_start(day) if start_ts is None else start_ts
    end_ts = day_start(day) + SECONDS_PER_DAY
    rows = []
    for order in (*today, *earlier):
        change = order.status_in(start_ts, end_ts)
        if change:
            rows.append((change[0], order.order_id, order.row(*change)))
    return [row for _, _, row in sorted(rows, key=lambda r: (r[0], r[1]))]


def history_order_rows(orders: Iterable[Order], cutoff_ts: int) -> list[list[str]]:
    """The initial export: every order with its latest status before the cutoff."""
    rows = []
    for order in orders:
        change = order.status_in(0, cutoff_ts)
        if change:
            rows.append(order.row(*change))
    return rows


def customer_row(c: Identity, updated_ts: int, accepts_marketing: bool) -> list[str]:
    return [c.customer_id, c.email, c.first_name, c.country, iso(c.signup_ts), iso(updated_ts),
            "true" if accepts_marketing else "false"]


# -- deliberately malformed order rows -------------------------------------------------------------
MALFORMED_KINDS = ("truncated", "bad_timestamp", "negative_amount", "invalid_email")


def malformed_order_lines(rng: Random, templates: list[Order], n: int, kind_offset: int) -> list[str]:
    """`n` bad CSV lines (text, no newline), each a copy of a real order under a reserved id so a
    loader that rejects them loses nothing; the kinds rotate so every kind shows up over 4 days."""
    bad = []
    for j in range(n):
        order = rng.choice(templates)
        block = int(order.order_id[2:]) - 1
        reserved = block - block % ORDERS_PER_DAY_BLOCK + ORDERS_PER_DAY_BLOCK - 1 - j % RESERVED_PER_DAY
        row = order.row(order.timeline[0][0], order.timeline[0][1])
        row[0] = f"o-{reserved + 1:07d}"
        kind = MALFORMED_KINDS[(kind_offset + j) % len(MALFORMED_KINDS)]
        if kind == "bad_timestamp":
            row[3] = rng.choice(("2026-02-30T25:61:00+00:00", "yesterday", "13/45/2026 10:00"))
        elif kind == "negative_amount":
            row[7] = "-" + row[7]
        elif kind == "invalid_email":
            row[2] = row[2].replace("@", rng.choice(("", " at ", "@@")))
        line = render_csv([row]).rstrip("\n")
        if kind == "truncated":  # cut inside a field, well before the end: too few columns
            commas = [i for i, ch in enumerate(line) if ch == ","]
            line = line[: rng.randint(commas[2] + 2, commas[5] - 1)]
        bad.append(line)
    return bad


def render_csv(rows: Iterable[list[str]], header: tuple[str, ...] | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def insert_lines(rng: Random, lines: list[str], extra: list[str]) -> list[str]:
    """Scatter the bad lines at random positions (deterministic for the stream)."""
    out = list(lines)
    for text in extra:
        out.insert(rng.randint(0, len(out)), text)
    return out


def follow_up_days(day: date) -> list[date]:
    """Creation days whose orders may change status on `day`."""
    return [add_days(day, -k) for k in range(MAX_FOLLOW_UP_DAYS, 0, -1)]
