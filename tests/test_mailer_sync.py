"""The mailer sync's diff, state, checks and audit, through the outbox adapter (no network):
adds/updates/removes from SQL, reruns that send nothing, push-time suppression/holdout checks,
dry run, circuit breaker, and the "why not in the audience" query."""

from __future__ import annotations

import csv
import json
from datetime import date

import pytest
from mailer_world import World

from ecrm.mailer.audit import why_not
from ecrm.mailer.config import MailerConfig
from ecrm.mailer.http import MailerError
from ecrm.mailer.sync import CircuitBreakerOpen, sync_audiences

D1, D2 = date(2026, 10, 1), date(2026, 10, 2)


@pytest.fixture
def world(conn):
    return World(conn)


@pytest.fixture
def config(tmp_path):
    return MailerConfig(adapter="outbox", outbox=tmp_path / "outbox")


def _rows(path):
    return list(csv.DictReader(path.read_text().splitlines()))


def test_first_run_adds_everyone_rerun_sends_nothing_and_files_stay_identical(conn, world, config):
    ids = world.customers(30)
    world.publish(D1, {"vip": ids[:10], "winback": ids[10:30]})
    report = sync_audiences(conn, D1, config=config)
    assert report["status"] == "succeeded"
    assert {a: s["adds"] for a, s in report["audiences"].items()} == {"vip": 10, "winback": 20}
    folder = config.outbox / D1.isoformat()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["audiences"]["vip"]["rows"] == 10 and manifest["changes"]["rows"] == 30
    assert [r["customer_id"] for r in _rows(folder / "vip.csv")] == ids[:10]
    assert list(_rows(folder / "vip.csv")[0]) == ["customer_id", "email", "first_name", "segment"]
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}

    again = sync_audiences(conn, D1, config=config)
    assert all(s["adds"] == s["updates"] == s["removes"] == 0 for s in again["audiences"].values())
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()} == files
    assert conn.execute("select count(*) from mailer.sync_changes where run_id = %s",
                        (again["run_id"],)).fetchone()[0] == 0


def test_next_day_sends_only_adds_removes_and_attribute_changes(conn, world, config):
    ids = world.customers(20)
    world.publish(D1, {"vip": ids[:10]})
    sync_audiences(conn, D1, config=config)
    world.set(ids[0], first_name="Renamed")
    world.publish(D2, {"vip": ids[:9] + [ids[15]]})  # ids[9] leaves, ids[15] joins, ids[0] renamed
    report = sync_audiences(conn, D2, config=config)
    assert report["audiences"]["vip"] | {} == {"members_before": 10, "members_after": 10, "adds": 1, "updates": 1,
                                              "removes": 1, "excluded": 0, "sent": 3, "rejected": 0}
    changes = {(r["action"], r["customer_id"], r["reason"]) for r in _rows(config.outbox / "2026-10-02/changes.csv")}
    assert changes == {("add", ids[15], ""), ("update", ids[0], "attributes_changed"), ("remove", ids[9], "left_segment")}
    assert world.state("outbox")[("vip", ids[0])] == "Renamed"
    assert ("vip", ids[9]) not in world.state("outbox")


def test_suppressed_holdout_invalid_and_unconsented_are_never_pushed(conn, world, config):
    ids = world.customers(8)
    world.set(ids[0], is_suppressed=True, has_unsubscribed=True)
    world.set(ids[1], accepts_marketing=False)
    world.set(ids[2], is_valid_email=False)
    conn.execute("update marts.dim_customers set email = 'not-an-email' where customer_id = %s", (ids[3],))
    conn.execute("insert into sync.sync_holdout_members values ('vip', %s, 'Champions', %s)", (ids[4], D1))
    # another customer sharing ids[5]'s address unsubscribed: the address is suppressed for everyone
    conn.execute("insert into marts.dim_customers (customer_id, email, first_name, accepts_marketing, is_valid_email, "
                 "is_suppressed, is_holdout) values ('c-dup', %s, 'X', true, true, true, false)", (world.email(ids[5]),))
    world.publish(D1, {"vip": ids})  # as if dbt had let them through
    report = sync_audiences(conn, D1, config=config)
    assert report["audiences"]["vip"]["adds"] == 2 and report["audiences"]["vip"]["excluded"] == 6
    blocked = {c: reason for action, _, c, reason, result in world.changes() if action == "blocked"}
    assert blocked == {ids[0]: "suppressed", ids[1]: "no_consent", ids[2]: "invalid_email",
                       ids[3]: "invalid_email", ids[4]: "holdout", ids[5]: "suppressed"}
    pushed = {r["customer_id"] for r in _rows(config.outbox / "2026-10-01/vip.csv")}
    assert pushed == {ids[6], ids[7]}

    # suppressed after being pushed: removed from the list (membership only), reason recorded
    world.set(ids[6], is_suppressed=True, has_hard_bounced=True)
    world.publish(D2, {"vip": ids[6:]})
    config = config.with_(max_remove_share=1.0)
    sync_audiences(conn, D2, config=config)
    assert ("remove", "vip", ids[6], "suppressed", "sent") in world.changes()


def test_dry_run_prints_the_diff_and_sends_nothing(conn, world, config, capsys):
    ids = world.customers(5)
    world.publish(D1, {"vip": ids})
    report = sync_audiences(conn, D1, config=config.with_(dry_run=True))
    out = capsys.readouterr().out
    assert "DRY RUN" in out and "vip: +5 add" in out and ids[0] in out
    assert report["status"] == "dry_run" and len(report["plan"]) == 5
    assert not (config.outbox / D1.isoformat()).exists()
    assert conn.execute("select count(*) from mailer.audience_state").fetchone()[0] == 0
    assert conn.execute("select status from mailer.sync_runs").fetchall() == [("dry_run",)]
    assert sync_audiences(conn, D1, config=config)["audiences"]["vip"]["adds"] == 5  # the real run still sends all


def test_circuit_breaker_refuses_a_mass_removal(conn, world, config):
    ids = world.customers(10)
    world.publish(D1, {"vip": ids})
    sync_audiences(conn, D1, config=config)
    world.publish(D2, {"vip": ids[:7]})  # 30% would go
    with pytest.raises(CircuitBreakerOpen, match="3 of 10"):
        sync_audiences(conn, D2, config=config)
    assert len(world.state("outbox")) == 10
    assert conn.execute("select status, error from mailer.sync_runs where day = %s", (D2,)).fetchone()[0] == "refused"
    assert not (config.outbox / D2.isoformat()).exists()
    report = sync_audiences(conn, D2, config=config.with_(max_remove_share=0.3))
    assert report["audiences"]["vip"]["removes"] == 3


def test_refuses_a_day_that_is_not_published(conn, world, config):
    ids = world.customers(3)
    world.publish(D1, {"vip": ids})
    with pytest.raises(MailerError, match="not 2026-10-02"):
        sync_audiences(conn, D2, config=config)


def test_why_not_query_explains_membership(conn, world, config):
    ids = world.customers(3)
    conn.execute("insert into marts.fct_customer_rfm_daily values (%s, %s, 'Champions', false, true), "
                 "(%s, %s, 'Champions', true, true), (%s, %s, 'Champions', false, false)",
                 (D1, ids[0], D1, ids[1], D1, ids[2]))
    world.set(ids[2], is_suppressed=True, has_complained=True)
    world.publish(D1, {"vip": [ids[0]]})
    sync_audiences(conn, D1, config=config)
    assert why_not(conn, world.email(ids[0]), D1)[0]["verdict"] == "in the audience"
    assert why_not(conn, ids[0], D1)[0]["in_esp_audiences"] == "outbox vip"
    assert why_not(conn, ids[1], D1)[0]["verdict"].startswith("holdout")
    assert why_not(conn, ids[2], D1)[0]["verdict"] == "suppressed: spam complaint"


def test_the_documented_why_not_query_runs(conn, world, config):
    from conftest import ROOT

    text = (ROOT / "docs/mailer.md").read_text()
    sql = text.split("\\set day '''2026-10-03'''\n", 1)[1].split("```", 1)[0]
    ids = world.customers(2)
    conn.execute("insert into marts.fct_customer_rfm_daily values (%s, %s, 'Champions', false, true)", (D1, ids[0]))
    world.publish(D1, {"vip": ids[:1]})
    sync_audiences(conn, D1, config=config)
    sql = sql.replace(":who", "%(who)s").replace(":day", "%(day)s")
    rows = conn.execute(sql, {"who": world.email(ids[0]), "day": D1}).fetchall()
    assert rows[0][0] == ids[0] and rows[0][-1] == "in the audience"
