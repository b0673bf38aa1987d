"""The Mailchimp adapter against a local HTTP server that behaves like the Marketing API:
batches of at most 500, tags for audiences, 429/5xx/timeouts with retries, per-member errors inside
a 200, an outage mid-sync and a restart, 401 and an unreachable host; an unsubscribe wave that must
go out whatever the circuit breaker says, a breaker that refuses one audience only, and logs that
carry no address or key."""

from __future__ import annotations

import logging
import time
from datetime import date

import pytest
from fake_esp import FakeMailchimp
from mailer_world import World

from ecrm.mailer.config import MailerConfig
from ecrm.mailer.http import EspAuthError, EspUnavailable
from ecrm.mailer.sync import CircuitBreakerOpen, sync_audiences

D1, D2 = date(2026, 10, 1), date(2026, 10, 2)


@pytest.fixture
def fake():
    server = FakeMailchimp().start()
    yield server
    server.stop()


@pytest.fixture
def world(conn):
    return World(conn)


@pytest.fixture
def config(fake, tmp_path):
    return MailerConfig(adapter="mailchimp", outbox=tmp_path, mailchimp_api_key=fake.api_key, mailchimp_list_id="L1",
                        mailchimp_url=f"{fake.url}/3.0", timeout=1.5, max_retries=4, backoff_base=0.01,
                        backoff_max=0.2, concurrency=3)


def _writes(fake):
    return [r for r in fake.requests if r[0] != "GET"]


def test_batches_of_500_tags_and_a_rerun_that_sends_nothing(conn, world, fake, config):
    ids = world.customers(1200)
    world.publish(D1, {"vip": ids[:1100], "winback": ids[1100:]})
    report = sync_audiences(conn, D1, config=config)
    assert report["status"] == "succeeded"
    upserts = [r for r in fake.requests if r[0] == "POST" and r[1] == "/3.0/lists/L1"]
    assert len(upserts) == 4  # 500 + 500 + 100 (vip) + 100 (winback)
    assert set(fake.count("upsert").values()) == {1} and len(fake.count("upsert")) == 1200
    assert fake.tag_members("ecrm-vip") == {world.email(c) for c in ids[:1100]}
    assert fake.violations == []
    assert '"status"' not in fake.bodies().replace('"status_if_new"', "")  # never a status for anyone

    before = len(_writes(fake))
    again = sync_audiences(conn, D1, config=config)
    assert again["status"] == "succeeded" and len(_writes(fake)) == before


def test_retries_429_5xx_and_timeouts_deliver_each_member_once(conn, world, fake, config):
    ids = world.customers(40)
    world.publish(D1, {"vip": ids})
    fake.segments[1] = {"name": "ecrm-vip", "members": set()}  # tag exists: the faults hit the member batches
    fake.faults.extend([("status", 429, {"Retry-After": "0.3"}), ("status", 500), ("status", 502),
                        ("slow", 6.0)])  # the slow one is applied, but answers after the client's 1.5 s timeout (4x: a late answer under load is no timeout)
    started = time.monotonic()
    report = sync_audiences(conn, D1, config=config.with_(batch_size=10, concurrency=1, backoff_max=1.0))
    assert time.monotonic() - started >= 0.3  # Retry-After honoured
    assert report["status"] == "succeeded" and report["retries"] >= 4
    assert fake.count("upsert") == {world.email(c): 1 for c in ids}  # exactly once despite the retries
    assert fake.replays >= 1  # the retried timed-out batch was recognised by its idempotency key
    assert conn.execute("select count(*) from mailer.audience_state where is_member").fetchone()[0] == 40


def test_outage_mid_sync_then_restart_sends_everyone_exactly_once(conn, world, fake, config):
    ids = world.customers(1400)
    world.publish(D1, {"vip": ids})
    # writes: create tag, batch 1 upsert + tag, batch 2 upsert -- then the ESP is down for good, so batch 2
    # reached Mailchimp but was never confirmed (the crash window a restart must not double)
    fake.fail_after_writes = 4
    with pytest.raises(EspUnavailable, match="failed after 5 attempts"):
        sync_audiences(conn, D1, config=config.with_(concurrency=1, batch_size=300))
    assert conn.execute("select count(*) from mailer.audience_state").fetchone()[0] == 300
    assert conn.execute("select status from mailer.sync_runs").fetchone()[0] == "failed"
    results = dict(conn.execute("select result, count(*) from mailer.sync_changes group by 1").fetchall())
    assert results == {"sent": 300, "not_sent": 1100}

    fake.fail_after_writes = None
    report = sync_audiences(conn, D1, config=config.with_(batch_size=300))
    assert report["audiences"]["vip"]["adds"] == 1100
    assert fake.count("upsert") == {world.email(c): 1 for c in ids}  # each member sent once in total
    assert fake.replays == 1  # the unconfirmed batch came back with the same idempotency key
    assert len(fake.tag_members("ecrm-vip")) == 1400


def test_per_member_errors_inside_a_200(conn, world, fake, config):
    ids = world.customers(6)
    world.publish(D1, {"vip": ids})
    fake.member_errors[world.email(ids[0])] = ("ERROR_CONTACT_EXISTS",
                                               f"{world.email(ids[0])} is in a compliance state due to unsubscribe")
    fake.member_errors[world.email(ids[1])] = ("ERROR_GENERIC", "Please provide a valid email address.")
    report = sync_audiences(conn, D1, config=config)
    assert report["audiences"]["vip"]["sent"] == 4 and report["audiences"]["vip"]["rejected"] == 2
    results = {c: (r, e) for c, r, e in conn.execute("select customer_id, result, error from mailer.sync_changes")}
    assert results[ids[0]][0] == "esp_suppressed" and "compliance" in results[ids[0]][1]
    assert results[ids[1]][0] == "rejected"
    assert world.email(ids[0]) not in fake.tag_members("ecrm-vip")

    fake.requests.clear()
    report = sync_audiences(conn, D1, config=config)  # the rejected one is retried, the suppressed one never again
    assert report["audiences"]["vip"]["adds"] == 1 and report["audiences"]["vip"]["excluded"] == 1
    assert world.email(ids[0]) not in fake.bodies() and world.email(ids[1]) in fake.bodies()


def test_suppressed_addresses_never_appear_in_any_request(conn, world, fake, config):
    ids = world.customers(10)
    world.set(ids[0], is_suppressed=True)
    world.set(ids[1], accepts_marketing=False)
    conn.execute("insert into sync.sync_holdout_members values ('vip', %s, 'Champions', %s)", (ids[2], D1))
    world.publish(D1, {"vip": ids})
    sync_audiences(conn, D1, config=config)
    for cid in ids[:3]:
        assert world.email(cid) not in fake.bodies()
    # pushed yesterday, unsubscribed today: only the tag is removed, the contact's status is not touched
    world.set(ids[3], is_suppressed=True)
    world.publish(D2, {"vip": ids[4:]})
    sync_audiences(conn, D2, config=config)
    last = [r for r in _writes(fake) if world.email(ids[3]) in r[3]][-1]
    assert last[1].startswith("/3.0/lists/L1/segments/") and "members_to_remove" in last[3]
    assert fake.members[world.email(ids[3])]["status"] == "subscribed" and fake.violations == []


def test_auth_failure_is_clear_and_marks_nothing(conn, world, fake, config):
    ids = world.customers(5)
    world.publish(D1, {"vip": ids})
    with pytest.raises(EspAuthError, match="HTTP 401.*ECRM_MAILCHIMP_API_KEY"):
        sync_audiences(conn, D1, config=config.with_(mailchimp_api_key="wrong-us1"))
    assert conn.execute("select count(*) from mailer.audience_state").fetchone()[0] == 0
    assert conn.execute("select status from mailer.sync_runs").fetchone()[0] == "failed"
    assert len(_writes(fake)) == 0


def test_unreachable_esp_is_clear_and_marks_nothing(conn, world, config):
    ids = world.customers(5)
    world.publish(D1, {"vip": ids})
    with pytest.raises(EspUnavailable, match="cannot connect"):
        sync_audiences(conn, D1, config=config.with_(mailchimp_url="http://127.0.0.1:9/3.0", max_retries=1))
    assert conn.execute("select count(*) from mailer.audience_state").fetchone()[0] == 0


def test_throughput(conn, world, fake, config, capsys):
    ids = world.customers(5000)
    world.publish(D1, {"vip": ids})
    started = time.monotonic()
    sync_audiences(conn, D1, config=config.with_(concurrency=4))
    seconds = time.monotonic() - started
    with capsys.disabled():
        print(f"\nmailchimp fake: 5000 members in {seconds:.2f}s = {5000 / seconds:,.0f} members/s")
    assert len(fake.count("upsert")) == 5000


def test_an_unsubscribe_wave_is_removed_first_and_never_trips_the_breaker(conn, world, fake, config):
    ids = world.customers(40)
    world.publish(D1, {"vip": ids[:20], "winback": ids[20:30]})
    sync_audiences(conn, D1, config=config)
    for cid in ids[:5]:  # 25% of vip unsubscribe or complain at once
        world.set(cid, is_suppressed=True, has_unsubscribed=True)
    world.publish(D2, {"vip": ids[:20], "winback": ids[20:33]})  # as if dbt had let them through
    fake.requests.clear()
    report = sync_audiences(conn, D2, config=config.with_(batch_size=2))
    assert report["status"] == "succeeded" and report["circuit_breaker"] == []
    assert fake.tag_members("ecrm-vip") == {world.email(c) for c in ids[5:20]}
    assert fake.tag_members("ecrm-winback") == {world.email(c) for c in ids[20:33]}
    assert all(fake.members[world.email(c)]["status"] == "subscribed" for c in ids[:5])  # membership only
    writes = [(m, p, b) for m, p, _, b in fake.requests if m != "GET"]
    untags = [i for i, (_, _, b) in enumerate(writes) if "members_to_remove" in b]
    upserts = [i for i, (_, p, _) in enumerate(writes) if p == "/3.0/lists/L1"]
    assert len(untags) == 3 and upserts and max(untags) < min(upserts)  # compliance first, then the adds
    assert fake.violations == []


def test_breaker_refuses_only_the_churning_audience(conn, world, fake, config):
    ids = world.customers(30)
    world.publish(D1, {"vip": ids[:10], "winback": ids[10:20]})
    sync_audiences(conn, D1, config=config)
    world.set(ids[9], is_suppressed=True, has_hard_bounced=True)
    world.publish(D2, {"vip": ids[:6] + [ids[25]], "winback": ids[11:22]})  # vip: 3 of 10 leave their segment
    fake.requests.clear()
    with pytest.raises(CircuitBreakerOpen, match="vip: 3 of 10 members"):
        sync_audiences(conn, D2, config=config)
    assert fake.tag_members("ecrm-vip") == {world.email(c) for c in ids[:9]}  # the bounce removed, churn held
    assert world.email(ids[25]) not in fake.members
    for cid in (*ids[6:9], ids[25]):
        assert world.email(cid) not in fake.bodies()
    assert fake.tag_members("ecrm-winback") == {world.email(c) for c in ids[11:22]}  # the other audience synced
    runs = dict(conn.execute("select audience, status from mailer.sync_runs where day = %s", (D2,)).fetchall())
    assert runs == {"vip": "refused", "winback": "succeeded"}
    error = conn.execute("select error from mailer.sync_runs where day = %s and audience = 'vip'", (D2,)).fetchone()[0]
    assert "3 of 10" in error and "1 compliance removals were sent" in error


def test_no_address_or_key_in_the_logs(conn, world, fake, config, caplog):
    for name in ("", "httpx", "httpcore", "ecrm"):  # everything at DEBUG, as a debugging operator would set it
        caplog.set_level(logging.DEBUG, logger=name or None)
    ids = world.customers(30)
    world.set(ids[0], is_suppressed=True)
    world.publish(D1, {"vip": ids})
    fake.faults.extend([("status", 429, {"Retry-After": "0"}), ("status", 503)])
    fake.member_errors[world.email(ids[1])] = ("ERROR_CONTACT_EXISTS", f"{world.email(ids[1])} is in a compliance state")
    fake.member_errors[world.email(ids[2])] = ("ERROR_GENERIC", f"{world.email(ids[2])} looks fake or invalid")
    sync_audiences(conn, D1, config=config)
    world.set(ids[3], is_suppressed=True)
    sync_audiences(conn, D1, config=config)
    assert "retry 1/4" in caplog.text and len(caplog.records) >= 3  # the logs were captured
    assert "@" not in caplog.text and "%40" not in caplog.text.upper()
    assert fake.api_key not in caplog.text and fake.api_key.split("-")[1] not in caplog.text
    errors = [e for (e,) in conn.execute("select error from mailer.sync_changes where error is not null")]
    assert errors and not any("@" in e for e in errors)  # the ESP's messages are kept, without the address
