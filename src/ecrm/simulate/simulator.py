"""ShopSimulator: writes the landing zone of a small online shop, one day at a time.

Nothing is carried from one call to the next except pure caches: every file is a function of
(seed, customers, start, day) and of the outbox folders the warehouse wrote for earlier days, so
rerunning a day, or running it in a fresh process, gives byte-identical files.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ..settings import storage_path
from . import campaigns as cmp
from . import flows
from . import loyalty as loyalty_ledger
from .catalog import Catalog
from .common import SECONDS_PER_DAY, Stream, add_days, day_start, n_malformed, py_rng, write_atomic
from .delivery import Delivery
from .population import Population, customer_number, identity
from .shop import (
    CUSTOMER_COLUMNS,
    LINE_COLUMNS,
    ORDER_COLUMNS,
    Order,
    Treatment,
    customer_row,
    day_order_rows,
    follow_up_days,
    history_order_rows,
    insert_lines,
    malformed_order_lines,
    orders_for_day,
    render_csv,
)
from .truth import (
    EFFECT_DAYS,
    PULL_FORWARD_DAYS,
    campaign_truth,
    discount_truth,
    update_discount_truth,
    update_truth,
    update_web_truth,
)
from .weblogs import ANONYMOUS_SESSIONS, SHOP_URL, Click, Request, Traffic, day_requests, with_garbage

HISTORY_DAYS = 365
DEFAULT_DAILY_UPLIFT = 0.006  # ~4 percentage points more 7-day conversion for delivered recipients
# Lifecycle flows' effect (ecrm.simulate.flows) on a treated entrant's daily order probability. 0 by
# default: the flows' cohorts are still recorded in truth/flows.json (true uplift 0), and the other
# tests' data do not change; tests/test_flows.py and a demo can set it.
DEFAULT_FLOW_DAILY_UPLIFT = 0.0
# Discount codes in weekly campaigns (every second week from week 1: the demo's second campaign): a
# delivered recipient gets this much more daily order probability for the 7 effect days on top of
# the e-mail's own uplift, uses the code on every order in them, and buys this much less a day in
# the PULL_FORWARD_DAYS after (orders pulled forward). Truth in truth/discounts.json.
DEFAULT_DISCOUNT_DAILY_UPLIFT = 0.008
DEFAULT_DISCOUNT_PULL_FORWARD = 0.002
CACHE_DAYS = EFFECT_DAYS + PULL_FORWARD_DAYS + 3
FILES = ("customers", "orders", "order_lines", "access_log", "events", "campaigns")


class ShopSimulator:
    """Deterministic shop + web + ESP simulator writing the files described in docs/formats.md."""

    def __init__(self, landing: Path, outbox: Path, truth: Path, start: date, customers: int = 5000,
                 seed: int = 42, *, daily_uplift: float = DEFAULT_DAILY_UPLIFT,
                 flow_daily_uplift: float = DEFAULT_FLOW_DAILY_UPLIFT,
                 discounts: cmp.DiscountPlan | None = None,
                 discount_daily_uplift: float = DEFAULT_DISCOUNT_DAILY_UPLIFT,
                 discount_pull_forward: float = DEFAULT_DISCOUNT_PULL_FORWARD,
                 signups_per_day: float | None = None, orders_per_day: float | None = None,
                 delivery: Delivery | str | None = None, loyalty: bool = False) -> None:
        """Sign-ups, orders and anonymous traffic default to 10, 30 and 1,400 a day per 5,000
        customers, so a smaller shop keeps realistic per-customer rates.

        `delivery`: when the files are written and which lines they hold (ecrm.simulate.delivery);
        a Delivery, a spec such as "shop,email" or "none", or None for the settings
        (ECRM_SIM_DELIVERY, ECRM_SHOP_TIMEZONE).

        `loyalty`: the shop runs a loyalty program (ecrm.simulate.loyalty) from `start` and exports its
        points ledger every day; its ledger carries state, so the days are then written in order."""
        if delivery is None:
            delivery = Delivery.from_settings()
        elif isinstance(delivery, str):
            from ..settings import get_settings

            delivery = Delivery.parse(delivery, get_settings().shop_timezone)
        self.delivery = delivery
        # local folders or fsspec URLs (s3://...), as the warehouse reads and writes them
        self.landing, self.outbox, self.truth = (storage_path(p) for p in (landing, outbox, truth))
        self.start, self.seed, self.daily_uplift = start, seed, daily_uplift
        self.flow_daily_uplift = flow_daily_uplift
        self.discounts = discounts if discounts is not None else cmp.DiscountPlan()
        self.discount_daily_uplift, self.discount_pull_forward = discount_daily_uplift, discount_pull_forward
        self.loyalty = loyalty
        self.epoch = add_days(start, -HISTORY_DAYS)
        size = customers / 5000
        self.anonymous_sessions = ANONYMOUS_SESSIONS * size
        self.population = Population(seed, start, customers, signups_per_day or 10.0 * size,
                                     orders_per_day or 30.0 * size)
        self.catalog = Catalog(seed)
        self._product_ids = [p.product_id for p in self.catalog.products]
        self._orders: OrderedDict[tuple, list[Order]] = OrderedDict()
        self._runs: OrderedDict[tuple, cmp.CampaignRun | None] = OrderedDict()
        self._requests: OrderedDict[tuple, tuple[list[Request], Traffic]] = OrderedDict()

    # -- campaigns ---------------------------------------------------------------------------------
    def _outbox_fingerprint(self, send_day: date) -> tuple:
        """Identifies the outbox a campaign is built from, so caches notice a rewritten outbox."""
        if send_day <= self.start or not cmp.is_send_day(self.start, send_day):
            return ()
        folder = self.outbox / add_days(send_day, -1).isoformat()
        if not (folder / "manifest.json").is_file():
            return ()
        return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()))

    def campaign(self, send_day: date) -> cmp.CampaignRun | None:
        """The campaign sent on `send_day` with all its events, or None (no send / no outbox)."""
        fingerprint = self._outbox_fingerprint(send_day)
        if not fingerprint:
            return None
        key = (send_day, fingerprint)
        if key not in self._runs:
            plan = cmp.plan_campaign(self.seed, self.start, self.outbox, send_day, self._product_ids, self.discounts)
            self._runs[key] = cmp.run_campaign(self.seed, plan) if plan else None
            _trim(self._runs)
        return self._runs[key]

    def _treatment(self, day: date) -> Treatment:
        """Delivered recipients of campaigns sent in the last 7 days (including today)."""
        earliest: dict[int, int] = {}
        extra = self._flow_uplift(day)
        codes: dict[int, tuple[str, int, int]] = {}
        for k in range(EFFECT_DAYS + (PULL_FORWARD_DAYS if self.discounts.every > 0 else 0)):
            run = self.campaign(add_days(day, -k))
            code = run.campaign.discount_code if run else None
            if k >= EFFECT_DAYS and not code:
                continue
            for cid, delivered_ts in (run.delivered.items() if run else ()):
                number = customer_number(cid)
                if not number:
                    continue
                if k >= EFFECT_DAYS:  # after a discount's window: orders it pulled forward are missing
                    extra[number] = extra.get(number, 0.0) - self.discount_pull_forward
                    continue
                # today, the email has to arrive before the order it causes
                earliest[number] = delivered_ts + 300 if k == 0 else day_start(day)
                if code:
                    extra[number] = extra.get(number, 0.0) + self.discount_daily_uplift
                    codes[number] = (code, run.campaign.discount_pct, delivered_ts if k == 0 else day_start(day))
        return Treatment(self.daily_uplift, earliest, extra, codes)

    def _flow_uplift(self, day: date) -> dict[int, float]:
        """Treated flow entrants pushed in the FLOW_EFFECT_DAYS days before `day` (once each)."""
        if not self.flow_daily_uplift:
            return {}
        treated: dict[int, float] = {}
        for k in range(1, flows.FLOW_EFFECT_DAYS + 1):
            for ids in flows.flow_adds(self.outbox, add_days(day, -k)).values():
                for cid in ids:
                    if number := customer_number(cid):
                        treated[number] = self.flow_daily_uplift
        return treated

    # -- orders --------------------------------------------------------------------------------------
    def orders(self, day: date) -> list[Order]:
        """Orders created on `day` (history days included), regenerated on demand."""
        if day < self.epoch:
            return []
        key = self._day_key(day)
        if key not in self._orders:
            treatment = self._treatment(day) if day >= self.start else Treatment()
            self._orders[key] = orders_for_day(self.seed, day, self.epoch, self.population, self.catalog,
                                               treatment)
            _trim(self._orders)
        return self._orders[key]

    def _day_key(self, day: date) -> tuple:
        """What a day's orders, clicks and requests depend on besides the seed: the outboxes that
        decided the campaigns of the 7 days up to it."""
        reach = EFFECT_DAYS + (PULL_FORWARD_DAYS if self.discounts.every > 0 else 0)
        key = (day, tuple(self._outbox_fingerprint(add_days(day, -k)) for k in range(reach)))
        if self.flow_daily_uplift:  # and the flow pushes of the days before it
            key += tuple(flows.changes_fingerprint(self.outbox, add_days(day, -k))
                         for k in range(1, flows.FLOW_EFFECT_DAYS + 1))
        return key

    # -- initial export ------------------------------------------------------------------------------
    def write_initial(self) -> dict:
        """landing/shop/initial/: customers, and 365 days of orders with their status at start."""
        cutoff = day_start(self.start)
        history: list[Order] = []
        for k in range(HISTORY_DAYS):
            history.extend(self.orders(add_days(self.epoch, k)))
        order_rows = history_order_rows(history, cutoff)
        line_rows = [row for order in history for row in order.line_rows()]
        rng = py_rng(self.seed, self.start, Stream.MALFORMED, "initial-orders")
        bad = malformed_order_lines(rng, history, n_malformed(len(order_rows)), 0)
        orders_text = _with_bad_lines(rng, ORDER_COLUMNS, order_rows, bad)
        customers_text = render_csv(self._initial_customer_rows(cutoff), CUSTOMER_COLUMNS)
        folder = self.landing / "shop" / "initial"
        write_atomic(folder / "customers.csv", customers_text.encode())
        write_atomic(folder / "orders.csv", orders_text.encode())
        write_atomic(folder / "order_lines.csv", render_csv(line_rows, LINE_COLUMNS).encode())
        return {"customers": len(self.population.initial_batch), "orders": len(order_rows) + len(bad),
                "order_lines": len(line_rows),
                "malformed": {"customers": 0, "orders": len(bad), "order_lines": 0}}

    def _initial_customer_rows(self, cutoff: int) -> list[list[str]]:
        """Every customer at start; some profiles were edited after sign-up."""
        rng = py_rng(self.seed, self.start, Stream.CUSTOMER_UPDATES, "initial")
        batch = self.population.initial_batch
        rows = []
        for row in range(len(batch)):
            c = identity(batch, row)
            updated = c.signup_ts + rng.randint(0, cutoff - 1 - c.signup_ts) if rng.random() < 0.3 else c.signup_ts
            rows.append(customer_row(c, updated, c.accepts_marketing))
        return rows

    # -- one day -------------------------------------------------------------------------------------
    def write_day(self, day: date) -> dict:
        """Write every landing file of `day`'s folders and return counts per file (malformed included).

        What the files hold depends on `self.delivery` (ecrm.simulate.delivery): by default the web
        log rotated at 06:25 shop time, the ESP export of 02:00 UTC and a shop export that re-reads
        the minutes before its day, so files hold lines of the day before."""
        if day < self.start:
            raise ValueError(f"{day} is before the simulation start {self.start}; see write_initial()")
        shop_from, shop_to = self.delivery.shop_window(day)
        yesterday = add_days(day, -1)
        today = self.orders(day)
        earlier = [o for d in follow_up_days(day) for o in self.orders(d)]
        run = self.campaign(day)
        counts: dict[str, int] = {}
        bad: dict[str, int] = dict.fromkeys(FILES, 0)
        texts: dict[str, str] = {}

        rows = day_order_rows(day, today, earlier, shop_from)
        rng = py_rng(self.seed, day, Stream.MALFORMED, "orders")
        bad_rows = malformed_order_lines(rng, today or earlier, n_malformed(len(rows)), day.toordinal())
        texts["orders"] = _with_bad_lines(rng, ORDER_COLUMNS, rows, bad_rows)
        counts["orders"], bad["orders"] = len(rows) + len(bad_rows), len(bad_rows)
        late = [o for o in self.orders(yesterday) if o.created_ts >= shop_from] if shop_from < day_start(day) else []
        line_rows = [row for order in (*late, *today) for row in order.line_rows()]
        texts["order_lines"], counts["order_lines"] = render_csv(line_rows, LINE_COLUMNS), len(line_rows)
        customer_rows = self._customer_rows(day, shop_from, shop_to)
        texts["customers"], counts["customers"] = render_csv(customer_rows, CUSTOMER_COLUMNS), len(customer_rows)

        email_from, email_to = self.delivery.email_window(day)
        events = self._events_in(email_from, email_to)
        rng = py_rng(self.seed, day, Stream.MALFORMED, "events")
        bad_events = cmp.malformed_event_lines(rng, self.seed, day, events, n_malformed(len(events)),
                                               (email_from, email_to))
        event_lines = insert_lines(rng, [cmp.event_json(e) for e in events], bad_events)
        texts["events"] = "".join(f"{line}\n" for line in event_lines)
        counts["events"], bad["events"] = len(event_lines), len(bad_events)
        sent = [r for k in range((email_to - email_from) // SECONDS_PER_DAY + 2)
                if (r := self.campaign(add_days(day, -k))) and email_from <= r.campaign.sent_ts < email_to]
        counts["campaigns"] = len(sent)

        log_lines, traffic = self._log_lines(day)
        log_lines, bad["access_log"] = with_garbage(self.seed, day, log_lines)
        texts["access_log"] = "".join(f"{line}\n" for line in log_lines)
        counts["access_log"] = len(log_lines)

        self._write_day_files(day, texts, sorted(sent, key=lambda r: r.campaign.sent_ts))
        if self.loyalty:
            counts["loyalty"] = loyalty_ledger.write_ledger(self.landing, self.truth, self.seed, self.start, day, today)
        coded = bool(run and run.campaign.discount_code)
        uplift = self.daily_uplift + (self.discount_daily_uplift if coded else 0.0)
        record, recipients_csv = campaign_truth(run, self.population, uplift) if run else (None, None)
        update_truth(self.truth, day, record, recipients_csv)
        update_web_truth(self.truth, day, traffic.as_dict())
        update_discount_truth(self.truth, day, discount_truth(run, self.population, uplift, self.discount_pull_forward)
                              if coded else None)
        entry_day = yesterday  # the flows pushed after yesterday's build act from today on
        flows.update_flow_truth(self.truth, entry_day, [
            flows.cohort_truth(audience, entry_day, ids, self.population, self.flow_daily_uplift)
            for audience, ids in flows.flow_adds(self.outbox, entry_day).items()])
        return {"day": day.isoformat(), **counts, "malformed": bad, "new_orders": len(today),
                "sessions": traffic.sessions, "campaign_id": run.campaign.campaign_id if run else None}

    def _events_in(self, start_ts: int, end_ts: int) -> list[dict]:
        """ESP events in [start_ts, end_ts): of campaigns sent from 3 days before its first day on."""
        first, last = _utc_day(start_ts), _utc_day(end_ts - 1)
        days = [add_days(last, -k) for k in range((last - first).days + cmp.EVENT_DAYS + 1)]
        events = [e for d in days if d >= self.start and (run := self.campaign(d))
                  for e in run.events if start_ts <= e["timestamp"] < end_ts]
        return sorted(events, key=lambda e: (e["timestamp"], e["sg_event_id"]))

    def _events_of(self, day: date) -> list[dict]:
        """ESP events occurring on UTC `day`: campaigns sent on this day and the 3 before it."""
        return self._events_in(day_start(day), day_start(day) + SECONDS_PER_DAY)

    def _day_requests(self, day: date) -> tuple[list[Request], Traffic]:
        """Requests of the sessions starting on UTC `day` (sessions over midnight kept whole)."""
        key = self._day_key(day)
        if key not in self._requests:
            signups = self.population.signups(day)
            log, traffic = day_requests(
                self.seed, day, self.population, self.catalog, self.orders(day), _clicks(self._events_of(day)),
                [identity(signups, row) for row in range(len(signups))], self.anonymous_sessions, clip=False)
            self._requests[key] = (log.requests(), traffic)
            _trim(self._requests, 4)
        return self._requests[key]

    def _log_lines(self, day: date) -> tuple[list[str], Traffic]:
        """The lines of day's log file (without garbage) and the sessions started on `day`."""
        if not self.delivery.weblogs:  # one file per UTC day, sorted by time
            signups = self.population.signups(day)
            log, traffic = day_requests(
                self.seed, day, self.population, self.catalog, self.orders(day), _clicks(self._events_of(day)),
                [identity(signups, row) for row in range(len(signups))], self.anonymous_sessions)
            return log.lines(), traffic
        lo, hi = self.delivery.weblog_window(day)
        start0 = day_start(self.start)
        lo = max(lo, start0)  # the simulated log begins at the start: no earlier request is written
        requests = []
        for d in _days_between(_utc_day(lo) - timedelta(days=1), _utc_day(hi - 1)):
            if d >= self.start:
                requests += [r for r in self._day_requests(d)[0] if lo <= r.finished < hi and r.ts >= start0]
        requests.sort(key=lambda r: (r.finished, r.ts, r.seq, r.text))
        return [r.text for r in requests], self._day_requests(day)[1]

    def _customer_rows(self, day: date, start_ts: int, end_ts: int) -> list[list[str]]:
        """Customers updated in [start_ts, end_ts) (the shop export of `day`): sign-ups and
        unsubscribes (opt-out); a customer changed twice appears twice (the loader keeps the latest)."""
        people = []
        for d in (add_days(day, -1), day):
            if d >= self.start and day_start(d) + SECONDS_PER_DAY > start_ts:
                signups = self.population.signups(d)
                people += [c for r in range(len(signups)) if start_ts <= (c := identity(signups, r)).signup_ts < end_ts]
        rows = [(c.signup_ts, customer_row(c, c.signup_ts, c.accepts_marketing)) for c in people]
        opted_out: dict[int, int] = {}
        for e in self._events_in(start_ts, end_ts):
            number = customer_number(e["customer_id"])
            if e["event"] == "unsubscribe" and number:
                opted_out[number] = e["timestamp"]
        for number, ts in sorted(opted_out.items()):
            try:
                rows.append((ts, customer_row(self.population.lookup(number), ts, False)))
            except KeyError:
                continue  # an id the shop never issued (hand-made outbox): nothing to update
        return [row for _, row in sorted(rows, key=lambda r: (r[0], r[1][0]))]

    def _write_day_files(self, day: date, texts: dict[str, str], sent: list[cmp.CampaignRun]) -> None:
        shop = self.landing / "shop" / day.isoformat()
        email = self.landing / "email" / day.isoformat()
        for name in ("customers", "orders", "order_lines"):
            write_atomic(shop / f"{name}.csv", texts[name].encode())
        weblogs = self.landing / "weblogs" / day.isoformat()
        name = self.delivery.weblog_name(day)
        write_atomic(weblogs / name, texts["access_log"].encode())
        for stale in weblogs.glob("access.log*"):  # a rerun under another delivery leaves no second file
            if stale.name != name:
                stale.unlink()
        write_atomic(email / "events.jsonl", texts["events"].encode())
        if sent:
            write_atomic(email / "campaigns.jsonl", "".join(cmp.event_json(r.campaign.row()) + "\n" for r in sent).encode())
        else:  # a rerun after the outbox disappeared must not leave yesterday's decision behind
            (email / "campaigns.jsonl").unlink(missing_ok=True)


def _utc_day(ts: int) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def _days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def _clicks(events: list[dict]) -> list[Click]:
    return [Click(e["timestamp"], e["customer_id"], e["url"].removeprefix(SHOP_URL))
            for e in events if e["event"] == "click"]


def _with_bad_lines(rng, header: tuple[str, ...], rows: list[list[str]], bad: list[str]) -> str:
    body = render_csv(rows).splitlines()
    return render_csv([], header) + "".join(f"{line}\n" for line in insert_lines(rng, body, bad))


def _trim(cache: OrderedDict, size: int = CACHE_DAYS) -> None:
    while len(cache) > size:
        cache.popitem(last=False)
