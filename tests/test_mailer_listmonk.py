"""The listmonk adapter against a local HTTP server that behaves like listmonk's API: lists per
audience, new subscribers created, existing ones added to lists without a status (so an unsubscribed
subscription or a blocklisted subscriber is never turned back on), removals that keep opt-out
records, retries and an outage mid-sync, 401; an unsubscribe wave removed before any add, and logs that
carry no address or token (listmonk's look-up puts addresses in the URL, which httpx logs at INFO)."""

from __future__ import annotations

import logging
import time
from datetime import date

import pytest
from fake_esp import FakeListmonk
from mailer_world import World

from ecrm.mailer.config import MailerConfig
from ecrm.mailer.http import EspAuthError, EspUnavailable
from ecrm.mailer.sync import sync_audiences

D1, D2 = date(2026, 10, 1), date(2026, 10, 2)


@pytest.fixture
def fake():
    server = FakeListmonk().start()
    yield server
    server.stop()


@pytest.fixture
def world(conn):
    return World(conn)


@pytest.fixture
def config(fake, tmp_path):
    return MailerConfig(adapter="listmonk", outbox=tmp_path, listmonk_url=fake.url, listmonk_user=fake.user,
                        listmonk_token=fake.token, timeout=1.5, max_retries=4, backoff_base=0.01, backoff_max=0.2,
                        concurrency=3, batch_size=50)


def test_creates_lists_and_subscribers_then_a_rerun_sends_nothing(conn, world, fake, config):
    ids = world.customers(120)
    world.publish(D1, {"vip": ids[:100], "winback": ids[100:]})
    report = sync_audiences(conn, D1, config=config)
    assert report["status"] == "succeeded"
    assert set(fake.lists.values()) == {"ecrm-vip", "ecrm-winback"}
    assert set(fake.list_members("ecrm-vip")) == {world.email(c) for c in ids[:100]}
    assert fake.count("create") == {world.email(c): 1 for c in ids}
    assert fake.by_email(world.email(ids[0]))["attribs"] == {"customer_id": ids[0], "segment": "Champions"}
    writes = len([r for r in fake.requests if r[0] != "GET"])
    assert sync_audiences(conn, D1, config=config)["status"] == "succeeded"
    assert len([r for r in fake.requests if r[0] != "GET"]) == writes
    assert fake.violations == []


def test_never_resubscribes_blocklisted_or_unsubscribed(conn, world, fake, config):
    ids = world.customers(4)
    fake.lists = {1: "ecrm-vip", 2: "newsletter"}
    fake.add_subscriber(world.email(ids[0]), status="blocklisted", lists={2: "unsubscribed"})
    fake.add_subscriber(world.email(ids[1]), lists={1: "unsubscribed", 2: "confirmed"})
    fake.add_subscriber(world.email(ids[2]), lists={2: "confirmed"})
    world.publish(D1, {"vip": ids})
    report = sync_audiences(conn, D1, config=config)
    assert report["audiences"]["vip"]["sent"] == 2 and report["audiences"]["vip"]["rejected"] == 2
    assert fake.violations == []
    assert fake.list_members("ecrm-vip") == {world.email(ids[1]): "unsubscribed", world.email(ids[2]): "unconfirmed",
                                             world.email(ids[3]): "unconfirmed"}
    add_calls = [r[3] for r in fake.requests if r[1] == "/api/subscribers/lists"]
    assert add_calls and all('"status"' not in body for body in add_calls)
    suppressed = conn.execute("select count(*) from mailer.esp_suppressions").fetchone()[0]
    assert suppressed == 2
    fake.requests.clear()
    sync_audiences(conn, D1, config=config)  # not tried again
    assert world.email(ids[0]) not in fake.bodies() and world.email(ids[1]) not in fake.bodies()


def test_removes_membership_only_and_keeps_opt_out_records(conn, world, fake, config):
    ids = world.customers(10)
    world.publish(D1, {"vip": ids})
    sync_audiences(conn, D1, config=config)
    sub = fake.by_email(world.email(ids[0]))
    sub["lists"][1] = "unsubscribed"  # unsubscribed via a campaign link; the event arrives tomorrow
    world.publish(D2, {"vip": ids[2:]})
    sync_audiences(conn, D2, config=config.with_(max_remove_share=0.5))
    members = fake.list_members("ecrm-vip")
    assert members[world.email(ids[0])] == "unsubscribed"  # the opt-out row is kept
    assert world.email(ids[1]) not in members
    assert fake.by_email(world.email(ids[1]))["status"] == "enabled" and fake.violations == []


def test_attribute_changes_update_without_status(conn, world, fake, config):
    ids = world.customers(3)
    world.publish(D1, {"vip": ids})
    sync_audiences(conn, D1, config=config)
    world.set(ids[0], first_name="Renamed")
    world.publish(D2, {"vip": ids})
    report = sync_audiences(conn, D2, config=config)
    assert report["audiences"]["vip"]["updates"] == 1
    sub = fake.by_email(world.email(ids[0]))
    assert sub["name"] == "Renamed" and sub["lists"] == {1: "unconfirmed"}
    assert fake.violations == []


def test_outage_and_retries_still_deliver_each_member_once(conn, world, fake, config):
    ids = world.customers(200)
    world.publish(D1, {"vip": ids})
    fake.lists = {1: "ecrm-vip"}
    fake.faults.extend([("status", 429, {"Retry-After": "0.05"}), ("status", 503), ("slow", 6.0)])
    fake.fail_after_writes = 120
    with pytest.raises(EspUnavailable):
        sync_audiences(conn, D1, config=config.with_(concurrency=2))
    done = conn.execute("select count(*) from mailer.audience_state").fetchone()[0]
    assert 0 < done < 200
    fake.fail_after_writes = None
    sync_audiences(conn, D1, config=config)
    assert fake.count("create") == {world.email(c): 1 for c in ids}
    assert len(fake.list_members("ecrm-vip")) == 200 and fake.violations == []


def test_auth_failure_is_clear_and_marks_nothing(conn, world, fake, config):
    ids = world.customers(3)
    world.publish(D1, {"vip": ids})
    with pytest.raises(EspAuthError, match="HTTP 401.*ECRM_LISTMONK_USER / ECRM_LISTMONK_TOKEN"):
        sync_audiences(conn, D1, config=config.with_(listmonk_token="wrong"))
    assert conn.execute("select count(*) from mailer.audience_state").fetchone()[0] == 0
    assert fake.subscribers == {}


def test_throughput(conn, world, fake, config, capsys):
    ids = world.customers(2000)
    world.publish(D1, {"vip": ids})
    started = time.monotonic()
    sync_audiences(conn, D1, config=config.with_(concurrency=4, batch_size=200))
    seconds = time.monotonic() - started
    with capsys.disabled():
        print(f"\nlistmonk fake: 2000 new subscribers in {seconds:.2f}s = {2000 / seconds:,.0f} members/s")


def test_an_unsubscribe_wave_is_removed_first_and_never_trips_the_breaker(conn, world, fake, config):
    ids = world.customers(40)
    world.publish(D1, {"vip": ids[:20], "winback": ids[20:30]})
    sync_audiences(conn, D1, config=config)
    for cid in ids[:5]:  # 25% of vip
        world.set(cid, is_suppressed=True, has_complained=True)
    world.publish(D2, {"vip": ids[5:20], "winback": ids[20:33]})
    applied_before = len(fake.applied)
    report = sync_audiences(conn, D2, config=config.with_(batch_size=2))
    assert report["status"] == "succeeded" and report["audiences"]["vip"]["compliance_removes"] == 5
    assert set(fake.list_members("ecrm-vip")) == {world.email(c) for c in ids[5:20]}
    assert all(fake.by_email(world.email(c))["status"] == "enabled" for c in ids[:5])  # membership only
    ops = [entry[0] for entry in fake.applied[applied_before:]]
    assert ops == ["list_remove"] * 5 + ["create"] * 3  # removals confirmed before any add
    assert fake.violations == []


def test_no_address_or_token_in_the_logs(conn, world, fake, config, caplog):
    for name in ("", "httpx", "httpcore", "ecrm"):  # everything at DEBUG, as a debugging operator would set it
        caplog.set_level(logging.DEBUG, logger=name or None)
    ids = world.customers(20)
    world.publish(D1, {"vip": ids})
    fake.faults.extend([("status", 429, {"Retry-After": "0"}), ("status", 502)])
    sync_audiences(conn, D1, config=config)
    world.set(ids[0], is_suppressed=True)
    sync_audiences(conn, D1, config=config)  # a removal: look-up by address again
    assert "retry 1/4" in caplog.text and len(caplog.records) >= 3  # the logs were captured
    assert "@" not in caplog.text and "%40" not in caplog.text.upper()
    assert fake.token not in caplog.text
