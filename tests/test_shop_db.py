"""Orders pulled from the shop's own database by updated_at watermark with a lookback."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest

from ecrm.intervals import day_interval
from ecrm.pipeline import ingest_shop_db
from ecrm.simulate import ShopSimulator
from ecrm.simulate.shop_db import apply_changes

START = date(2026, 10, 1)


@pytest.fixture
def shop(warehouse, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("ECRM_LANDING", str(tmp_path / "landing"))
    shop_url = warehouse.create_database(f"shop_{db_url.rsplit('/', 1)[1]}", migrated=False)
    sim = ShopSimulator(landing=tmp_path / "sim", outbox=tmp_path / "outbox", truth=tmp_path / "truth",
                        start=START, customers=300, seed=3)
    sim.write_initial()
    apply_changes(shop_url, tmp_path / "sim" / "shop" / "initial")
    return sim, shop_url, tmp_path


def orders(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select order_id, status, updated_at, total_amount from "
                            + ("shop" if "shop_" in url else "raw") + ".orders order by order_id").fetchall()


def pull(day: date, shop_url: str, db_url: str) -> dict:
    return ingest_shop_db(*day_interval(day), shop_url, run_id=f"test-{day}", url=db_url, lookback_days=3)


def test_first_pull_takes_history_then_daily_changes_and_refunds(shop, db_url):
    sim, shop_url, tmp = shop
    for offset in range(3):
        day = START + timedelta(days=offset)
        sim.write_day(day)
        apply_changes(shop_url, tmp / "sim" / "shop" / day.isoformat())
        summary = pull(day, shop_url, db_url)
        assert summary["mode"] == "database"
        if offset == 0:
            assert summary["window"][0].startswith("1970-01-01"), "no watermark yet: the whole history"
        else:
            assert summary["window"][0] == (day - timedelta(days=3)).isoformat() + "T00:00:00+00:00"
    assert orders(db_url) == orders(shop_url)
    with psycopg.connect(db_url) as conn:
        changed = conn.execute("select count(distinct order_id) from raw.order_status_history "
                               "group by order_id having count(*) > 1").fetchall()
    assert changed, "status changes after the order day (refunds, shipping) must be kept as history"


def test_late_change_inside_lookback_is_picked_up_and_rerun_changes_nothing(shop, db_url):
    sim, shop_url, tmp = shop
    day1, day2 = START, START + timedelta(days=1)
    for day in (day1, day2):
        sim.write_day(day)
    apply_changes(shop_url, tmp / "sim" / "shop" / day1.isoformat())
    pull(day1, shop_url, db_url)
    # A refund committed late, stamped with yesterday's time (a replica lag, a back-office fix).
    late = day_interval(day1)[0] + timedelta(hours=23)
    with psycopg.connect(shop_url, autocommit=True) as conn:
        order_id = conn.execute("select order_id from shop.orders where status <> 'refunded' "
                                "and updated_at < %s order by order_id limit 1", (late,)).fetchone()[0]
        conn.execute("update shop.orders set status = 'refunded', updated_at = %s where order_id = %s",
                     (late, order_id))
    apply_changes(shop_url, tmp / "sim" / "shop" / day2.isoformat())
    pull(day2, shop_url, db_url)
    assert dict((o, s) for o, s, *_ in orders(db_url))[order_id] == "refunded"
    before = orders(db_url)
    summary = pull(day2, shop_url, db_url)
    assert orders(db_url) == before
    assert {f["status"] for f in summary["files"]} == {"skipped_duplicate"}
