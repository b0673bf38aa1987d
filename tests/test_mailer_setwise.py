"""The outbox's set-wise push (issue 30) against the per-member formulation it replaced: the diff SQL
against the query it replaced (kept verbatim below), and the whole push - audit, state, breaker, files -
against the per-member path the ESP adapters still take, on a mixed day: adds, updates, churn of every
kind, compliance removals, blocked members, duplicates, a refused audience; then a rerun that writes nothing."""

from __future__ import annotations

import uuid
from datetime import date

import psycopg
import pytest
from mailer_world import World
from upath import UPath

from ecrm.email_rule import EMAIL_PATTERN
from ecrm.mailer.config import MailerConfig
from ecrm.mailer.outbox import OutboxAdapter
from ecrm.mailer.state import plan_sql
from ecrm.mailer.sync import CircuitBreakerOpen, sync_audiences

D1, D2 = date(2026, 10, 1), date(2026, 10, 2)

# The diff before issue 30 (per removed member, a subquery over every checked member), verbatim.
OLD_PLAN_SQL = """
with published_members as (
    select audience, customer_id, lower(btrim(email)) as email, nullif(btrim(first_name), '') as first_name, segment
    from published.audience_members
    where as_of_date = %(day)s
),
suppressed_emails as (
    select distinct lower(btrim(email)) as email from marts.dim_customers where is_suppressed
),
holdout as (select distinct audience, customer_id from sync.sync_holdout_members),
hashed as (
    select
        p.*,
        encode(sha256(convert_to(p.email, 'UTF8')), 'hex') as email_hash,
        md5(concat_ws(chr(31), p.customer_id, coalesce(p.first_name, ''), p.segment)) as attrs_hash
    from published_members as p
),
checked as (
    select
        h.*,
        case  -- compliance reasons first: a member both held out and unsubscribed is recorded as suppressed
            when d.is_suppressed or se.email is not null then 'suppressed'
            when not d.accepts_marketing then 'no_consent'
            when x.email_hash is not null then 'esp_suppressed'
            when d.customer_id is null then 'unknown_customer'
            when not d.is_valid_email or h.email !~ %(email_re)s then 'invalid_email'
            when d.is_holdout or ho.customer_id is not null then 'holdout'
            when row_number() over (partition by h.audience, h.email_hash order by h.customer_id) > 1
                then 'duplicate_email'
        end as blocked_reason
    from hashed as h
    left join marts.dim_customers as d on d.customer_id = h.customer_id
    left join suppressed_emails as se on se.email = h.email
    left join holdout as ho on ho.audience = h.audience and ho.customer_id = h.customer_id
    left join mailer.esp_suppressions as x on x.target = %(target)s and x.email_hash = h.email_hash
),
desired as (
    select * from checked where blocked_reason is null
),
state as (
    select * from mailer.audience_state where target = %(target)s and is_member
),
plan as (
    select 'add' as action, d.audience, d.customer_id, d.email, d.first_name, d.segment, d.email_hash,
           d.attrs_hash, null::text as reason, null::text as esp_id
    from desired as d
    left join state as s on s.audience = d.audience and s.email_hash = d.email_hash
    where s.email_hash is null

    union all

    select 'update', d.audience, d.customer_id, d.email, d.first_name, d.segment, d.email_hash,
           d.attrs_hash, 'attributes_changed', s.esp_id
    from desired as d
    inner join state as s on s.audience = d.audience and s.email_hash = d.email_hash
    where s.attrs_hash <> d.attrs_hash

    union all

    select 'remove', s.audience, s.customer_id, s.email, s.first_name, s.segment, s.email_hash, s.attrs_hash,
        coalesce(
            (select c.blocked_reason from checked as c
             where c.audience = s.audience and c.email_hash = s.email_hash and c.blocked_reason is not null
             order by c.customer_id limit 1),
            case
                when dc.is_suppressed or exists (select 1 from suppressed_emails as se where se.email = s.email)
                    then 'suppressed'
                when not dc.accepts_marketing then 'no_consent'
                when exists (select 1 from mailer.esp_suppressions as x
                             where x.target = %(target)s and x.email_hash = s.email_hash) then 'esp_suppressed'
                when dc.customer_id is null then 'unknown_customer'
                when lower(btrim(dc.email)) <> s.email then 'email_changed'
                when not dc.is_valid_email then 'invalid_email'
                when exists (select 1 from desired as o where o.email_hash = s.email_hash) then 'moved_audience'
                when dc.is_holdout then 'holdout'
                else 'left_segment'
            end), s.esp_id
    from state as s
    left join desired as d on d.audience = s.audience and d.email_hash = s.email_hash
    left join marts.dim_customers as dc on dc.customer_id = s.customer_id
    where d.email_hash is null

    union all

    select 'blocked', c.audience, c.customer_id, c.email, c.first_name, c.segment, c.email_hash, c.attrs_hash,
           c.blocked_reason, null
    from checked as c
    where c.blocked_reason is not null
)
select * from plan
"""


class PerMemberOutbox(OutboxAdapter):
    """The outbox through the per-member path (batches, apply(), a commit per batch): what it was before."""

    set_wise = False


def _mixed_world(conn: psycopg.Connection, config: MailerConfig) -> tuple[World, list[str]]:
    """Day 1 pushed; day 2 published with one of everything the diff distinguishes."""
    world = World(conn)
    ids = world.customers(60)
    world.publish(D1, {"vip": ids[:20], "winback": ids[20:30], "nurture": ids[30:50]})
    sync_audiences(conn, D1, adapter=PerMemberOutbox(config), config=config)
    world.set(ids[0], is_suppressed=True, has_unsubscribed=True)   # compliance removal (published anyway)
    world.set(ids[1], accepts_marketing=False)                      # consent withdrawn, dropped by dbt
    world.set(ids[2], first_name="Renamed")                         # update
    world.set(ids[3], is_holdout=True)                              # holdout: blocked and removed
    world.set(ids[4], is_valid_email=False)                         # invalid: removed
    conn.execute("update marts.dim_customers set email = 'new-' || email where customer_id = %s", (ids[5],))
    conn.execute("delete from marts.dim_customers where customer_id = %s", (ids[6],))  # unknown customer
    conn.execute("insert into mailer.esp_suppressions (target, email_hash, reason) select 'outbox', "
                 "encode(sha256(convert_to(lower(email), 'UTF8')), 'hex'), 'complaint' from marts.dim_customers "
                 "where customer_id = %s", (ids[7],))                # the ESP reported it
    conn.execute("insert into sync.sync_holdout_members values ('nurture', %s, 'New', %s)", (ids[31], D2))
    # a second customer with ids[8]'s address (in state) and one with ids[52]'s (new): duplicates
    conn.execute("insert into marts.dim_customers (customer_id, email, first_name, accepts_marketing, is_valid_email, "
                 "is_suppressed, is_holdout) values ('c-9dup8', %s, 'D', true, true, false, false), "
                 "('c-9dup52', %s, 'E', true, true, false, false)", (world.email(ids[8]), world.email(ids[52])))
    conn.execute("update marts.dim_customers set email = upper(email) where customer_id = 'c-9dup52'")
    vip = [c for c in ids[:20] if c not in (ids[1], ids[12])] + [ids[50], ids[51], ids[52], "c-9dup8", "c-9dup52"]
    vip += [ids[25]]  # moved from winback to vip
    winback = ids[20:25] + [ids[26]] + [ids[12]]  # winback loses 4 of 10 (refused), vip loses ids[12] to it
    nurture = ids[30:48] + ["c-gone"]  # two leave their segment; an unknown customer is published
    world.publish(D2, {"vip": vip, "winback": winback, "nurture": nurture})
    conn.execute("insert into published.audience_members values ('nurture', 'c-gone', 'gone@example.com', 'G', "
                 "'New', %s)", (D2,))
    return world, ids


def test_the_diff_equals_the_per_member_query_it_replaced(conn, tmp_path):
    config = MailerConfig(adapter="outbox", outbox=tmp_path / "outbox", batch_size=3)
    _mixed_world(conn, config)
    params = {"day": D2, "target": "outbox", "email_re": EMAIL_PATTERN}
    new = sorted(conn.execute(plan_sql(conn), params).fetchall(), key=repr)
    old = sorted(conn.execute(OLD_PLAN_SQL, params).fetchall(), key=repr)
    assert new == old
    reasons = {(action, reason) for action, *_, reason, _ in new}
    assert reasons >= {("add", None), ("update", "attributes_changed"), ("remove", "suppressed"),
                       ("remove", "no_consent"), ("remove", "esp_suppressed"), ("remove", "unknown_customer"),
                       ("remove", "email_changed"), ("remove", "invalid_email"), ("remove", "holdout"),
                       ("remove", "moved_audience"), ("remove", "left_segment"), ("blocked", "duplicate_email"),
                       ("blocked", "suppressed"), ("blocked", "holdout"), ("blocked", "unknown_customer")}, reasons


def _push_both_days(url: str, config: MailerConfig, adapter_class: type) -> dict:
    """Day 1 and the mixed day 2 through `adapter_class` (day 2 trips the breaker for winback), then a rerun."""
    with psycopg.connect(url, autocommit=True) as conn:
        _mixed_world(conn, config)
        with pytest.raises(CircuitBreakerOpen, match="winback"):
            sync_audiences(conn, D2, adapter=adapter_class(config), config=config)
        folder = config.outbox / D2.isoformat()
        files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
        with pytest.raises(CircuitBreakerOpen, match="winback"):  # the rerun: nothing new, same refusal
            sync_audiences(conn, D2, adapter=adapter_class(config), config=config)
        rerun_files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
        return {
            "changes": conn.execute(
                "select run_id, audience, action, email_hash, customer_id, segment, reason, result, error, batch_key "
                "from mailer.sync_changes order by 1, 2, 3, 4, 5").fetchall(),
            "state": conn.execute(
                "select target, audience, email_hash, customer_id, email, first_name, segment, attrs_hash, is_member, "
                "esp_id, first_added_day, last_pushed_day, removed_day, last_run_id from mailer.audience_state "
                "order by 1, 2, 3").fetchall(),
            "runs": conn.execute(
                "select run_id, audience, day, status, members_before, members_after, adds, updates, removes, "
                "compliance_removes, excluded, sent, rejected, error, mode from mailer.sync_runs "
                "order by 1, 2").fetchall(),
            "esp_suppressions": conn.execute("select target, email_hash, reason, run_id from mailer.esp_suppressions").fetchall(),
            "files": {name: data for name, (data, _) in files.items()},
            "rerun_rewrote": {name for name in files if rerun_files[name][1] != files[name][1]},
            "rerun_changes": conn.execute("select count(*) from mailer.sync_changes where run_id = "
                                          "(select max(run_id) from mailer.sync_runs) and result = 'sent'").fetchone()[0],
            "compliance_first": conn.execute(
                "select max(sent_at) filter (where reason = any(%(c)s)) < min(sent_at) filter (where reason is null "
                "or reason <> all(%(c)s)) from mailer.sync_changes where run_id = 2 and result = 'sent'",
                {"c": ["suppressed", "no_consent", "esp_suppressed"]}).fetchone()[0],
        }


def test_the_set_wise_push_writes_what_the_per_member_push_writes(warehouse, tmp_path):
    """Same day, two databases: the outbox set-wise and through the per-member path. Audit rows (with
    their batch keys), state, runs, the breaker's refusal and the files are identical; compliance removals
    are confirmed before any other change; the rerun sends nothing and rewrites no file."""
    results = {}
    for name, adapter_class in (("set_wise", OutboxAdapter), ("per_member", PerMemberOutbox)):
        url = warehouse.create_database(f"t_{uuid.uuid4().hex[:12]}")
        config = MailerConfig(adapter="outbox", outbox=tmp_path / name, batch_size=3, max_remove_share=0.3)
        results[name] = _push_both_days(url, config, adapter_class)
    set_wise, per_member = results["set_wise"], results["per_member"]
    for key in ("changes", "state", "runs", "esp_suppressions", "files"):
        assert set_wise[key] == per_member[key], key
    runs = {audience: status for _, audience, day, status, *_ in set_wise["runs"] if day == D2}
    assert runs == {"vip": "succeeded", "winback": "refused", "nurture": "succeeded"}
    assert set_wise["compliance_first"] is True
    assert set_wise["rerun_rewrote"] == set() and set_wise["rerun_changes"] == 0
    keys = {row[-1] for row in set_wise["changes"] if row[0] == 2 and row[7] == "sent"}
    assert None not in keys and len(keys) > 3  # batches of 3, keyed as the ESP path keys them


def test_outbox_objects_are_written_whole_and_not_rewritten_when_unchanged(conn, tmp_path):
    """ECRM_OUTBOX as an fsspec URL (memory://): every file is there whole with the manifest's sha256 and
    row count; a rerun leaves every object as it was (no PUT)."""
    import hashlib
    import json

    outbox = UPath(f"memory://ecrm-{uuid.uuid4().hex[:8]}/outbox")
    config = MailerConfig(adapter="outbox", outbox=outbox)
    world = World(conn)
    ids = world.customers(12)
    world.publish(D1, {"vip": ids[:5], "winback": ids[5:12]})
    sync_audiences(conn, D1, config=config)
    folder = outbox / D1.isoformat()
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in [*manifest["audiences"].values(), manifest["changes"]]:
        data = (folder / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data.decode().splitlines()) == entry["rows"] + 1
    assert manifest["audiences"]["winback"]["rows"] == 7 and manifest["changes"]["rows"] == 12
    fs = folder.fs
    created = {p.name: fs.info(p.path)["created"] for p in folder.iterdir()}
    sync_audiences(conn, D1, config=config)
    assert {p.name: fs.info(p.path)["created"] for p in folder.iterdir()} == created
