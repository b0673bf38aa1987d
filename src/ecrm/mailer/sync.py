"""The mailer push: make the ESP's audiences equal to the published ones, sending only the difference.

One run = one day and one target (ESP account/list):

1. plan: the diff of ``published.audience_members`` against ``mailer.audience_state`` (SQL, in
   ``ecrm.mailer.state``), with every member re-checked against suppression, consent, address
   validity and the holdout; blocked members are audited with their reason and never sent;
2. circuit breaker, per audience: an audience whose ordinary churn (removals for any reason but a
   compliance one, see ``state.COMPLIANCE_REASONS``) exceeds ``max_remove_share`` of its pushed
   members is refused (a broken upstream model looks exactly like that): its adds, updates and churn
   removals are held back, the other audiences sync, and the run raises ``CircuitBreakerOpen`` at the end;
3. dry run: print the diff, audit the run as ``dry_run``, send nothing;
4. preflight (credentials, lists/tags), then the compliance removals of every audience (unsubscribed,
   bounced, complained, no consent, ESP-suppressed: always sent, whatever the breaker says), and only
   once they are all confirmed the adds, updates and churn removals of the audiences not refused.
   Batches are of one action for one audience, at most ``concurrency`` in flight; each batch the ESP
   confirms is committed to state and audit in one transaction, so a crash or an ESP outage loses at
   most the batches in flight, and the next run resumes from the committed state without sending
   anyone twice. A run that was killed (status still ``running`` when the next run gets the target's
   lock) is marked ``abandoned`` by that next run, and its pending changes ``not_sent``.

An adapter with ``set_wise = True`` (the outbox, which sends nothing per batch) gets the same run as
statements instead of batches: the plan in a temporary table, one transaction per phase that applies it
to the state and marks its audit rows ``sent`` with the batch keys the batches would have had
(``_send_set_wise``); tests/test_mailer_setwise.py holds both paths to the same rows and files.

``sync_compliance`` is the same run in mode ``compliance_only``, for a day whose quality gate blocked
the publish: nothing new is published, but the people who unsubscribed, complained, hard-bounced or
withdrew consent that day are still owed their removal. Its plan is only those removals, of the members
the ESP has (``mailer.audience_state``), decided from what was loaded (``state.COMPLIANCE_PLAN_SQL``,
raw.*, not the refused marts): never an add, never an update; recorded in ``mailer.sync_runs`` with
``mode = 'compliance_only'`` (only for the audiences it removes from), and a rerun finds nothing left to send.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time

import psycopg

from ..email_rule import EMAIL_PATTERN
from ..warehouse.migrate import require_migrated
from .adapters import adapter_from_config
from .config import MailerConfig
from .http import MailerError
from .state import COMPLIANCE_PLAN_SQL, COMPLIANCE_REASONS, plan_sql, roomy_statements
from .types import ACTIONS, Adapter, Member, MemberResult

log = logging.getLogger(__name__)

# Lifecycle flows' audiences (dbt_project/seeds/flows.csv): they turn over daily by design (members
# leave at the end of the flow's window, on an order, when they leave the segment), so the circuit
# breaker does not judge them by their churn; the quality gate's flow checks guard what they hold.
FLOW_AUDIENCE_PREFIX = "flow_"


class CircuitBreakerOpen(MailerError):
    """An audience's ordinary churn would remove more than the allowed share of it: that audience's adds,
    updates and churn removals were held back. Raised after everything else was sent: the compliance
    removals of every audience and all changes of the other audiences (``report`` says what went out)."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


@dataclass(frozen=True)
class PlannedChange:
    action: str
    audience: str
    member: Member
    reason: str | None
    esp_id: str | None

    @property
    def compliance(self) -> bool:
        """A removal the person is owed (unsubscribed, bounced, complained, no consent, ESP compliance state)."""
        return self.action == "remove" and self.reason in COMPLIANCE_REASONS


def batch_key(target: str, audience: str, action: str, members: list[Member]) -> str:
    """Deterministic idempotency key: the same batch (same members, same attributes) gets the same key
    across retries and restarts, because batches are cut from the diff ordered by email_hash."""
    digest = hashlib.sha256(f"{target}\x1f{audience}\x1f{action}".encode())
    for m in members:
        digest.update(f"\x1e{m.email_hash}:{m.attrs_hash}".encode())
    return digest.hexdigest()[:40]


def _published_check(conn: psycopg.Connection, day: date) -> None:
    if conn.execute("select to_regclass('published.audience_members') is null").fetchone()[0]:
        raise MailerError(f"nothing is published yet: publish {day} (quality gate) before the mailer push")
    days = [r[0] for r in conn.execute("select distinct as_of_date from published.audience_members")]
    if days and days != [day]:
        raise MailerError(f"published.audience_members holds {', '.join(map(str, days))}, not {day}: "
                          "refusing to push another day's audiences")
    if not days:
        published = conn.execute("select to_regclass('ops.publish_runs') is not null and exists "
                                 "(select 1 from ops.publish_runs where as_of_date = %s)", (day,)).fetchone()[0]
        if not published:
            raise MailerError(f"{day} has not been published: run the quality gate and publish first")


FULL, COMPLIANCE_ONLY = "full", "compliance_only"  # mailer.sync_runs.mode


def _plan_query(conn: psycopg.Connection, day: date, target: str, mode: str) -> tuple[str, dict]:
    """The diff's SQL and parameters: the published audiences' (full) or the day's compliance removals."""
    if mode == COMPLIANCE_ONLY:
        day_end = datetime.combine(day + timedelta(days=1), clock_time(0), tzinfo=UTC)
        return COMPLIANCE_PLAN_SQL, {"target": target, "day_end": day_end}
    return plan_sql(conn), {"day": day, "target": target, "email_re": EMAIL_PATTERN}


def _load_plan(conn: psycopg.Connection, day: date, target: str, mode: str = FULL) -> list[PlannedChange]:
    query, params = _plan_query(conn, day, target, mode)
    with conn.transaction():
        roomy_statements(conn)
        rows = conn.execute(query, params).fetchall()
    plan = []
    for action, audience, customer_id, email, first_name, segment, email_hash, attrs_hash, reason, esp_id in rows:
        plan.append(PlannedChange(action, audience, Member(email, email_hash, customer_id, first_name, segment,
                                                           attrs_hash), reason, esp_id))
    order = {a: i for i, a in enumerate((*ACTIONS, "blocked"))}
    plan.sort(key=lambda c: (c.audience, order[c.action], c.member.email_hash, c.member.customer_id))
    return plan


def _plan_counts(plan: list[PlannedChange]) -> dict[str, Counter]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for change in plan:
        counts[change.audience][change.action] += 1
        counts[change.audience]["compliance"] += change.compliance
    return counts


def _summaries(conn: psycopg.Connection, target: str, counts: dict[str, Counter]) -> dict[str, dict]:
    """Per audience: members before/after, adds, updates, removes (of which compliance), excluded."""
    before = dict(conn.execute("select audience, count(*) from mailer.audience_state where target = %s "
                               "and is_member group by audience", (target,)).fetchall())
    counts = defaultdict(Counter, counts)
    summary = {}
    for audience in sorted(set(before) | set(counts)):
        c, n = counts[audience], before.get(audience, 0)
        summary[audience] = {"members_before": n, "members_after": n + c["add"] - c["remove"], "adds": c["add"],
                             "updates": c["update"], "removes": c["remove"], "compliance_removes": c["compliance"],
                             "excluded": c["blocked"], "sent": 0, "rejected": 0}
    return summary


def _breaker(summary: dict[str, dict], max_share: float, min_members: int = 0) -> dict[str, str]:
    """Audience -> why it is refused. Only ordinary churn counts: compliance removals are owed to the
    people concerned however many there are (an unsubscribe wave, a bounce storm). Audiences with
    fewer than `min_members` pushed members are not judged: a share of a handful says nothing (a
    new forecast audience of 2 turning over on the next refit is not an incident)."""
    tripped = {}
    for audience, s in summary.items():
        if audience.startswith(FLOW_AUDIENCE_PREFIX):
            continue  # a lifecycle flow's members leave by design (window end, an order): docs/flows.md
        if s["members_before"] < min_members:
            continue
        churn = s["removes"] - s["compliance_removes"]
        if s["members_before"] and churn > max_share * s["members_before"]:
            tripped[audience] = (
                f"{audience}: {churn} of {s['members_before']} members ({churn / s['members_before']:.0%}) would "
                f"leave by ordinary churn, more than the allowed {max_share:.0%} (ECRM_MAILER_MAX_REMOVE_SHARE); "
                f"its adds, updates and churn removals were held back, its {s['compliance_removes']} compliance "
                "removals were sent")
    return tripped


def _print_dry_run(day: date, adapter: Adapter, summary: dict, plan: list[PlannedChange],
                   tripped: dict[str, str], sample: int = 20) -> None:
    print(f"DRY RUN mailer={adapter.name} target={adapter.target} day={day}: nothing is sent")
    for audience, s in summary.items():
        print(f"  {audience}: +{s['adds']} add, ~{s['updates']} update, -{s['removes']} remove "
              f"({s['compliance_removes']} compliance), {s['excluded']} excluded "
              f"({s['members_before']} -> {s['members_after']} members)")
        for action in (*ACTIONS, "blocked"):
            changes = [c for c in plan if c.audience == audience and c.action == action]
            for c in changes[:sample]:
                print(f"    {action:<7} {c.member.customer_id:<12} {c.member.email_hash[:12]} "
                      f"{c.member.segment:<20} {c.reason or ''}")
            if len(changes) > sample:
                print(f"    ... {len(changes) - sample} more {action}")
    for line in tripped.values():
        print(f"  CIRCUIT BREAKER would refuse: {line}")


def _insert_runs(conn, run_id: int, day: date, adapter: Adapter, dry_run: bool, status: str, summary: dict,
                 error: str | None = None, mode: str = FULL) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "insert into mailer.sync_runs (run_id, audience, day, adapter, target, dry_run, status, members_before, "
            "members_after, adds, updates, removes, compliance_removes, excluded, error, mode, finished_at, "
            "duration_s) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            " case when %s <> 'running' then now() end, case when %s <> 'running' then 0 end)",
            [(run_id, a, day, adapter.name, adapter.target, dry_run, status, s["members_before"], s["members_after"],
              s["adds"], s["updates"], s["removes"], s["compliance_removes"], s["excluded"], error, mode, status,
              status) for a, s in summary.items()])


def _finish_runs(conn, run_id: int, summary: dict, status: str | dict[str, str], error: str | None | dict,
                 started: float) -> None:
    """Close the run's rows: one status/error for all audiences, or per audience (dicts)."""
    statuses = status if isinstance(status, dict) else dict.fromkeys(summary, status)
    errors = error if isinstance(error, dict) else dict.fromkeys(summary, error)
    with conn.cursor() as cur:
        cur.executemany(
            "update mailer.sync_runs set status = %s, error = %s, sent = %s, rejected = %s, members_after = %s, "
            "finished_at = now(), duration_s = %s where run_id = %s and audience = %s",
            [(statuses[a], errors.get(a), s["sent"], s["rejected"], s["members_after"],
              round(time.monotonic() - started, 3), run_id, a) for a, s in summary.items()])


def _abandon_dead_runs(conn, target: str, run_id: int) -> list[int]:
    """Runs of this target still ``running``: we hold the target's advisory lock, which a live run would
    hold, so their process died (killed, OOM, lost host) without closing them. Mark them ``abandoned``
    (when, by which run) and their pending changes ``not_sent``. ``mailer.audience_state`` needs no
    repair: it only ever holds batches the ESP confirmed (committed per batch), so the plan computed
    next resends exactly what the dead run did not confirm."""
    with conn.transaction():
        dead = [r[0] for r in conn.execute(
            "update mailer.sync_runs set status = 'abandoned', abandoned_at = now(), abandoned_by_run_id = %(run)s, "
            "finished_at = coalesce(finished_at, now()), error = coalesce(error || '; ', '') || "
            "'abandoned: the run died without finishing (killed?); closed by run ' || %(run)s::text "
            "where target = %(target)s and status = 'running' and run_id <> %(run)s returning run_id",
            {"run": run_id, "target": target}).fetchall()]
        if dead:
            conn.execute(
                "update mailer.sync_changes set result = 'not_sent', batch_key = null, error = 'abandoned: run ' || "
                "run_id::text || ' died before the ESP confirmed this change; reconciled by run ' || %s::text "
                "where run_id = any(%s) and result = 'pending'", (run_id, sorted(set(dead))))
    dead = sorted(set(dead))
    if dead:
        log.warning("mailer %s: marked dead run(s) %s abandoned (run %d)", target, dead, run_id)
    return dead


def _commit_batch(conn, run_id: int, day: date, target: str, audience: str, action: str, key: str,
                  changes: list[PlannedChange], results: list[MemberResult]) -> Counter:
    """State and audit of one confirmed batch, in one transaction."""
    by_hash = {r.email_hash: r for r in results}
    tally: Counter = Counter()
    state_upserts, state_removes, audit, suppressions = [], [], [], []
    for change in changes:
        m = change.member
        r = by_hash.get(m.email_hash) or MemberResult(m.email_hash, "rejected", "no result from the ESP")
        tally[r.result] += 1
        audit.append((r.result, r.error, key, run_id, audience, action, m.email_hash, m.customer_id))
        if r.suppress:
            suppressions.append((target, m.email_hash, r.error or r.result, run_id))
        if not r.applied:
            continue
        if action == "remove":
            state_removes.append((day, run_id, target, audience, m.email_hash))
        else:
            state_upserts.append((target, audience, m.email_hash, m.customer_id, m.email, m.first_name, m.segment,
                                  m.attrs_hash, r.esp_id or change.esp_id, day, day, run_id))
    with conn.transaction(), conn.cursor() as cur:
        if state_upserts:
            cur.executemany(
                "insert into mailer.audience_state (target, audience, email_hash, customer_id, email, first_name, "
                "segment, attrs_hash, is_member, esp_id, first_added_day, last_pushed_day, last_run_id) values "
                "(%s, %s, %s, %s, %s, %s, %s, %s, true, %s, %s, %s, %s) on conflict (target, audience, email_hash) do "
                "update set customer_id = excluded.customer_id, email = excluded.email, first_name = "
                "excluded.first_name, segment = excluded.segment, attrs_hash = excluded.attrs_hash, is_member = true, "
                "esp_id = coalesce(excluded.esp_id, mailer.audience_state.esp_id), last_pushed_day = "
                "excluded.last_pushed_day, removed_day = null, last_run_id = excluded.last_run_id, updated_at = now()",
                state_upserts)
        if state_removes:
            cur.executemany(
                "update mailer.audience_state set is_member = false, removed_day = %s, last_run_id = %s, "
                "updated_at = now() where target = %s and audience = %s and email_hash = %s", state_removes)
        cur.executemany(
            "update mailer.sync_changes set result = %s, error = %s, batch_key = %s, sent_at = now() "
            "where run_id = %s and audience = %s and action = %s and email_hash = %s and customer_id = %s", audit)
        if suppressions:
            cur.executemany(
                "insert into mailer.esp_suppressions (target, email_hash, reason, run_id) values (%s, %s, %s, %s) "
                "on conflict (target, email_hash) do nothing", suppressions)
    return tally


def sync_audiences(conn: psycopg.Connection, day: date, adapter: Adapter | None = None,
                   config: MailerConfig | None = None) -> dict:
    """Push the published audiences of `day` to the configured mailer; returns a JSON-able report.

    Raises CircuitBreakerOpen (after sending the compliance removals and the audiences not refused),
    EspAuthError/EspUnavailable (nothing beyond confirmed batches marked as pushed) or MailerError."""
    config = config or MailerConfig.from_env()
    adapter = adapter or adapter_from_config(config)
    try:
        return _sync(conn, day, adapter, config)
    finally:
        adapter.close()


def sync_compliance(conn: psycopg.Connection, day: date, adapter: Adapter | None = None,
                    config: MailerConfig | None = None) -> dict:
    """Send only the compliance removals `day` owes (a day whose gate blocked the publish): members the
    ESP has who unsubscribed, complained, hard-bounced or withdrew consent by the end of `day`, or whom
    the ESP itself reported in a compliance state. Needs no publish of `day` and no mart; removals only.

    Returns the report (``status`` ``nothing_to_remove`` when the ESP holds none of them: then no
    mailer.sync_runs row is written). Raises like sync_audiences on ESP failures (resumable)."""
    config = config or MailerConfig.from_env()
    adapter = adapter or adapter_from_config(config)
    try:
        return _sync(conn, day, adapter, config, COMPLIANCE_ONLY)
    finally:
        adapter.close()


def _nothing_to_remove(conn: psycopg.Connection, day: date, adapter: Adapter, run_id: int, report: dict) -> dict:
    """A compliance-only run with nothing left to remove (none owed, or a rerun after they were sent):
    no sync_runs row; the outbox's day folder is written again when an earlier compliance run of the day
    sent removals (a run killed after its last batch but before its files), byte-identical otherwise."""
    earlier = conn.execute("select exists (select 1 from mailer.sync_runs where target = %s and day = %s "
                           "and mode = %s and not dry_run and sent > 0)",
                           (adapter.target, day, COMPLIANCE_ONLY)).fetchone()[0]
    facts = adapter.end(conn, day, run_id) if earlier and not report["dry_run"] else {}
    return {**report, **facts, "status": "nothing_to_remove", "circuit_breaker": []}


def _sync(conn: psycopg.Connection, day: date, adapter: Adapter, config: MailerConfig, mode: str = FULL) -> dict:
    started = time.monotonic()
    require_migrated(conn)
    if mode == FULL:
        _published_check(conn, day)
    lock_key = f"ecrm-mailer:{adapter.target}"
    if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", (lock_key,)).fetchone()[0]:
        raise MailerError(f"another mailer sync for {adapter.target} is running; try again when it has finished")
    # An adapter that only renders what the state holds (the outbox) takes the set-wise path: the plan,
    # the audit rows and the state changes are statements over a temporary table, not rows through
    # Python; a dry run prints members, so it loads the plan as the ESP path does.
    set_wise = bool(getattr(adapter, "set_wise", False)) and not config.dry_run
    try:
        run_id = conn.execute("select nextval('mailer.sync_run_seq')").fetchone()[0]
        abandoned = [] if config.dry_run else _abandon_dead_runs(conn, adapter.target, run_id)
        if set_wise:  # the diff stays in the database: a temporary table, summed there
            counts = _plan_into_table(conn, day, adapter.target, mode)
            plan: list[PlannedChange] = []
        else:
            plan = _load_plan(conn, day, adapter.target, mode)
            counts = _plan_counts(plan)
        summary = _summaries(conn, adapter.target, counts)
        if mode == COMPLIANCE_ONLY:  # only the audiences it removes from (a rerun: none)
            summary = {a: s for a, s in summary.items() if s["removes"]}
        report = {"day": day.isoformat(), "adapter": adapter.name, "target": adapter.target, "run_id": run_id,
                  "mode": mode, "dry_run": config.dry_run, "audiences": summary, "abandoned_runs": abandoned}
        if not summary and mode == COMPLIANCE_ONLY:
            return _nothing_to_remove(conn, day, adapter, run_id, report)
        # compliance removals never count towards the breaker: a compliance-only plan never trips it
        tripped = _breaker(summary, config.max_remove_share, config.breaker_min_members)
        if config.dry_run:
            _print_dry_run(day, adapter, summary, plan, tripped)
            with conn.transaction():
                _insert_runs(conn, run_id, day, adapter, True, "dry_run", summary,
                             "; ".join(tripped.values()) or None, mode)
            return {**report, "status": "dry_run", "circuit_breaker": list(tripped.values()),
                    "plan": [{"action": c.action, "audience": c.audience, "customer_id": c.member.customer_id,
                              "email_hash": c.member.email_hash, "reason": c.reason} for c in plan]}
        with conn.transaction():
            _insert_runs(conn, run_id, day, adapter, False, "running", summary, mode=mode)
        try:
            adapter.preflight(sorted(summary))
        except MailerError as exc:
            _finish_runs(conn, run_id, summary, "failed", str(exc), started)
            raise

        def initial(c: PlannedChange) -> tuple[str, str | None]:
            if c.action == "blocked":
                return "excluded", None
            if c.audience in tripped and not c.compliance:
                return "not_sent", "held back by the circuit breaker: " + tripped[c.audience]
            return "pending", None

        if set_wise:
            with conn.transaction():
                _insert_changes_set_wise(conn, run_id, adapter.target, config.batch_size, tripped)
        else:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "insert into mailer.sync_changes (run_id, audience, action, email_hash, customer_id, segment, "
                    "reason, result, error) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(run_id, c.audience, c.action, c.member.email_hash, c.member.customer_id, c.member.segment,
                      c.reason, *initial(c)) for c in plan])
        facts = adapter.begin(conn, day)
        if set_wise:
            _send_set_wise(conn, run_id, day, adapter.target, summary, set(tripped))
            error = None
        else:
            error = _send(conn, run_id, day, adapter, config, plan, summary, set(tripped))
        conn.execute("update mailer.sync_changes set result = 'not_sent', error = %s where run_id = %s "
                     "and result = 'pending'", (str(error) if error else "run ended before this batch", run_id))
        if error is None:
            facts |= adapter.end(conn, day, run_id)
        for audience in tripped:  # what the refused audience really holds now: only the compliance removals went
            s = summary[audience]
            s["members_after"] = s["members_before"] - s["compliance_removes"]
        status = "failed" if error else "succeeded"
        _finish_runs(conn, run_id, summary, {a: "refused" if a in tripped else status for a in summary},
                     {a: "; ".join(filter(None, (tripped.get(a), str(error) if error else None))) or None
                      for a in summary}, started)
        report |= facts | {"status": status if error or not tripped else "refused",
                           "circuit_breaker": list(tripped.values()),
                           "seconds": round(time.monotonic() - started, 3)}
        client = getattr(adapter, "client", None)
        if client is not None:
            report |= {"requests": client.requests_sent, "retries": client.retries}
        log.info("mailer %s %s %s run %d: %s", adapter.name, mode, day, run_id,
                 {a: {k: v for k, v in s.items() if v} for a, s in summary.items()})
        if error:
            raise error
        if tripped:
            raise CircuitBreakerOpen(
                f"circuit breaker: refused audience(s) {', '.join(sorted(tripped))}; the other audiences and every "
                "compliance removal were sent. " + "; ".join(tripped.values()), report)
        return report
    finally:
        if set_wise:
            conn.execute(f"drop table if exists pg_temp.{PLAN_TABLE}")
        conn.execute("select pg_advisory_unlock(hashtext(%s))", (lock_key,))


# ----- the set-wise path (adapters with `set_wise = True`: the outbox) -----

PLAN_TABLE = "ecrm_mailer_plan"  # a temporary table: this session's plan, dropped at the end of the run
_PLAN_COLUMNS = "action, audience, customer_id, email, first_name, segment, email_hash, attrs_hash, reason, esp_id"


def _plan_into_table(conn: psycopg.Connection, day: date, target: str, mode: str) -> dict[str, Counter]:
    """The plan (the same SQL as the ESP path's) into a temporary table, with each change's phase
    (`compliance`: a removal the person is owed); returns the counts per audience and action."""
    query, params = _plan_query(conn, day, target, mode)
    conn.execute(f"drop table if exists pg_temp.{PLAN_TABLE}")
    conn.execute(f"create temporary table {PLAN_TABLE} (action text not null, audience text not null, "
                 "customer_id text not null, email text, first_name text, segment text, email_hash text not null, "
                 "attrs_hash text, reason text, esp_id text, compliance boolean not null)")
    with conn.transaction():
        roomy_statements(conn)
        conn.execute(f"insert into {PLAN_TABLE} select p.*, p.action = 'remove' and coalesce(p.reason = any("
                     f"%(compliance_reasons)s::text[]), false) from ({query}) as p",
                     {**params, "compliance_reasons": sorted(COMPLIANCE_REASONS)})
    conn.execute(f"analyze {PLAN_TABLE}")
    counts: dict[str, Counter] = {}
    for audience, action, n, compliance in conn.execute(
            f"select audience, action, count(*), count(*) filter (where compliance) from {PLAN_TABLE} "
            "group by audience, action"):
        counts.setdefault(audience, Counter())[action] += n
        counts[audience]["compliance"] += compliance
    return counts


def _insert_changes_set_wise(conn: psycopg.Connection, run_id: int, target: str, batch_size: int,
                             tripped: dict[str, str]) -> None:
    """One audit row per planned change, as the ESP path writes them: blocked members `excluded`, the
    ordinary changes of a refused audience `not_sent` with the breaker's reason, the rest `pending`,
    each with the batch key the ESP path would give its batch (batches of `batch_size` per audience,
    action and phase, ordered by email hash: ``batch_key``), so the phases only flip `pending` to
    `sent`. (A run that dies leaves its `pending` rows to the next run, which marks them `not_sent`
    and clears their keys: a key is only kept for what was sent.)"""
    held = "t.why is not null and not p.compliance and p.action <> 'blocked'"
    conn.execute(f"""
        with rows as (
            select p.*, t.why,
                   case when p.action = 'blocked' then 'excluded' when {held} then 'not_sent' else 'pending' end
                       as result
            from {PLAN_TABLE} as p
            left join unnest(%(audiences)s::text[], %(why)s::text[]) as t (audience, why) on t.audience = p.audience
        ),
        numbered as (
            select audience, action, compliance, email_hash, customer_id, attrs_hash,
                   (row_number() over (partition by audience, action, compliance
                                       order by email_hash collate "C", customer_id collate "C") - 1)
                       / %(size)s as batch
            from rows
            where result = 'pending'
        ),
        keys as (
            select audience, action, compliance, batch,
                   left(encode(sha256(convert_to(%(target)s || chr(31) || audience || chr(31) || action
                       || string_agg(chr(30) || email_hash || ':' || attrs_hash, ''
                                     order by email_hash collate "C", customer_id collate "C"), 'UTF8')),
                        'hex'), 40) as batch_key
            from numbered
            group by audience, action, compliance, batch
        )
        insert into mailer.sync_changes (run_id, audience, action, email_hash, customer_id, segment, reason, result,
                                         error, batch_key)
        select %(run)s, r.audience, r.action, r.email_hash, r.customer_id, r.segment, r.reason, r.result,
               case when r.result = 'not_sent' then 'held back by the circuit breaker: ' || r.why end, k.batch_key
        from rows as r
        left join numbered as n
            on n.audience = r.audience and n.action = r.action and n.email_hash = r.email_hash
               and n.customer_id = r.customer_id
        left join keys as k
            on k.audience = n.audience and k.action = n.action and k.compliance = n.compliance and k.batch = n.batch""",
        {"run": run_id, "target": target, "size": batch_size, "audiences": list(tripped),
         "why": list(tripped.values())})


# The phases of the ESP path (_send), as statements: 1. every audience's compliance removals, 2. the adds,
# updates and churn removals of the audiences the breaker did not refuse (their audit rows: all still pending).
_PHASES = (("p.compliance", "c.action = 'remove' and c.reason = any(%(compliance_reasons)s::text[])"),
           ("not p.compliance and p.action <> 'blocked' and p.audience <> all(%(refused)s::text[])", "true"))


def _send_set_wise(conn: psycopg.Connection, run_id: int, day: date, target: str, summary: dict,
                   refused: set[str]) -> None:
    """Apply each phase to mailer.audience_state and mark its audit rows `sent`, one transaction per
    phase (phase 1 is committed before phase 2 starts, as the ESP path confirms every compliance
    removal before any add). A crash between the phases leaves phase 1 committed; the next run plans
    from the state and sends only what is left, as after a killed ESP push."""
    params = {"run": run_id, "day": day, "target": target, "refused": sorted(refused),
              "compliance_reasons": sorted(COMPLIANCE_REASONS)}
    for where, audited in _PHASES:
        with conn.transaction():
            conn.execute(f"""
                insert into mailer.audience_state as s (target, audience, email_hash, customer_id, email, first_name,
                    segment, attrs_hash, is_member, esp_id, first_added_day, last_pushed_day, last_run_id)
                select %(target)s, p.audience, p.email_hash, p.customer_id, p.email, p.first_name, p.segment,
                       p.attrs_hash, true, p.esp_id, %(day)s, %(day)s, %(run)s
                from {PLAN_TABLE} as p
                where p.action in ('add', 'update') and {where}
                on conflict (target, audience, email_hash) do update set customer_id = excluded.customer_id,
                    email = excluded.email, first_name = excluded.first_name, segment = excluded.segment,
                    attrs_hash = excluded.attrs_hash, is_member = true, esp_id = coalesce(excluded.esp_id, s.esp_id),
                    last_pushed_day = excluded.last_pushed_day, removed_day = null,
                    last_run_id = excluded.last_run_id, updated_at = now()""", params)
            conn.execute(f"""
                update mailer.audience_state as s
                set is_member = false, removed_day = %(day)s, last_run_id = %(run)s, updated_at = now()
                from {PLAN_TABLE} as p
                where p.action = 'remove' and {where}
                    and s.target = %(target)s and s.audience = p.audience and s.email_hash = p.email_hash""", params)
            sent = conn.execute(f"""
                with updated as (
                    update mailer.sync_changes as c set result = 'sent', sent_at = statement_timestamp()
                    where c.run_id = %(run)s and c.result = 'pending' and {audited}
                    returning c.audience
                )
                select audience, count(*) from updated group by audience""", params).fetchall()
        for audience, n in sent:
            summary[audience]["sent"] += n


def _batches(changes: list[PlannedChange], size: int) -> list[tuple[str, str, list[PlannedChange]]]:
    return [(changes[0].audience, changes[0].action, changes[i:i + size]) for i in range(0, len(changes), size)]


def _send(conn, run_id: int, day: date, adapter: Adapter, config: MailerConfig, plan: list[PlannedChange],
          summary: dict, refused: set[str]) -> MailerError | None:
    """Send in two phases, each with at most `concurrency` batches in flight, committing each confirmed
    batch from this (the connection's) thread:

    1. the compliance removals of every audience, refused or not;
    2. once all of those are confirmed: adds, updates and churn removals of the audiences not refused.

    Returns the error that stopped the run, or None (then phase 2 is not started after a phase 1 error)."""
    compliance, ordinary = [], []
    for audience in summary:
        removals = [c for c in plan if c.audience == audience and c.compliance]
        if removals:
            compliance += _batches(removals, config.batch_size)
        if audience in refused:
            continue
        for action in ACTIONS:
            changes = [c for c in plan if c.audience == audience and c.action == action and not c.compliance]
            if changes:
                ordinary += _batches(changes, config.batch_size)
    for phase in (compliance, ordinary):
        error = _send_phase(conn, run_id, day, adapter, config, phase, summary)
        if error is not None:
            return error
    return None


def _send_phase(conn, run_id: int, day: date, adapter: Adapter, config: MailerConfig,
                batches: list[tuple[str, str, list[PlannedChange]]], summary: dict) -> MailerError | None:
    error: MailerError | None = None
    pending: dict[Future, tuple[str, str, str, list[PlannedChange]]] = {}
    queue = iter(batches)
    with ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="ecrm-mailer") as pool:
        def submit_next() -> bool:
            for audience, action, changes in queue:
                members = [c.member for c in changes]
                key = batch_key(adapter.target, audience, action, members)
                pending[pool.submit(adapter.apply, audience, action, members, key)] = (audience, action, key, changes)
                return True
            return False

        for _ in range(config.concurrency):
            if not submit_next():
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                audience, action, key, changes = pending.pop(future)
                try:
                    results = future.result()
                except MailerError as exc:
                    error = error or exc  # keep the first cause; batches already in flight still get committed
                    continue
                except Exception as exc:  # noqa: BLE001 - an adapter bug must still leave a clean audit
                    error = error or MailerError(f"{type(exc).__name__}: {exc}")
                    continue
                tally = _commit_batch(conn, run_id, day, adapter.target, audience, action, key, changes, results)
                summary[audience]["sent"] += tally["sent"] + tally["skipped"]
                summary[audience]["rejected"] += tally["rejected"] + tally["esp_suppressed"]
                if error is None:
                    submit_next()
    return error
