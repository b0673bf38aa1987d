"""Issue 20, defect 4: builds of one warehouse are serialised by a session-level advisory lock held
for the whole dbt invocation. A second build fails fast, before touching a table, saying which day
the running build builds, since when, and its pid and run id; the running build's tables are intact.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import date

import psycopg
import pytest
from test_quality_gate import DAY1, DAY2

from ecrm.intervals import day_interval
from ecrm.pipeline import build_marts
from ecrm.transform import BuildAlreadyRunning, build_lock

TABLES = """select table_schema || '.' || table_name from information_schema.tables
            where table_schema in ('intermediate', 'marts', 'sync') and table_type = 'BASE TABLE' order by 1"""


def table_counts(conn) -> dict[str, int]:
    return {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for (t,) in conn.execute(TABLES).fetchall()}


def test_two_concurrent_builds_of_the_same_day_one_runs_the_other_fails_fast(gate_built):
    url, conn = gate_built
    before = table_counts(conn)
    start = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def run(run_id: str) -> None:
        start.wait()
        try:
            outcome[run_id] = build_marts(*day_interval(DAY2), run_id=run_id, url=url)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each build raised
            outcome[run_id] = exc

    threads = [threading.Thread(target=run, args=(run_id,)) for run_id in ("build-a", "build-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    succeeded = [k for k, v in outcome.items() if isinstance(v, dict)]
    refused = [k for k, v in outcome.items() if isinstance(v, BuildAlreadyRunning)]
    assert len(succeeded) == 1 and len(refused) == 1, outcome
    message = str(outcome[refused[0]])
    assert f"another build of {DAY2} is running" in message
    assert succeeded[0] in message  # the run id of the build that holds the lock
    assert "started at" in message and "pid" in message

    # the running build's tables are intact: the rebuild of the same day gives the same tables
    assert table_counts(conn) == before
    assert conn.execute("select count(*) - count(distinct page_view_id) from intermediate.int_web_page_views"
                        ).fetchone()[0] == 0
    assert conn.execute("select run_id, status from ops.build_runs where run_date = %s and run_id like 'build-%%' "
                        "order by build_id", (DAY2,)).fetchall() in (
        [(succeeded[0], "succeeded"), (refused[0], "refused")], [(refused[0], "refused"), (succeeded[0], "succeeded")])


def test_a_build_while_another_day_is_building_names_that_day(gate_built):
    """The lock covers the warehouse, not one day: every build replaces the same tables."""
    url, conn = gate_built
    stages_before = conn.execute("select count(*) from ops.stage_runs").fetchone()[0]
    with build_lock(url, DAY1, run_id="backfill__2026-10-01") as build_id:
        with pytest.raises(BuildAlreadyRunning) as info:
            build_marts(*day_interval(DAY2), run_id="scheduled__2026-10-02", url=url)
        holder = conn.execute("select pid, started_at from ops.build_runs where build_id = %s",
                              (build_id,)).fetchone()
    message = str(info.value)
    assert message.startswith(f"cannot build {DAY2}: another build of {DAY1} is running (started at ")
    assert f"pid {holder[0]}" in message and "run_id backfill__2026-10-01" in message
    assert f"{holder[1]:%Y-%m-%d %H:%M:%S}" in message
    # refused before dbt ran: recorded as refused with the reason, no stage mark for it
    assert conn.execute("select status, error like 'another build of 2026-10-01 is running%%' from ops.build_runs "
                        "where run_id = 'scheduled__2026-10-02'").fetchall() == [("refused", True)]
    assert conn.execute("select count(*) from ops.stage_runs").fetchone()[0] == stages_before
    # released at the end of the block: the next build gets the lock
    with build_lock(url, DAY2, run_id="next"):
        pass
    assert conn.execute("select status from ops.build_runs where build_id = %s", (build_id,)).fetchone()[0] == \
        "succeeded"


def test_a_killed_build_releases_the_lock_and_is_marked_abandoned(gate_built):
    """A build whose process died (here: its lock connection is terminated) leaves its row 'running';
    the next build gets the lock at once and marks that row abandoned."""
    url, conn = gate_built
    lock = build_lock(url, date(2026, 9, 30), run_id="killed")
    lock.__enter__()
    conn.execute("select pg_terminate_backend(pid, 10000) from pg_stat_activity where application_name like "  # waits until gone
                 "'ecrm-build 2026-09-30 %%'")
    with build_lock(url, DAY2, run_id="after"):
        pass
    assert conn.execute("select status, error like '%%found by build 2026-10-02 after' from ops.build_runs "
                        "where run_id = 'killed'").fetchone() == ("abandoned", True)
    with contextlib.suppress(psycopg.Error):  # the killed build's connection is gone
        lock.__exit__(None, None, None)


def test_a_publish_while_a_build_runs_is_refused_before_the_gate(gate_day2):
    """The gate audits the built tables and the publish copies them: neither runs while a build does
    (each holds the build lock), and a build never runs while either does."""
    from test_quality_gate import published_state

    from ecrm.pipeline import publish_segments

    url, conn, outbox = gate_day2
    before = published_state(conn)
    with build_lock(url, DAY2, run_id="scheduled__2026-10-02"):
        with pytest.raises(BuildAlreadyRunning, match=f"cannot gate {DAY2}: another build of {DAY2} is running"):
            publish_segments(*day_interval(DAY2), run_id="manual__publish", url=url)
    assert published_state(conn) == before
    assert not (outbox / DAY2.isoformat()).exists()
    assert conn.execute("select count(*) from ops.quality_results where run_date = %s", (DAY2,)).fetchone()[0] == 0
    # and a build while a publish holds the lock is refused naming the publish
    with build_lock(url, DAY2, run_id="manual__publish", action="publish"):
        with pytest.raises(BuildAlreadyRunning, match=f"cannot build {DAY2}: another publish of {DAY2} is running"):
            build_marts(*day_interval(DAY2), run_id="scheduled__2026-10-02", url=url)
    publish_segments(*day_interval(DAY2), run_id="manual__publish", url=url)  # the lock is free again
    assert (outbox / DAY2.isoformat() / "manifest.json").exists()
    assert conn.execute("select action, status from ops.build_runs where run_id = 'manual__publish' "
                        "order by build_id").fetchall() == [("gate", "refused"), ("publish", "succeeded"),
                                                             ("gate", "succeeded"), ("publish", "succeeded")]


def test_a_build_between_the_gate_and_the_publish_makes_the_publish_refuse(gate_day2):
    """The DAG's gate and publish are two tasks, each holding the build lock for itself: a build that
    ran in between replaced the audited tables, so the publish refuses and nothing unaudited is published."""
    from test_quality_gate import published_state

    from ecrm.pipeline import UnauditedTables, gate_segments, publish_audited, push_published

    url, conn, outbox = gate_day2
    before = published_state(conn)
    with pytest.raises(UnauditedTables, match=f"cannot publish {DAY2}: no passing quality gate of {DAY2}"):
        publish_audited(*day_interval(DAY2), run_id="scheduled__2026-10-02", url=url)
    gate_segments(*day_interval(DAY2), run_id="scheduled__2026-10-02", url=url)
    build_marts(*day_interval(DAY2), run_id="manual__rebuild", url=url)  # a real dbt build in between
    with pytest.raises(UnauditedTables) as info:
        publish_audited(*day_interval(DAY2), run_id="scheduled__2026-10-02", url=url)
    message = str(info.value)
    assert message.startswith(f"cannot publish {DAY2}: a build of {DAY2} (run_id manual__rebuild, succeeded at ")
    assert "ran after the quality gate" in message and "run the gate again, then publish" in message
    assert published_state(conn) == before
    assert conn.execute("select status, error from ops.build_runs where action = 'publish' "
                        "order by build_id desc limit 1").fetchone() == ("failed", f"UnauditedTables: {message}")
    # a build refused (here by a publish holding the lock) never ran: it does not void the gate
    gate_segments(*day_interval(DAY2), run_id="scheduled__2026-10-02", url=url)
    with build_lock(url, DAY2, run_id="holder", action="publish"):
        with pytest.raises(BuildAlreadyRunning):
            build_marts(*day_interval(DAY2), run_id="refused", url=url)
    published = publish_audited(*day_interval(DAY2), run_id="scheduled__2026-10-02", url=url)
    assert published["audiences"] and published_state(conn) != before
    pushed = push_published(*day_interval(DAY2), run_id="scheduled__2026-10-02", url=url)
    assert pushed["audiences"] == published["audiences"]
    assert (outbox / DAY2.isoformat() / "manifest.json").exists()
