"""The loyalty program's points ledger (issue 29): loaded with the shop's files, bad lines quarantined
with reason codes, the marts recover the simulator's program exactly (points per day, the outstanding
liability, each member's balance and tier, members linked by e-mail), and a shop without a program
runs as before. Real PostgreSQL, real dbt."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import psycopg
import pytest

from ecrm.intervals import day_interval
from ecrm.load.ingest import ingest

START = date(2026, 10, 1)
DAYS = 12
HEADER = "event_id,member_id,customer_id,email,event_type,points,order_id,tier,occurred_at\n"
TS = "2026-10-01T10:00:00+00:00"


def test_ledger_lines_load_signed_and_bad_ones_are_quarantined_with_reasons(conn, tmp_path):
    folder = tmp_path / "loyalty" / START.isoformat()
    folder.mkdir(parents=True)
    (folder / "ledger.csv").write_text(HEADER + (
        f"e1,m1,c-1,,earned,120,o-1,,{TS}\n"                          # 2: loads
        f"e2,m1,c-1,,redeemed,100,o-2,,{TS}\n"                        # 3: a positive redemption: -100
        f"e3,m2,,B@Example.com,expired,-40,,,{TS}\n"                  # 4: already signed: -40
        f"e4,m2,,b@example.com,tier_changed,,,Silver,{TS}\n"          # 5: loads, 0 points
        f"e5,m3,c-3,,bonus,10,,,{TS}\n"                               # 6: unknown_event_type
        f"e6,m3,c-3,,earned,-5,,,{TS}\n"                              # 7: wrong_sign
        f"e7,m3,c-3,,tier_changed,,,,{TS}\n"                          # 8: missing_field (tier)
        f"e8,,c-3,,earned,5,,,{TS}\n"                                 # 9: missing_field (member_id)
        f"e9,m3,c-3,,earned,1.5,,,{TS}\n"                             # 10: invalid_value
        f"e10,m3,c-3,,earned,1000000000000,,,{TS}\n"                  # 11: out_of_range
        "e11,m3,c-3,,earned,5,,,2026-09-01T10:00:00+00:00\n"          # 12: too_late
        f"e12,m3,c-3,,adjusted,-25,,,{TS}\n"))                        # 13: loads (either sign)
    results = ingest(conn, "loyalty", folder, day_interval(START), "test")
    assert [(r.rows_read, r.rows_loaded, r.rows_quarantined) for r in results] == [(12, 5, 7)]
    loaded = dict(conn.execute("select event_id, points from raw.loyalty_events").fetchall())
    assert loaded == {"e1": 120, "e2": -100, "e3": -40, "e4": 0, "e12": -25}
    codes = dict(conn.execute("select _line, reason_code from quarantine.rejected_rows "
                              "where source = 'loyalty_events'").fetchall())
    assert codes == {6: "unknown_event_type", 7: "wrong_sign", 8: "missing_field", 9: "missing_field",
                     10: "invalid_value", 11: "out_of_range", 12: "too_late"}
    # JSON lines from another app: the same rules
    (folder / "ledger.csv").unlink()
    (folder / "ledger.jsonl").write_text(
        json.dumps({"event_id": "j1", "member_id": "m9", "email": "z@example.com", "event_type": "earned",
                    "points": 30, "occurred_at": TS}) + "\n"
        + json.dumps({"event_id": "j2", "member_id": "m9", "event_type": "redeemed", "points": 0,
                      "occurred_at": TS}) + "\n")
    results = ingest(conn, "loyalty", folder, day_interval(START), "test")
    assert [(r.rows_read, r.rows_loaded, r.rows_quarantined) for r in results] == [(2, 1, 1)]
    # a day without events: the app writes its header only, which is no broken export
    quiet = tmp_path / "loyalty" / (START + timedelta(days=1)).isoformat()
    quiet.mkdir()
    (quiet / "ledger.csv").write_text(HEADER)
    results = ingest(conn, "loyalty", quiet, day_interval(START + timedelta(days=1)), "test")
    assert [(r.status, r.rows_read) for r in results] == [("succeeded", 0)]


@pytest.fixture(scope="module")
def program(warehouse, tmp_path_factory):
    """DAYS simulated days of a shop with a loyalty program, loaded as the daily pipeline does (the
    ledger with the shop's files) and built as of the last day."""
    from ecrm import pipeline, transform
    from ecrm.simulate import ShopSimulator

    data = tmp_path_factory.mktemp("loyalty")
    with pytest.MonkeyPatch.context() as env:
        _point_settings_at(env, data)
        sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                            customers=2000, seed=3, delivery="shop,email", loyalty=True)
        sim.write_initial()
        url = warehouse.create_database("loyalty_program")
        pipeline.ingest_initial(START, url=url)
        summaries = []
        for offset in range(DAYS):
            day = START + timedelta(days=offset)
            sim.write_day(day)
            for source in pipeline.SOURCES:
                summaries.append(pipeline.ingest_interval(source, *day_interval(day), url=url))
        transform.build(START + timedelta(days=DAYS - 1), url)
        yield url, json.loads((data / "truth" / "loyalty.json").read_text()), summaries


def _point_settings_at(env: pytest.MonkeyPatch, data) -> None:
    """The data, landing and outbox folders in `data` for the duration of `env`."""
    for key, value in {"ECRM_DATA_DIR": data, "ECRM_LANDING": data / "landing", "ECRM_OUTBOX": data / "outbox"}.items():
        env.setenv(key, str(value))


def test_the_marts_recover_the_programs_points_day_by_day(program):
    url, truth, summaries = program
    shop_files = [f["source"] for s in summaries if s["source"] == "shop" for f in s["files"]]
    assert shop_files.count("loyalty_events") == DAYS  # loaded with the shop's files, one ledger a day
    days = truth["days"]
    assert sum(d["points_redeemed"] for d in days.values()) > 0, "the test needs redemptions"
    with psycopg.connect(url) as conn:
        rows = conn.execute("select ledger_date, points_earned, points_redeemed, points_expired, tier_changes, "
                            "new_members, members, outstanding_points, outstanding_liability "
                            "from marts.fct_loyalty_daily order by ledger_date").fetchall()
        read, loaded, quarantined = conn.execute(
            "select sum(rows_read), sum(rows_loaded), sum(rows_quarantined) from ops.load_ledger "
            "where source = 'loyalty_events' and status = 'succeeded'").fetchone()
    assert read == loaded + quarantined and quarantined == 0
    assert [r[0].isoformat() for r in rows] == list(days)
    for r in rows:
        d = days[r[0].isoformat()]
        assert r[1:8] == (d["points_earned"], d["points_redeemed"], d["points_expired"], d["tier_changes"],
                          d["new_members"], d["members"], d["outstanding_points"]), r
        assert r[8] == (Decimal(d["outstanding_points"]) * Decimal(str(truth["parameters"]["point_value"]))
                        ).quantize(Decimal("0.01"))


def test_each_member_has_the_programs_balance_and_tier_in_dim_customers(program):
    url, truth, _ = program
    end = truth["end_of_last_day"]
    with psycopg.connect(url) as conn:
        members = {cid: (balance, tier) for cid, balance, tier in conn.execute(
            "select customer_id, loyalty_points_balance, loyalty_tier from marts.dim_customers "
            "where is_loyalty_member")}
        others = conn.execute("select count(*) from marts.dim_customers where not is_loyalty_member "
                              "and (loyalty_points_balance is not null or loyalty_tier is not null)").fetchone()[0]
        by_email_only = conn.execute(
            "select count(distinct customer_id) from marts.dim_customers c where is_loyalty_member and not exists "
            "(select 1 from raw.loyalty_events e where e.customer_id = c.customer_id)").fetchone()[0]
        groups = dict(conn.execute("select customer_group, buyers from marts.fct_loyalty_members_vs_others "
                                   "where as_of_date = %s", (START + timedelta(days=DAYS - 1),)).fetchall())
        member_buyers = conn.execute("select count(*) from marts.dim_customers where is_loyalty_member "
                                     "and valid_order_count >= 1").fetchone()[0]
    assert members == {c: (end["balances"][c], end["tiers"][c]) for c in end["balances"]}
    assert others == 0
    assert by_email_only > 0  # members the export names only by e-mail are linked by address
    assert groups["member"] == member_buyers > 0 and groups["non_member"] > 0  # buyers only


def test_loyal_reward_picks_champions_and_loyal_customers_not_rewarded_within_the_cooldown(program):
    """The loyal_reward audience (seeds audiences + audience_offers.reward_cooldown_days): the day's
    Champions and Loyal customers, less whoever redeemed points in the last N days (linked here from the
    raw ledger by customer id, else by address), with its own holdout like every audience."""
    url, truth, _ = program
    last = START + timedelta(days=DAYS - 1)
    with psycopg.connect(url) as conn:
        cooldown = conn.execute("select reward_cooldown_days from seeds.audience_offers "
                                "where audience = 'loyal_reward'").fetchone()[0]
        segments = {r[0] for r in conn.execute("select segment from seeds.audiences where audience = 'loyal_reward'")}
        of_segments = {cid for cid, segment in conn.execute(
            "select customer_id, segment from marts.fct_customer_rfm_daily where snapshot_date = %s", (last,))
            if segment in segments}
        email_of = {email.strip().lower(): cid for cid, email in conn.execute(
            "select customer_id, email from raw.customers where email is not null order by customer_id desc")}
        redeemed = conn.execute(
            "select customer_id, email, occurred_at from raw.loyalty_events where event_type = 'redeemed'").fetchall()
        picked = {r[0] for r in conn.execute(
            "select customer_id from sync.sync_audience_candidates where audience = 'loyal_reward'")}
        sent = {r[0] for r in conn.execute(
            "select customer_id from sync.sync_audience_members where audience = 'loyal_reward'")}
        held_out = {r[0] for r in conn.execute(
            "select customer_id from sync.sync_holdout_members where audience = 'loyal_reward'")}
    since = datetime.combine(last + timedelta(days=1), time(), UTC) - timedelta(days=cooldown)
    rewarded = {cid or email_of.get((email or "").strip().lower()) for cid, email, at in redeemed if at >= since}
    assert cooldown == 60 and segments == {"Champions", "Loyal"}
    assert of_segments & rewarded, "the test needs a Champion or Loyal customer who redeemed within the cooldown"
    assert picked == of_segments - rewarded and picked
    assert sent and held_out and sent | held_out <= picked and not sent & held_out


def test_a_shop_without_a_loyalty_program_loads_and_builds_as_before(warehouse, tmp_path, monkeypatch):
    """No landing/loyalty folder: the shop's day loads with no loyalty file, the loyalty marts are
    empty and no customer is a member."""
    from ecrm import pipeline, transform
    from ecrm.simulate import ShopSimulator

    data = tmp_path / "data"
    _point_settings_at(monkeypatch, data)
    sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=START,
                        customers=300, seed=5, delivery="shop,email")
    sim.write_initial()
    sim.write_day(START)
    assert not (data / "landing" / "loyalty").exists()
    url = warehouse.create_database("no_loyalty")
    pipeline.ingest_initial(START, url=url)
    summary = pipeline.ingest_interval("shop", *day_interval(START), url=url)
    for source in ("weblogs", "email"):
        pipeline.ingest_interval(source, *day_interval(START), url=url)
    assert {f["source"] for f in summary["files"]} == {"customers", "orders", "order_lines"}
    transform.build(START, url)
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from marts.fct_loyalty_daily").fetchone()[0] == 0
        assert conn.execute("select count(*) filter (where is_loyalty_member), count(*) "
                            "from marts.dim_customers").fetchone()[0] == 0
        assert conn.execute("select customer_group from marts.fct_loyalty_members_vs_others").fetchall() == [
            ("non_member",)]
