"""Issue 26, defect 4: a blocked gate must not hold back compliance removals.

Day 1 is published (the shared gate template) and pushed; on day 2 customers who are members at the
ESP unsubscribe, complain, hard-bounce (a real e-mail events file through the loader) or withdraw
consent, and the day's orders file arrives cut to its header (its orders never load), so the quality
gate blocks the publish. The publish_segments DAG run must still fail at the gate -- the failure stays
visible -- while its compliance_push task removes exactly the people owed a removal at the ESP (and
from the outbox's newest files), adds and updates nobody, is recorded in mailer.sync_runs as
`compliance_only`, and a rerun sends nothing twice.
"""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, datetime, time, timedelta

import pytest
from fake_esp import FakeMailchimp
from test_quality_gate import DAY1, DAY2

from ecrm.intervals import day_interval

pytestmark = pytest.mark.slow


def _cut_orders_to_header(conn) -> None:
    """What a day whose orders.csv holds only its header leaves in raw: none of the day's orders."""
    conn.execute("delete from raw.order_lines where order_id in (select order_id from raw.orders "
                 "where created_at >= %s and created_at < %s)", day_interval(DAY2))
    conn.execute("delete from raw.orders where (created_at >= %s and created_at < %s) "
                 "or (updated_at >= %s and updated_at < %s)", (*day_interval(DAY2), *day_interval(DAY2)))


def _deliver_events(landing, events: list[dict], url: str) -> None:
    """A second export of day 2's ESP events (events.jsonl.gz beside the day's events.jsonl), loaded by
    the real loader; its lines are SendGrid event-webhook objects."""
    from ecrm.pipeline import ingest_interval

    folder = landing / "email" / DAY2.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "events.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(e) + "\n" for e in events)
    summary = ingest_interval("email", *day_interval(DAY2), url=url)
    assert [f["rows_loaded"] for f in summary["files"] if f["file"].endswith("events.jsonl.gz")] == [len(events)]


def _owed_by_the_marts(conn, target: str) -> set[tuple[str, str]]:
    """(audience, customer_id) of ESP members whom day 2's dim_customers (dbt's rule) marks suppressed or
    without consent: the removals owed before this test adds any."""
    return set(conn.execute(
        "select s.audience, s.customer_id from mailer.audience_state s join marts.dim_customers d "
        "using (customer_id) where s.target = %s and s.is_member and (d.is_suppressed or not d.accepts_marketing)",
        (target,)).fetchall())


def _day2_facts(conn, target: str) -> tuple[list[dict], set[str]]:
    """Events and consent withdrawals of 24 customers who are ESP members: 20 unsubscribe (one by an
    address in upper case), 1 complains, 1 hard-bounces (by customer id only), 2 withdraw consent."""
    members = conn.execute(
        "select customer_id, min(email) from mailer.audience_state s where target = %s and is_member "
        "and customer_id not in (select customer_id from marts.dim_customers where is_suppressed "
        "or not accepts_marketing) group by customer_id order by md5(customer_id) limit 24", (target,)).fetchall()
    assert len(members) == 24
    noon = datetime.combine(DAY2, time(12), tzinfo=UTC)
    events = []
    for i, (customer_id, email) in enumerate(members[:22]):
        event = {"sg_event_id": f"t26-d4-{i}", "event": "unsubscribe", "email": email.upper() if i == 0 else email,
                 "timestamp": int((noon + timedelta(minutes=i)).timestamp()), "customer_id": customer_id}
        if i == 20:
            event["event"] = "spamreport"
        if i == 21:
            event |= {"event": "bounce", "type": "bounce", "email": f"old-{i}@example.org"}  # matched by its id
        events.append(event)
    withdrawn = [c for c, _ in members[22:]]
    conn.execute("update raw.customers set accepts_marketing = false, updated_at = %s where customer_id = any(%s)",
                 (noon, withdrawn))
    return events, {c for c, _ in members}


def _mailchimp_env(monkeypatch, fake) -> None:
    for key, value in {"ECRM_MAILER": "mailchimp", "ECRM_MAILCHIMP_API_KEY": fake.api_key,
                       "ECRM_MAILCHIMP_LIST_ID": fake.list_id, "ECRM_MAILCHIMP_URL": f"{fake.url}/3.0",
                       "ECRM_MAILER_BACKOFF_BASE": "0.01"}.items():
        monkeypatch.setenv(key, value)


def _esp_members(fake) -> set[tuple[str, str]]:
    return {(s["name"].removeprefix("ecrm-"), email) for s in fake.segments.values() for email in s["members"]}


def test_a_blocked_gate_still_removes_the_days_unsubscribes_at_the_esp_through_the_dag(
        gate_day2, airflow_home, monkeypatch, tmp_path):
    from ecrm import airflow_env
    from ecrm.pipeline import push_published

    url, conn, _ = gate_day2
    monkeypatch.setenv("ECRM_LANDING", str(tmp_path / "landing"))
    fake = FakeMailchimp().start()
    try:
        _mailchimp_env(monkeypatch, fake)
        push_published(*day_interval(DAY1), url=url)  # day 1: published (template) and pushed
        target = f"mailchimp:{fake.list_id}"
        day1 = set(conn.execute("select audience, email from mailer.audience_state where target = %s and is_member",
                                (target,)).fetchall())
        assert day1 and _esp_members(fake) == day1
        owed_before = _owed_by_the_marts(conn, target)
        events, customers = _day2_facts(conn, target)
        _deliver_events(tmp_path / "landing", events, url)
        _cut_orders_to_header(conn)
        owed = owed_before | {(a, c) for a, c in conn.execute(
            "select audience, customer_id from mailer.audience_state where target = %s and is_member "
            "and customer_id = any(%s)", (target, sorted(customers))).fetchall()}
        writes_before, upserts_before = len([r for r in fake.requests if r[0] != "GET"]), fake.count("upsert")

        airflow_env.configure(url, home=airflow_home)
        dags = airflow_env.load_dags()
        run = airflow_env.run_day(dags, "publish_segments", DAY2, mark_success="marts_built")
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        assert str(run.state) == "failed", states  # the gate's failure stays visible
        assert states["gate"] == "failed" and states["publish"] == "upstream_failed", states
        assert states["push"] == "upstream_failed" and states["compliance_push"] == "success", states
        blocked = {e for (e,) in conn.execute("select expectation from ops.quality_results where run_date = %s "
                                              "and blocking and not passed", (DAY2,))}
        assert "orders_of_day_not_empty" in blocked

        # at the ESP: exactly the owed removals, nobody added, no attribute changed
        removed = conn.execute("select c.audience, c.customer_id, c.reason, c.result from mailer.sync_changes c "
                               "join mailer.sync_runs r using (run_id, audience) where r.day = %s and r.target = %s",
                               (DAY2, target)).fetchall()
        assert {(a, c) for a, c, _, _ in removed} == owed and len(removed) == len(owed)
        assert {reason for *_, reason, _ in removed} <= {"suppressed", "no_consent"}
        assert {result for *_, result in removed} == {"sent"}
        gone = set(conn.execute("select audience, email from mailer.audience_state where target = %s "
                                "and not is_member and removed_day = %s", (target, DAY2)).fetchall())
        assert len(gone) == len(owed) and _esp_members(fake) == day1 - gone
        day2_writes = [r for r in fake.requests if r[0] != "GET"][writes_before:]
        assert day2_writes and all("members_to_remove" in body and "members_to_add" not in body
                                   for *_, body in day2_writes)
        assert fake.count("upsert") == upserts_before  # nobody (re)subscribed or updated on day 2
        runs = conn.execute("select mode, status, adds, updates, removes, compliance_removes, sent from "
                            "mailer.sync_runs where day = %s and target = %s", (DAY2, target)).fetchall()
        assert runs and {r[:4] for r in runs} == {("compliance_only", "succeeded", 0, 0)}
        assert sum(r[4] for r in runs) == sum(r[5] for r in runs) == sum(r[6] for r in runs) == len(owed)
        assert conn.execute("select count(*) from ops.publish_runs where as_of_date = %s", (DAY2,)).fetchone()[0] == 0
        stage = conn.execute("select detail from ops.stage_runs where stage = 'compliance_push' and run_date = %s",
                             (DAY2,)).fetchone()[0]
        assert sum(stage["removed"].values()) == len(owed)

        # a rerun of the day: fails at the gate again, sends nothing, records no second run
        rerun = airflow_env.run_day(dags, "publish_segments", DAY2, mark_success="marts_built")
        assert str(rerun.state) == "failed"
        assert {ti.task_id: str(ti.state) for ti in rerun.get_task_instances()}["compliance_push"] == "success"
        assert len([r for r in fake.requests if r[0] != "GET"]) == writes_before + len(day2_writes)
        assert conn.execute("select count(*) from mailer.sync_runs where day = %s and target = %s",
                            (DAY2, target)).fetchone()[0] == len(runs)
        assert fake.violations == []
    finally:
        fake.stop()


def test_the_compliance_push_takes_the_removed_out_of_the_newest_outbox_files(gate_day2, monkeypatch, tmp_path):
    """The outbox adapter: day 2's folder holds day 1's audiences as the ESP now has them, without the
    day's unsubscribed, and changes.csv only their removals; a rerun rewrites nothing."""
    from ecrm.pipeline import push_compliance

    url, conn, outbox = gate_day2
    monkeypatch.setenv("ECRM_LANDING", str(tmp_path / "landing"))
    day1 = set(conn.execute("select audience, customer_id from mailer.audience_state where target = 'outbox' "
                            "and is_member").fetchall())
    owed_before = _owed_by_the_marts(conn, "outbox")
    events, customers = _day2_facts(conn, "outbox")
    _deliver_events(tmp_path / "landing", events, url)
    _cut_orders_to_header(conn)

    detail = push_compliance(*day_interval(DAY2), url=url)
    folder = outbox / DAY2.isoformat()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["mode"] == "compliance_only" and manifest["published_as_of"] == DAY1.isoformat()
    in_files = {(a, row["customer_id"]) for a in manifest["audiences"]
                for row in csv.DictReader((folder / f"{a}.csv").read_text().splitlines())}
    owed = owed_before | {(a, c) for a, c in day1 if c in customers}
    assert in_files == day1 - owed and owed
    changes = list(csv.DictReader((folder / "changes.csv").read_text().splitlines()))
    assert {(r["audience"], r["customer_id"]) for r in changes} == owed
    assert {r["action"] for r in changes} == {"remove"}
    assert sum(detail["removed"].values()) == len(owed)

    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = push_compliance(*day_interval(DAY2), url=url)
    assert again["status"] == "nothing_to_remove" and again["removed"] == {}
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert conn.execute("select count(distinct run_id) from mailer.sync_runs where day = %s and mode = "
                        "'compliance_only'", (DAY2,)).fetchone()[0] == 1
