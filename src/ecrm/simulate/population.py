"""The customer base: who exists on a given day, how likely each one is to order, and their
stable identity (email, name, country, device) so the same person looks the same everywhere.

Customers are generated in batches (the initial base, then each day's sign-ups) from streams of
the seed only, never from campaign outcomes, so customer ids are stable whatever the warehouse
sends.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect
from dataclasses import dataclass
from datetime import date
from itertools import accumulate

import numpy as np

from .common import SECONDS_PER_DAY, Stream, add_days, day_start, hash_int, hash_unit, np_rng

FIRST_NAMES = (
    "Anna", "Lukas", "Marie", "Jonas", "Sophie", "Leon", "Emma", "Paul", "Mia", "Felix", "Lena", "Max",
    "Clara", "Noah", "Hannah", "Elias", "Léa", "Louis", "Chloé", "Hugo", "Camille", "Jules", "Zoë", "Sem",
    "Daan", "Fleur", "Lotte", "Giulia", "Marco", "Sofia", "Luca", "Lucía", "Mateo", "Martina", "José",
    "Łukasz", "Zofia", "Jakub", "Aoife", "Seán", "Niamh", "Ingrid", "Mats", "Björn", "Åsa", "Tobias",
    "Laura", "David", "Sarah", "Julia", "Ben", "Nina", "Tim", "Eva", "Jan", "Ida", "Finn", "Lina",
)
LAST_NAMES = (
    "Schmidt", "Müller", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Koch",
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Petit", "de Jong", "Jansen", "de Vries", "Bakker",
    "Rossi", "Russo", "Ferrari", "Esposito", "García", "Fernández", "López", "Nowak", "Kowalski", "Murphy",
    "Kelly", "Andersson", "Johansson", "Peeters", "Maes", "Gruber", "Huber", "Bauer", "Wolf", "Richter",
)
DOMAINS = ("gmail.example", "gmx.example", "web.example", "outlook.example", "example.com",
           "t-online.example", "orange.example", "ziggo.example", "libero.example", "icloud.example")
COUNTRIES = ("DE", "FR", "NL", "AT", "BE", "IT", "ES", "PL", "IE", "SE", "CH", "DK")
COUNTRY_WEIGHTS = (0.38, 0.13, 0.1, 0.08, 0.06, 0.08, 0.07, 0.04, 0.02, 0.02, 0.01, 0.01)
BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:130.0) Gecko/20100101 Firefox/130.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36 Edg/128.0.0.0",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:129.0) Gecko/20100101 Firefox/129.0",
)
BROWSER_WEIGHTS = (0.3, 0.08, 0.1, 0.22, 0.14, 0.05, 0.06, 0.03, 0.02)
_BROWSER_CDF = tuple(w / sum(BROWSER_WEIGHTS) for w in accumulate(BROWSER_WEIGHTS))
# First octets of public IPv4 space handed out to European access providers (no private ranges).
IPV4_FIRST_OCTETS = (31, 37, 46, 62, 77, 78, 79, 80, 81, 82, 83, 84, 85, 87, 88, 89, 90, 91, 92, 93,
                     94, 95, 109, 176, 178, 185, 188, 212, 213, 217)
IPV6_PREFIXES = ("2a02:8108", "2a01:c22", "2003:e5", "2a02:a45f", "2001:1c00")

PROSPECT_SHARE = 0.15       # never order: sign-ups for the newsletter or an abandoned first cart
GAMMA_SHAPE = 0.7           # heterogeneous purchase rates: many occasional buyers, a few heavy ones
MEAN_LIFETIME_DAYS = 300.0  # exponential time to churn after sign-up
CHURNED_ACTIVITY = 0.04     # a churned customer still orders, rarely
HISTORY_YEARS = 3           # initial customers signed up within this many years before start


@dataclass(frozen=True)
class Batch:
    """Customers created together (the initial base or one day's sign-ups), as parallel arrays."""

    first_number: int            # customer number of the first row (customer_id = c-%06d)
    signup_ts: np.ndarray        # unix seconds
    raw_rate: np.ndarray         # relative purchase rate (0 for prospects)
    churn_day: np.ndarray        # ordinal of the day from which the customer is mostly gone
    accepts_marketing: np.ndarray
    first_name: np.ndarray       # indices into FIRST_NAMES
    last_name: np.ndarray
    country: np.ndarray
    email_style: np.ndarray
    domain: np.ndarray

    def __len__(self) -> int:
        return len(self.signup_ts)


def _batch(rng: np.random.Generator, first_number: int, signup_ts: np.ndarray) -> Batch:
    n = len(signup_ts)
    signup_day = signup_ts // SECONDS_PER_DAY + date(1970, 1, 1).toordinal()
    raw = rng.gamma(GAMMA_SHAPE, 1.0, n) * (rng.random(n) >= PROSPECT_SHARE)
    life = np.ceil(rng.exponential(MEAN_LIFETIME_DAYS, n)).astype(np.int64)
    return Batch(
        first_number=first_number,
        signup_ts=signup_ts.astype(np.int64),
        raw_rate=raw,
        churn_day=signup_day + life,
        accepts_marketing=rng.random(n) < 0.72,
        first_name=rng.integers(0, len(FIRST_NAMES), n),
        last_name=rng.integers(0, len(LAST_NAMES), n),
        country=rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS),
        email_style=rng.integers(0, 4, n),
        domain=rng.integers(0, len(DOMAINS), n),
    )


def _ascii(text: str) -> str:
    """Email local parts are ASCII: fold accents (Zoë -> zoe, Łukasz -> lukasz) and drop spaces."""
    folded = unicodedata.normalize("NFKD", text.replace("Ł", "L").replace("ł", "l"))
    return "".join(c for c in folded if c.isascii() and c.isalpha()).lower()


class Population:
    """All customers of the shop; batches are built on demand and memoised (a pure cache: the
    same inputs always rebuild the same arrays)."""

    def __init__(self, seed: int, start: date, initial: int, signups_per_day: float,
                 orders_per_day: float) -> None:
        self.seed, self.start, self.initial = seed, start, initial
        self.signups_per_day = signups_per_day
        self._batches: dict[date, Batch] = {}
        self._arrays: dict[date, dict[str, np.ndarray]] = {}
        self.initial_batch = self._initial_batch()
        self.scale = self._calibrate(orders_per_day)

    # -- batches -------------------------------------------------------------------------------
    def _initial_batch(self) -> Batch:
        rng = np_rng(self.seed, self.start, Stream.INITIAL_CUSTOMERS)
        span = HISTORY_YEARS * 365 * SECONDS_PER_DAY
        # Skewed towards recent sign-ups: the shop grows.
        offsets = (span * rng.random(self.initial) ** 1.6).astype(np.int64) + 1
        signup_ts = np.sort(day_start(self.start) - offsets)
        return _batch(rng, 1, signup_ts)

    def signups(self, day: date) -> Batch:
        """Customers who sign up on `day` (>= start); their numbers follow all earlier ones, so
        the days in between are built (iteratively, cheap) first."""
        if day < self.start:
            raise ValueError(f"{day} is before the simulation start {self.start}")
        current = self.start
        first = self.initial_batch.first_number + len(self.initial_batch)
        while day not in self._batches:
            if current not in self._batches:
                rng = np_rng(self.seed, current, Stream.SIGNUPS)
                n = int(rng.poisson(self.signups_per_day))
                signup_ts = np.sort(day_start(current) + rng.integers(0, SECONDS_PER_DAY, n))
                self._batches[current] = _batch(rng, first, signup_ts)
            first += len(self._batches[current])
            current = add_days(current, 1)
        return self._batches[day]

    def as_of(self, day: date) -> dict[str, np.ndarray]:
        """Every customer who signed up before `day` (the ones who can order on `day`)."""
        if day not in self._arrays:
            batches = [self.initial_batch]
            batches += [self.signups(add_days(self.start, i)) for i in range((day - self.start).days)]
            fields = ("signup_ts", "raw_rate", "churn_day")
            arrays = {f: np.concatenate([getattr(b, f) for b in batches]) for f in fields}
            if day < self.start:  # history: the initial base restricted to those signed up by then
                keep = arrays["signup_ts"] < day_start(day)
                arrays = {f: a[keep] for f, a in arrays.items()}
            self._arrays[day] = arrays
            if len(self._arrays) > 64:  # keep memory small on long runs
                self._arrays.pop(next(iter(self._arrays)))
        return self._arrays[day]

    def daily_prob(self, day: date) -> np.ndarray:
        """Probability that each customer in ``as_of(day)`` orders on `day` (no campaign effect).

        Initial customers are sorted by sign-up, so a history day's prefix maps index -> number.
        """
        a = self.as_of(day)
        active = np.where(a["churn_day"] > day.toordinal(), 1.0, CHURNED_ACTIVITY)
        return np.minimum(self.scale * a["raw_rate"] * active, 0.5)

    def _calibrate(self, orders_per_day: float) -> float:
        """Scale the relative rates so the expected order count on the start day hits the target."""
        b = self.initial_batch
        active = np.where(b.churn_day > self.start.toordinal(), 1.0, CHURNED_ACTIVITY)
        return orders_per_day / float(np.sum(b.raw_rate * active))

    # -- identity --------------------------------------------------------------------------------
    def lookup(self, number: int) -> Identity:
        """Profile of customer `number` (1-based); sign-up batches must have been built (as_of or
        signups does that). KeyError for numbers the shop never issued."""
        for b in (self.initial_batch, *self._batches.values()):
            if b.first_number <= number < b.first_number + len(b):
                return identity(b, number - b.first_number)
        raise KeyError(number)


def customer_id(number: int) -> str:
    return f"c-{number:06d}"


def customer_number(cid: str) -> int | None:
    """Inverse of `customer_id`; None for ids the shop never issued (e.g. hand-made outboxes)."""
    if len(cid) == 8 and cid.startswith("c-") and cid[2:].isdigit():
        return int(cid[2:])
    return None


@dataclass(frozen=True)
class Identity:
    customer_id: str
    email: str
    first_name: str
    country: str
    signup_ts: int
    accepts_marketing: bool


def identity(batch: Batch, row: int) -> Identity:
    """The customer's stable profile; the email embeds the customer number so it is unique."""
    number = batch.first_number + row
    first = FIRST_NAMES[batch.first_name[row]]
    last = LAST_NAMES[batch.last_name[row]]
    f, l_ = _ascii(first), _ascii(last)
    local = (f"{f}.{l_}{number}", f"{f}{number}", f"{f[0]}.{l_}.{number}", f"{l_}.{f}{number}")
    email = f"{local[batch.email_style[row]]}@{DOMAINS[batch.domain[row]]}"
    return Identity(customer_id(number), email, first, COUNTRIES[batch.country[row]],
                    int(batch.signup_ts[row]), bool(batch.accepts_marketing[row]))


def device(seed: int, cid: str) -> tuple[str, str]:
    """A customer's stable (IP address, user agent): the web log identifies people only by these."""
    h = hash_int(seed, "device", cid)
    agent = BROWSERS[min(bisect(_BROWSER_CDF, hash_unit(seed, "ua", cid)), len(BROWSERS) - 1)]
    if h % 100 < 4:  # a few IPv6 households
        prefix = IPV6_PREFIXES[(h >> 8) % len(IPV6_PREFIXES)]
        return f"{prefix}:{(h >> 16) & 0xFFFF:x}:{(h >> 32) & 0xFFFF:x}::{(h >> 48) & 0xFFF:x}", agent
    first = IPV4_FIRST_OCTETS[(h >> 8) % len(IPV4_FIRST_OCTETS)]
    return f"{first}.{(h >> 16) & 0xFF}.{(h >> 24) & 0xFF}.{1 + (h >> 32) % 254}", agent
