"""The mailer sync's diff, state, checks and audit, through the outbox adapter (no network):
adds/updates/removes from SQL, reruns that send nothing, push-time suppression/holdout checks,
dry run, circuit breaker, and the "why not in the audience" query."""

from __future__ import annotations

import csv
import json
import os
import stat
from datetime import date
from pathlib import Path

import psycopg
import pytest
from mailer_world import World

from ecrm.mailer.audit import why_not
from ecrm.mailer.config import MailerConfig
from ecrm.mailer.http import MailerError
from ecrm.mailer.sync import CircuitBreakerOpen, sync_audiences
from ecrm.warehouse.migrate import migrate, migrations

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
                                              "removes": 1, "compliance_removes": 0, "excluded": 0, "sent": 3,
                                              "rejected": 0}
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


def test_circuit_breaker_refuses_only_the_churning_audience_and_still_removes_the_suppressed(conn, world, config):
    ids = world.customers(30)
    world.publish(D1, {"vip": ids[:10], "winback": ids[10:20]})
    sync_audiences(conn, D1, config=config)
    world.set(ids[9], is_suppressed=True, has_complained=True)
    # vip: 3 of 10 leave their segment (30% churn) + 1 complaint, 1 joins; winback: 1 leaves, 2 join
    world.publish(D2, {"vip": ids[:6] + [ids[25]], "winback": ids[11:22]})
    with pytest.raises(CircuitBreakerOpen, match="vip: 3 of 10") as raised:
        sync_audiences(conn, D2, config=config)
    assert "winback" not in str(raised.value).split("refused audience(s) ", 1)[1].split(";")[0]
    runs = dict(conn.execute("select audience, status from mailer.sync_runs where day = %s", (D2,)).fetchall())
    assert runs == {"vip": "refused", "winback": "succeeded"}
    state = world.state("outbox")
    assert {c for a, c in state if a == "vip"} == set(ids[:9])  # churn held back, the complaint removed
    assert {c for a, c in state if a == "winback"} == set(ids[11:22])  # the other audience synced
    folder = config.outbox / D2.isoformat()
    assert {r["customer_id"] for r in _rows(folder / "vip.csv")} == set(ids[:9])
    changes = {(r["action"], r["audience"], r["customer_id"], r["reason"]) for r in _rows(folder / "changes.csv")}
    assert ("remove", "vip", ids[9], "suppressed") in changes and ("add", "vip", ids[25], "") not in changes
    held = world.changes(raised.value.report["run_id"])
    assert {(a, c, r) for a, au, c, _, r in held if au == "vip"} == {
        ("remove", ids[9], "sent"), ("remove", ids[6], "not_sent"), ("remove", ids[7], "not_sent"),
        ("remove", ids[8], "not_sent"), ("add", ids[25], "not_sent")}
    report = sync_audiences(conn, D2, config=config.with_(max_remove_share=0.4))  # a reviewed removal
    vip = report["audiences"]["vip"]
    assert (vip["removes"], vip["compliance_removes"], vip["adds"]) == (3, 0, 1)
    assert report["status"] == "succeeded"


def test_the_breaker_does_not_judge_an_audience_of_a_handful(conn, world, config):
    """All 4 members of a small audience leave (a forecast audience after a refit): synced, not refused;
    the same share of a 10-member audience still trips it."""
    ids = world.customers(30)
    world.publish(D1, {"high_value_at_risk": ids[:4], "vip": ids[10:20]})
    sync_audiences(conn, D1, config=config)
    world.publish(D2, {"high_value_at_risk": ids[4:8], "vip": ids[10:20]})
    report = sync_audiences(conn, D2, config=config)
    assert report["status"] == "succeeded" and report["audiences"]["high_value_at_risk"]["removes"] == 4
    assert {c for a, c in world.state("outbox") if a == "high_value_at_risk"} == set(ids[4:8])
    world.publish(date(2026, 10, 3), {"high_value_at_risk": ids[4:8], "vip": ids[20:30]})
    with pytest.raises(CircuitBreakerOpen, match="vip: 10 of 10"):
        sync_audiences(conn, date(2026, 10, 3), config=config)


def test_a_suppression_wave_is_removed_first_and_never_trips_the_breaker(conn, world, config):
    ids = world.customers(40)
    world.publish(D1, {"vip": ids[:20], "winback": ids[20:30]})
    sync_audiences(conn, D1, config=config)
    for cid in ids[:5]:  # 25% of vip unsubscribe, plus one consent withdrawn: 30% of vip, all compliance
        world.set(cid, is_suppressed=True, has_unsubscribed=True)
    world.set(ids[5], accepts_marketing=False)
    world.publish(D2, {"vip": ids[2:20], "winback": ids[20:35]})  # dbt already dropped two of them
    report = sync_audiences(conn, D2, config=config)
    assert report["status"] == "succeeded" and report["circuit_breaker"] == []
    assert report["audiences"]["vip"]["compliance_removes"] == 6
    assert {c for a, c in world.state("outbox") if a == "vip"} == set(ids[6:20])
    removed = {(c, reason) for action, a, c, reason, result in world.changes(report["run_id"])
               if action == "remove" and result == "sent"}
    assert removed == {(c, "suppressed") for c in ids[:5]} | {(ids[5], "no_consent")}
    # compliance removals are confirmed before any add of any audience
    order = conn.execute("select action, sent_at from mailer.sync_changes where run_id = %s and result = 'sent' "
                         "order by sent_at", (report["run_id"],)).fetchall()
    assert [a for a, _ in order] == ["remove"] * 6 + ["add"] * 5


def test_old_sync_runs_table_is_migrated(bare_db_url, config):
    """A mailer.sync_runs of an early version (no 'abandoned' status, no compliance or abandoned columns):
    `ecrm warehouse migrate` upgrades it in place, and the next sync closes its dead run."""
    with psycopg.connect(bare_db_url, autocommit=True) as conn:
        conn.execute("create schema mailer")
        conn.execute("create sequence mailer.sync_run_seq")
        conn.execute("select nextval('mailer.sync_run_seq')")
        conn.execute("create table mailer.sync_runs (run_id bigint not null, audience text not null, day date not "
                     "null, adapter text not null, target text not null, dry_run boolean not null, status text not "
                     "null check (status in ('running', 'succeeded', 'failed', 'refused', 'dry_run')), members_before "
                     "integer not null, members_after integer not null, adds integer not null, updates integer not "
                     "null, removes integer not null, excluded integer not null, sent integer not null default 0, "
                     "rejected integer not null default 0, error text, started_at timestamptz not null default now(), "
                     "finished_at timestamptz, duration_s numeric(10, 3), primary key (run_id, audience))")
        conn.execute("insert into mailer.sync_runs (run_id, audience, day, adapter, target, dry_run, status, "
                     "members_before, members_after, adds, updates, removes, excluded) values "
                     "(1, 'vip', %s, 'outbox', 'outbox', false, 'running', 0, 1, 1, 0, 0, 0)", (D1,))
        assert [m.file for m in migrate(bare_db_url)] == [m.file for m in migrations()]
        assert migrate(bare_db_url) == []  # the migration is recorded: a second run applies nothing
        world = World(conn)
        ids = world.customers(2)
        world.publish(D1, {"vip": ids})
        for _ in range(2):
            report = sync_audiences(conn, D1, config=config)
        assert report["status"] == "succeeded"
        row = conn.execute("select status, abandoned_by_run_id, abandoned_at is not null from mailer.sync_runs "
                           "where run_id = 1").fetchone()
        assert row[0] == "abandoned" and row[1] is not None and row[2]
        checks = conn.execute("select count(*) from pg_constraint where conrelid = 'mailer.sync_runs'::regclass "
                              "and contype = 'c'").fetchone()[0]
        assert checks == 1


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
    root = Path(__file__).resolve().parents[1]  # not `from conftest import ROOT`: tests/reliability has its own
    text = (root / "docs/mailer.md").read_text()
    sql = text.split("\\set day '''2026-10-03'''\n", 1)[1].split("```", 1)[0]
    ids = world.customers(2)
    conn.execute("insert into marts.fct_customer_rfm_daily values (%s, %s, 'Champions', false, true)", (D1, ids[0]))
    world.publish(D1, {"vip": ids[:1]})
    sync_audiences(conn, D1, config=config)
    sql = sql.replace(":who", "%(who)s").replace(":day", "%(day)s")
    rows = conn.execute(sql, {"who": world.email(ids[0]), "day": D1}).fetchall()
    assert rows[0][0] == ids[0] and rows[0][-1] == "in the audience"


def test_outbox_files_are_owner_only_whatever_the_umask(conn, world, config):
    ids = world.customers(3)
    world.publish(D1, {"vip": ids})
    previous = os.umask(0)
    try:
        sync_audiences(conn, D1, config=config)
        folder = config.outbox / D1.isoformat()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
        assert modes == {"vip.csv": 0o600, "changes.csv": 0o600, "manifest.json": 0o600}
        # left world-readable by an older version: a rerun tightens them without rewriting them
        folder.chmod(0o755)
        for p in folder.iterdir():
            p.chmod(0o644)
        mtimes = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
        sync_audiences(conn, D1, config=config)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == modes
        assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes
    finally:
        os.umask(previous)
