"""The shop simulator: deterministic files in the documented formats, and a closed campaign loop."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ecrm.simulate import ShopSimulator

START = date(2026, 10, 1)
SEND_DAY = START + timedelta(days=1)  # first send day: uses the outbox of START
DAYS = [START + timedelta(days=k) for k in range(5)]
CUSTOMERS = 2000
COMBINED = re.compile(
    r'^(?P<addr>[0-9a-f.:]+) - (?P<user>\S+) \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] '
    r'"(?P<method>[A-Z]+) (?P<target>\S+) (?P<proto>HTTP/\d\.\d)" (?P<status>\d{3}) (?P<bytes>\d+) '
    r'"(?P<referrer>[^"]*)" "(?P<agent>[^"]+)"$')
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ORDER_HEADER = ("order_id,customer_id,email,created_at,updated_at,status,currency,total_amount,"
                "discount_amount,coupon_code,discount_codes")
LINE_HEADER = "order_id,line_number,product_id,product_name,category,quantity,unit_price,discount_amount,updated_at"
CUSTOMER_HEADER = "customer_id,email,first_name,country,signed_up_at,updated_at,accepts_marketing"


def _write_outbox(root: Path, initial_customers: Path) -> dict[str, list[dict]]:
    """What the mailer push would have written on START: an empty audience listed first (must be
    skipped) and a 400-customer audience."""
    with initial_customers.open(newline="") as fh:
        customers = list(csv.DictReader(fh))
    audiences = {"a_empty": [], "at_risk": customers[100:500]}
    folder = root / START.isoformat()
    folder.mkdir(parents=True)
    manifest: dict = {"as_of_date": START.isoformat(), "audiences": {}}
    for name, members in audiences.items():
        text = "customer_id,email,first_name,segment\n" + "".join(
            f"{c['customer_id']},{c['email']},{c['first_name']},At Risk\n" for c in members)
        (folder / f"{name}.csv").write_text(text)
        manifest["audiences"][name] = {"file": f"{name}.csv", "rows": len(members),
                                       "sha256": hashlib.sha256(text.encode()).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return audiences


def _simulate(root: Path) -> tuple[ShopSimulator, dict[date, dict], dict[str, list[dict]]]:
    # Web logs of exactly their UTC day here (the checks below read a day's log as that day's truth);
    # the rotated delivery, the default, is tested on its own below.
    sim = ShopSimulator(landing=root / "landing", outbox=root / "outbox", truth=root / "truth", start=START,
                        customers=CUSTOMERS, seed=7, orders_per_day=30.0, delivery="shop,email")
    sim.write_initial()
    summaries = {START: sim.write_day(START)}
    audiences = _write_outbox(root / "outbox", root / "landing/shop/initial/customers.csv")
    for day in DAYS[1:]:
        summaries[day] = sim.write_day(day)
    return sim, summaries, audiences


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    sim, summaries, audiences = _simulate(root)
    return root, sim, summaries, audiences


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _valid_order(row: dict) -> bool:
    try:
        datetime.fromisoformat(row["created_at"])
        return (None not in row.values() and EMAIL.match(row["email"]) is not None
                and Decimal(row["total_amount"]) >= 0)
    except (ValueError, TypeError, KeyError):
        return False


def test_same_inputs_give_byte_identical_files(run, tmp_path):
    root = run[0]
    _simulate(tmp_path)
    assert _files(tmp_path) == _files(root)
    before = _files(root / "landing")
    run[1].write_day(SEND_DAY)  # rewriting a day changes nothing
    assert _files(root / "landing") == before


def test_shop_csv_headers_and_money(run):
    root, _, summaries, _ = run
    for day in ("initial", *(d.isoformat() for d in DAYS)):
        folder = root / "landing/shop" / day
        assert (folder / "orders.csv").read_text().splitlines()[0] == ORDER_HEADER
        assert (folder / "order_lines.csv").read_text().splitlines()[0] == LINE_HEADER
        assert (folder / "customers.csv").read_text().splitlines()[0] == CUSTOMER_HEADER
    lines_by_order: dict[str, list[dict]] = {}
    for line in _csv(root / "landing/shop/initial/order_lines.csv"):
        lines_by_order.setdefault(line["order_id"], []).append(line)
    orders = [o for o in _csv(root / "landing/shop/initial/orders.csv") if _valid_order(o)]
    assert len(orders) > 3000
    for order in orders:
        lines = lines_by_order[order["order_id"]]
        net = sum(int(ln["quantity"]) * Decimal(ln["unit_price"]) - Decimal(ln["discount_amount"]) for ln in lines)
        assert Decimal(order["total_amount"]) == net
        assert Decimal(order["discount_amount"]) == sum(Decimal(ln["discount_amount"]) for ln in lines)
        assert order["currency"] == "EUR" and re.fullmatch(r"\d+\.\d{2}", order["total_amount"])
    ids = [c["customer_id"] for c in _csv(root / "landing/shop/initial/customers.csv")]
    emails = [c["email"] for c in _csv(root / "landing/shop/initial/customers.csv")]
    assert len(ids) == CUSTOMERS and len(set(emails)) == CUSTOMERS
    assert len({o["customer_id"] for o in orders}) < CUSTOMERS  # some prospects never ordered
    for day in DAYS:
        rows = _csv(root / "landing/shop" / day.isoformat() / "orders.csv")
        bad = [r for r in rows if not _valid_order(r)]
        assert len(bad) == summaries[day]["malformed"]["orders"] >= 1
        assert len(rows) == summaries[day]["orders"]


def test_refunds_of_earlier_orders_reappear_later(run):
    root = run[0]
    seen = {o["order_id"]: o for o in _csv(root / "landing/shop/initial/orders.csv") if _valid_order(o)}
    refunds = before_midnight = 0
    for day in DAYS:
        rows = [r for r in _csv(root / "landing/shop" / day.isoformat() / "orders.csv") if _valid_order(r)]
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for row in rows:
            updated = datetime.fromisoformat(row["updated_at"])
            # the export of a day re-reads the hour before it (ecrm.simulate.delivery)
            assert midnight - timedelta(hours=1) <= updated < midnight + timedelta(days=1)
            before_midnight += updated < midnight
            if row["status"] in ("refunded", "cancelled"):
                assert row["order_id"] in seen, "status change of an order never exported before"
                assert datetime.fromisoformat(row["created_at"]) < updated
                assert datetime.fromisoformat(seen[row["order_id"]]["updated_at"]) < updated
                refunds += row["status"] == "refunded"
        seen.update({r["order_id"]: r for r in rows})
    assert refunds >= 3
    assert before_midnight >= 1, "no row of the previous day's last hour re-exported"


def test_access_log_is_combined_format(run):
    root, _, summaries, _ = run
    for day in DAYS:
        lines = (root / "landing/weblogs" / day.isoformat() / "access.log").read_text().splitlines()
        parsed = [m for m in map(COMBINED.match, lines) if m]
        assert len(lines) - len(parsed) == summaries[day]["malformed"]["access_log"] >= 1
        assert len(lines) == summaries[day]["access_log"]
        stamps = [datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z") for m in parsed]
        assert stamps == sorted(stamps) and {s.date() for s in stamps} == {day}
        bots = sum(bool(re.search(r"bot|python-requests|curl", m["agent"], re.I)) for m in parsed)
        assert 0.06 < bots / len(parsed) < 0.14
        new_orders = {r["order_id"] for r in _csv(root / "landing/shop" / day.isoformat() / "order_lines.csv")
                      if datetime.fromisoformat(r["updated_at"]).date() == day}  # not the hour before
        confirmed = {m["target"].split("order=")[1] for m in parsed if m["target"].startswith("/checkout/complete")}
        assert confirmed <= new_orders and len(confirmed) >= 0.85 * len(new_orders)


def test_campaign_goes_only_to_outbox_members(run):
    root, _, summaries, audiences = run
    members = {c["email"]: c["customer_id"] for c in audiences["at_risk"]}
    campaign_id = f"cmp-{SEND_DAY.isoformat()}-at_risk"
    assert summaries[SEND_DAY]["campaign_id"] == campaign_id
    # the ESP export runs at 02:00 UTC: the campaign sent on SEND_DAY is in the next day's folder
    export_day = SEND_DAY + timedelta(days=1)
    campaigns = (root / "landing/email" / export_day.isoformat() / "campaigns.jsonl").read_text().splitlines()
    assert [json.loads(c)["audience"] for c in campaigns] == ["at_risk"]
    assert not (root / "landing/email" / SEND_DAY.isoformat() / "campaigns.jsonl").exists()
    outsider = _csv(root / "landing/shop/initial/customers.csv")[0]["email"]
    events, ids = [], set()
    for day in DAYS:
        broken = 0
        for text in (root / "landing/email" / day.isoformat() / "events.jsonl").read_text().splitlines():
            try:
                event = json.loads(text)
            except json.JSONDecodeError:
                broken += 1
                continue
            if not EMAIL.match(event["email"]):
                broken += 1
                continue
            export = datetime(day.year, day.month, day.day, 2, tzinfo=UTC)  # the 24 hours before 02:00
            assert export - timedelta(days=1) <= datetime.fromtimestamp(event["timestamp"], UTC) < export
            events.append(event)
            ids.add(event["sg_event_id"])
        assert broken == summaries[day]["malformed"]["events"] >= 1
    assert events and len(ids) == len(events)
    assert all(e["email"] in members and members[e["email"]] == e["customer_id"] for e in events)
    assert all(e["campaign_id"] == campaign_id for e in events)
    assert outsider not in {e["email"] for e in events}
    assert any(datetime.fromtimestamp(e["timestamp"], UTC).date() < d for d in DAYS[2:] for e in events)
    processed = [e["customer_id"] for e in events if e["event"] == "processed"]
    assert sorted(processed) == sorted(members.values())
    kinds = {e["event"] for e in events}
    assert {"delivered", "open", "click", "bounce"} <= kinds
    assert any(e.get("sg_machine_open") for e in events)
    last = datetime.fromtimestamp(max(e["timestamp"] for e in events), UTC).date()
    assert last <= SEND_DAY + timedelta(days=3)


def test_truth_records_the_campaign_effect(run):
    root = run[0]
    truth = json.loads((root / "truth/campaigns.json").read_text())["campaigns"]
    assert [c["campaign_id"] for c in truth] == [f"cmp-{SEND_DAY.isoformat()}-at_risk"]
    record = truth[0]
    assert record["recipients"] == 400 and 370 <= record["delivered"] < 400
    assert 0.02 < record["true_uplift_7d"] < 0.06
    assert record["expected_conversion_7d_treated"] > record["expected_conversion_7d_baseline"]
    per_customer = _csv(root / "truth/campaigns" / f"{record['campaign_id']}.csv")
    assert len(per_customer) == 400


def test_large_shops_simulate_without_errors(tmp_path):
    """Regression: cutting an already cut-off log line raised ValueError for larger shops."""
    from datetime import date

    from ecrm.simulate import ShopSimulator

    for seed in (5, 7):
        sim = ShopSimulator(landing=tmp_path / f"l{seed}", outbox=tmp_path / "o", truth=tmp_path / f"t{seed}",
                            start=date(2026, 10, 1), customers=8000, seed=seed)
        summary = sim.write_day(date(2026, 10, 1))
        assert summary["malformed"]["access_log"] > 0


def test_rotated_web_logs_hold_every_request_once(tmp_path):
    """ECRM_SIM_DELIVERY=weblogs: logrotate at 06:25 Berlin time; each file holds the requests that
    finished between two rotations (stamped with their start, so not strictly ordered), and the
    files together hold exactly the requests of the days, each once."""
    from ecrm.simulate.delivery import Delivery

    days = [date(2026, 10, 24) + timedelta(days=k) for k in range(4)]  # 25 October: CEST -> CET
    delivery = Delivery(shop=True, email=True, weblogs=True, timezone="Europe/Berlin")
    sim = ShopSimulator(landing=tmp_path / "landing", outbox=tmp_path / "outbox", truth=tmp_path / "truth",
                        start=days[0], customers=600, seed=3, delivery=delivery)
    aligned = ShopSimulator(landing=tmp_path / "aligned", outbox=tmp_path / "outbox", truth=tmp_path / "t2",
                            start=days[0], customers=600, seed=3, delivery="none")
    stamps_by_file, unordered = {}, 0
    for day in days:
        sim.write_day(day)
        aligned.write_day(day)
        folder = tmp_path / "landing/weblogs" / day.isoformat()
        assert [p.name for p in folder.iterdir()] == [f"access.log-{day:%Y%m%d}"]
        parsed = [m for m in map(COMBINED.match, next(folder.iterdir()).read_text().splitlines()) if m]
        stamps = [datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z") for m in parsed]
        unordered += sum(b < a for a, b in zip(stamps, stamps[1:], strict=False))
        stamps_by_file[day] = stamps
    # 06:25 CEST = 04:25 UTC until 25 October, 06:25 CET = 05:25 UTC from then on
    rotation = {d: datetime(d.year, d.month, d.day, 4 if d < date(2026, 10, 25) else 5, 25, tzinfo=UTC) for d in days}
    for day in days[1:]:
        stamps = stamps_by_file[day]
        assert max(stamps) < rotation[day] and min(stamps) >= rotation[day - timedelta(days=1)] - timedelta(minutes=2)
        assert {s.date() for s in stamps} == {day - timedelta(days=1), day}
    assert max(stamps_by_file[days[0]]) < rotation[days[0]]
    assert unordered > 0, "slow requests are written when they finish: some lines are out of order"
    # the first three UTC days are fully delivered by the four files; each request exactly once
    rotated = sorted(s for day in days for s in stamps_by_file[day] if s < rotation[days[2]].replace(hour=0, minute=0))
    whole = []
    for day in days[:2]:
        text = (tmp_path / "aligned/weblogs" / day.isoformat() / "access.log").read_text().splitlines()
        whole += [datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z") for m in map(COMBINED.match, text) if m]
    assert len(rotated) >= len(whole)  # sessions over midnight are kept whole (the aligned log cuts them)
    assert len(rotated) - len(whole) < 0.01 * len(whole)
    before = _files(tmp_path / "landing")
    sim.write_day(days[1])  # rewriting a day changes nothing
    assert _files(tmp_path / "landing") == before


def test_delivery_spec_is_checked():
    from ecrm.simulate.delivery import Delivery

    assert Delivery.parse("none") == Delivery(False, False, False)
    assert Delivery.parse("all", "UTC") == Delivery(True, True, True, "UTC")
    with pytest.raises(ValueError, match="unknown source"):
        Delivery.parse("shop,web")
