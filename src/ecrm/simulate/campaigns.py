"""Email campaigns: which audience is mailed on a send day, and the ESP events that follow.

A campaign is fully determined by the outbox of the day before its send day and the seed, so any
day's events.jsonl can be rebuilt by replaying the campaigns of the last 3 days.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from random import Random

from .common import SECONDS_PER_DAY, Stream, add_days, customer_token, day_start, hash_unit, iso, py_rng
from .outbox import Recipient, pick_audience, read_outbox

SEND_EVERY_DAYS = 7
SEND_DAY_OFFSET = 1     # send days are start+1, start+8, ...: the outbox of start exists by then
EVENT_DAYS = 3          # events arrive on the send day and up to 3 days after
SHOP_URL = "https://shop.example.com"
HARD_BOUNCE, SOFT_BOUNCE = 0.02, 0.01
HUMAN_OPEN, MACHINE_OPEN_CLIENTS = 0.25, 0.15
CLICK_GIVEN_OPEN = 0.16  # 0.25 * 0.16 = 4% of delivered click
UNSUBSCRIBE, SPAMREPORT = 0.005, 0.001
OPEN_DELAY_MEAN_S = 5 * 3600
FLOW_AUDIENCE_PREFIX = "flow_"  # dbt_project/seeds/flows.csv audiences: not picked for the weekly campaign


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    audience: str
    send_day: date
    sent_ts: int
    recipients: tuple[Recipient, ...]
    landing_path: str  # the product the email features; clicks land there
    discount_code: str | None = None  # the code the e-mail carries (percentage off every order in the window)
    discount_pct: int = 0

    def row(self) -> dict:
        row = {"campaign_id": self.campaign_id, "name": self.name, "sent_at": iso(self.sent_ts),
               "audience": self.audience, "variant": "A"}
        if self.discount_code:
            row["discount_code"] = self.discount_code
        return row


@dataclass(frozen=True)
class CampaignRun:
    """All events of a campaign (over its 4 event days) and who got the email delivered."""

    campaign: Campaign
    events: tuple[dict, ...]      # sorted by (timestamp, sg_event_id)
    delivered: dict[str, int]     # customer_id -> delivered unix ts


FORECAST_AUDIENCES = ("high_value_at_risk",)  # dbt: int_customers_high_value_at_risk
# Rewarded one by one by the shop's loyalty automation when they join the list (seeds/audience_offers.csv
# reward_cooldown_days), not by the weekly campaign; the simulator does not model that reward's effect.
REWARD_AUDIENCES = ("loyal_reward",)


def is_send_day(start: date, day: date) -> bool:
    return (day - start).days % SEND_EVERY_DAYS == SEND_DAY_OFFSET and day > start


@dataclass(frozen=True)
class DiscountPlan:
    """Which weekly campaigns carry a discount code: week indexes with week % every == offset."""

    every: int = 2
    offset: int = 1      # the demo's 14 days: week 0 without a code, week 1 with one
    pct: int = 15

    def code_for(self, week: int, day: date) -> tuple[str | None, int]:
        if self.every <= 0 or week % self.every != self.offset % self.every:
            return None, 0
        return f"MAIL{self.pct}-{day.strftime('%m%d')}", self.pct


def plan_campaign(seed: int, start: date, outbox: Path, day: date, product_ids: list[str],
                  discounts: DiscountPlan | None = None) -> Campaign | None:
    """The campaign sent on `day`: one audience of yesterday's outbox, rotating week by week."""
    if not is_send_day(start, day):
        return None
    # the lifecycle flows' audiences (flow_*) are mailed by the flows, the reward audiences by the loyalty
    # automation: neither by the weekly campaign
    audiences = [a for a in read_outbox(outbox, add_days(day, -1).isoformat()) or []
                 if not a.name.startswith(FLOW_AUDIENCE_PREFIX) and a.name not in REWARD_AUDIENCES]
    if not audiences:
        return None
    # The forecast's small audiences come after the RFM ones in the rotation (weeks 0-2 mail the RFM
    # audiences as they did before the forecast existed).
    audiences = sorted(audiences, key=lambda a: a.name in FORECAST_AUDIENCES)
    audience = pick_audience(audiences, (day - start).days // SEND_EVERY_DAYS)
    if audience is None:
        return None
    rng = py_rng(seed, day, Stream.EMAIL, "plan")
    campaign_id = f"cmp-{day.isoformat()}-{audience.name}"
    sent_ts = day_start(day) + 8 * 3600 + rng.randint(0, 2 * 3600)
    name = f"Weekly picks {day.isoformat()} ({audience.name})"
    landing = f"/product/{rng.choice(product_ids)}"
    code, pct = (discounts or DiscountPlan(every=0)).code_for((day - start).days // SEND_EVERY_DAYS, day)
    return Campaign(campaign_id, name, audience.name, day, sent_ts, audience.recipients, landing, code, pct)


def _digest(*parts: object, length: int = 22) -> str:
    raw = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return base64.urlsafe_b64encode(raw).decode()[:length]


def _delay(rng: Random, mean: float, room: int) -> int:
    """Exponential delay truncated to `room` seconds (inverse CDF, so no draw is wasted)."""
    room = max(room, 1)
    u = rng.random() * (1 - math.exp(-room / mean))
    return min(int(-mean * math.log(1 - u)), room)


class _Recorder:
    """Builds one recipient's events with deterministic, unique sg_event_ids."""

    def __init__(self, seed: int, campaign: Campaign, index: int, recipient: Recipient) -> None:
        self.seed, self.campaign, self.index, self.recipient = seed, campaign, index, recipient
        self.message_id = f"{_digest(seed, campaign.campaign_id, index, 'msg')}.filter0{1 + index % 9}.{index}.0"
        self.events: list[dict] = []

    def add(self, event: str, ts: int, **extra: object) -> None:
        r = self.recipient
        self.events.append({
            "sg_event_id": _digest(self.seed, self.campaign.campaign_id, self.index, r.customer_id, event,
                                   len(self.events)),
            "event": event, "email": r.email, "timestamp": ts, "campaign_id": self.campaign.campaign_id,
            "customer_id": r.customer_id, "sg_message_id": self.message_id, **extra})


def _recipient_events(rng: Random, rec: _Recorder, processed: int, window_end: int) -> int | None:
    """Events of one recipient; returns the delivered timestamp, or None when it bounced."""
    rec.add("processed", processed)
    outcome = rng.random()
    if outcome < HARD_BOUNCE + SOFT_BOUNCE:
        hard = outcome < HARD_BOUNCE
        rec.add("bounce", processed + rng.randint(1, 30), type="bounce" if hard else "blocked",
                bounce_classification="Invalid Address" if hard else "Technical",
                reason="550 5.1.1 The email account that you tried to reach does not exist" if hard
                else "421 4.7.0 Temporarily deferred due to unexpected volume or user complaints")
        return None
    delivered = processed + rng.randint(1, 90)
    rec.add("delivered", delivered)
    if hash_unit(rec.seed, "apple-mail", rec.recipient.customer_id) < MACHINE_OPEN_CLIENTS:
        rec.add("open", delivered + rng.randint(2, 600), sg_machine_open=True)  # privacy proxy prefetch
    engaged = delivered
    if rng.random() < HUMAN_OPEN:
        opened = delivered + _delay(rng, OPEN_DELAY_MEAN_S, window_end - delivered)
        rec.add("open", opened, sg_machine_open=False)
        engaged = opened
        if rng.random() < 0.3:
            rec.add("open", opened + _delay(rng, OPEN_DELAY_MEAN_S, window_end - opened), sg_machine_open=False)
        if rng.random() < CLICK_GIVEN_OPEN:
            campaign, token = rec.campaign, customer_token(rec.recipient.customer_id)
            url = (f"{SHOP_URL}{campaign.landing_path}?utm_source=email&utm_medium=email"
                   f"&utm_campaign={campaign.campaign_id}&ct={token}")
            rec.add("click", min(opened + rng.randint(3, 240), window_end), url=url)
    if rng.random() < UNSUBSCRIBE:
        rec.add("unsubscribe", min(engaged + rng.randint(5, 900), window_end))
    if rng.random() < SPAMREPORT:
        rec.add("spamreport", min(engaged + rng.randint(5, 900), window_end))
    return delivered


def run_campaign(seed: int, campaign: Campaign) -> CampaignRun:
    """Every event of the campaign; the ESP works through the list over ~20 minutes."""
    rng = py_rng(seed, campaign.send_day, Stream.EMAIL, campaign.campaign_id)
    window_end = day_start(campaign.send_day) + (EVENT_DAYS + 1) * SECONDS_PER_DAY - 1
    n = len(campaign.recipients)
    events: list[dict] = []
    delivered: dict[str, int] = {}
    for index, recipient in enumerate(campaign.recipients):
        rec = _Recorder(seed, campaign, index, recipient)
        ts = _recipient_events(rng, rec, campaign.sent_ts + index * 1200 // max(n, 1), window_end)
        if ts is not None:
            delivered.setdefault(recipient.customer_id, ts)
        events.extend(rec.events)
    events.sort(key=lambda e: (e["timestamp"], e["sg_event_id"]))
    return CampaignRun(campaign, tuple(events), delivered)


def event_json(event: dict) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def malformed_event_lines(rng: Random, seed: int, day: date, events: list[dict], n: int,
                          window: tuple[int, int] | None = None) -> list[str]:
    """Bad lines for a day's events.jsonl: JSON cut off mid-object and, when there are events, an
    event whose email is not an address (a copy of a real one under its own sg_event_id). Without
    events, the templates are stamped inside the export's `window` (default: the UTC day)."""
    start, end = window or (day_start(day), day_start(day) + SECONDS_PER_DAY)
    if events:
        n = max(n, 2)  # both kinds every day with events
    bad = []
    for j in range(n):
        template = dict(rng.choice(events)) if events else {
            "sg_event_id": _digest(seed, "malformed", day, j), "event": "delivered",
            "email": "someone@example.com", "timestamp": start + rng.randrange(end - start)}
        if j % 2 == 1:
            template["sg_event_id"] = _digest(seed, "malformed", day, j)
            template["email"] = str(template["email"]).replace("@", rng.choice(("", " at ", "@@")))
            bad.append(event_json(template))
        else:
            text = event_json(template)
            bad.append(text[: rng.randint(10, len(text) - 2)])
    return bad
