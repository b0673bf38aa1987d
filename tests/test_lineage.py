"""OpenLineage (docs/lineage.md): a day through all five DAGs with a file transport gives Airflow's DAG and
task runs, the loads, every dbt node and the publish and push as events whose datasets form one graph,
landing file -> raw -> staging -> marts -> published -> the mailer (the dbt exposure), each table under one
name. With no transport configured nothing is emitted and openlineage is not even imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict, deque
from datetime import date

import pytest

from conftest import ROOT

DAY = date(2026, 10, 1)
TASK_OF = {  # ecrm's jobs and the Airflow task whose run must be their parent
    "ecrm.ingest.shop": "ingest_orders.load", "ecrm.ingest.weblogs": "ingest_web_logs.load",
    "ecrm.ingest.email": "ingest_email_events.load", "dbt-run-ecrm": "build_marts.dbt_build_and_forecast",
    "ecrm.predict": "build_marts.dbt_build_and_forecast", "ecrm.publish": "publish_segments.publish",
    "ecrm.mailer_push": "publish_segments.push"}
LAYERS = ["landing", "raw", "staging", "marts", "published", "exposure"]


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "AIRFLOW__OPENLINEAGE"))
           and k not in ("ECRM_SHOP_DB_URL", "AIRFLOW_CONN_ECRM_SHOP_DB")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def day_events(warehouse, tmp_path_factory):
    """(warehouse URL, the day's events): one simulated day, all five DAGs (dag.test), file transport."""
    url = warehouse.create_database("lineage")
    tmp = tmp_path_factory.mktemp("lineage")
    log = tmp / "events.jsonl"
    env = _clean_env(OPENLINEAGE__TRANSPORT__TYPE="file", OPENLINEAGE__TRANSPORT__LOG_FILE_PATH=str(log),
                     OPENLINEAGE__TRANSPORT__APPEND="true", OPENLINEAGE_NAMESPACE="ecrm",
                     AIRFLOW_HOME=str(tmp / "airflow"))
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "lineage_day.py"), url, str(tmp / "data"),
                           str(tmp / "airflow"), DAY.isoformat()], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    states = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(states.values()) == ["success"] * 5, states
    return url, [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _datasets(event) -> list[dict]:
    return [*event.get("inputs", []), *event.get("outputs", [])]


@pytest.mark.slow
def test_every_dag_run_and_task_run_is_reported_by_airflow(day_events):
    _, events = day_events
    seen = defaultdict(set)
    for e in events:
        seen[e["job"]["name"]].add(e["eventType"])
    # DAG runs: COMPLETE (their START comes from the scheduler, which dag.test() does not run)
    for dag_id in ("ingest_orders", "ingest_web_logs", "ingest_email_events", "build_marts", "publish_segments"):
        assert "COMPLETE" in seen[dag_id], dag_id
    for task in set(TASK_OF.values()) | {"publish_segments.gate", "build_marts.loads_done"}:
        assert {"START", "COMPLETE"} <= seen[task], task


@pytest.mark.slow
def test_loads_dbt_and_publish_are_children_of_the_airflow_task_that_ran_them(day_events):
    _, events = day_events
    run_job = {e["run"]["runId"]: e["job"]["name"] for e in events}
    dag_runs = {e["run"]["runId"] for e in events if e["job"]["name"] in
                {"ingest_orders", "ingest_web_logs", "ingest_email_events", "build_marts", "publish_segments"}}
    for job, task in TASK_OF.items():
        starts = [e for e in events if e["job"]["name"] == job and e["eventType"] == "START"
                  and "parent" in e["run"]["facets"]]
        assert starts, f"no event of {job} inside Airflow"
        for e in starts:
            parent = e["run"]["facets"]["parent"]
            assert parent["job"]["name"] == task and run_job.get(parent["run"]["runId"]) == task, (job, parent)
            assert parent["root"]["run"]["runId"] in dag_runs  # the DAG run Airflow reported
    # every dbt node is a child of a dbt run, itself a child of the build task; each ended COMPLETE
    dbt_runs = {e["run"]["runId"] for e in events if e["job"]["name"] == "dbt-run-ecrm"}
    nodes = [e for e in events if e["producer"].startswith("https://github.com/OpenLineage/OpenLineage")
             and e["job"]["name"] != "dbt-run-ecrm"]
    assert len({e["job"]["name"] for e in nodes}) > 50
    assert all(e["run"]["facets"]["parent"]["run"]["runId"] in dbt_runs for e in nodes)
    assert {e["eventType"] for e in nodes} == {"START", "COMPLETE"}


def _graph(events) -> tuple[dict, dict]:
    edges: dict = defaultdict(set)
    facets: dict = {}
    for e in events:
        if e["eventType"] != "COMPLETE":
            continue
        for out in e.get("outputs", []):
            facets[(out["namespace"], out["name"])] = out.get("facets") or {}
            for inp in e.get("inputs", []):
                edges[(inp["namespace"], inp["name"])].add((out["namespace"], out["name"]))
    return edges, facets


def _layer(dataset, facets) -> str:
    namespace, name = dataset
    if "dbt_exposures" in facets.get(dataset, {}) and namespace == "file":
        return "exposure"  # what the mailer push wrote: the outbox's audience files
    if namespace == "file":
        return "landing" if "/landing/" in name else "file"
    schema = name.split(".")[1]
    return "marts" if schema == "sync" else schema  # sync.*: the mailer's marts


def _path(edges, facets, start) -> list | None:
    """A path from `start` whose datasets pass through LAYERS in order (other layers may come between)."""
    queue, seen = deque([(start, 1, [start])]), {(start, 1)}
    while queue:
        node, matched, path = queue.popleft()
        if matched == len(LAYERS):
            return path
        for nxt in sorted(edges.get(node, ())):
            step = matched + (_layer(nxt, facets) == LAYERS[matched])
            if (nxt, step) not in seen:
                seen.add((nxt, step))
                queue.append((nxt, step, [*path, nxt]))
    return None


@pytest.mark.slow
def test_a_days_events_form_the_graph_from_landing_file_to_exposure(day_events):
    _, events = day_events
    edges, facets = _graph(events)
    landing = {d for d in edges if _layer(d, facets) == "landing" and f"/{DAY.isoformat()}/" in d[1]}
    by_source = {source: [d for d in landing if f"/landing/{source}/" in d[1]] for source in ("shop", "weblogs", "email")}
    assert all(by_source.values()), by_source
    for files in by_source.values():
        path = _path(edges, facets, sorted(files)[0])
        assert path, f"no path landing -> raw -> staging -> marts -> published -> exposure from {files[0]}"
        assert path[-1][1].endswith(".csv") and "/outbox/" in path[-1][1]
    # a load's files lead to their own table, not to every table the load wrote
    orders = next(d for d in by_source["shop"] if d[1].endswith("/orders.csv"))
    assert {name.split(".", 1)[1] for _, name in edges[orders]} == {
        "raw.orders", "raw.order_status_history", "quarantine.rejected_rows"}


@pytest.mark.slow
def test_airflow_dbt_and_ecrm_name_each_table_once(day_events):
    url, events = day_events
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    database = parts.path.lstrip("/")
    tables = {(d["namespace"], d["name"]) for e in events for d in _datasets(e) if d["namespace"] != "file"}
    assert {ns for ns, _ in tables} == {f"postgres://{parts.hostname}:{parts.port}"}
    names = defaultdict(set)
    for _, name in tables:
        db, schema, table = name.split(".")
        assert db == database and name == name.lower(), name
        names[(schema, table)].add(name)
    assert all(len(v) == 1 for v in names.values())
    # the datasets meet: raw tables the loads write are the ones dbt reads; what dbt builds is what publish reads
    by_producer = defaultdict(lambda: {"in": set(), "out": set()})
    for e in events:
        producer = "dbt" if "OpenLineage" in e["producer"] else "ecrm" if e["producer"].startswith("urn:ecrm") else "airflow"
        by_producer[producer]["in"] |= {(d["namespace"], d["name"]) for d in e.get("inputs", [])}
        by_producer[producer]["out"] |= {(d["namespace"], d["name"]) for d in e.get("outputs", [])}
    raw_written = {d for d in by_producer["ecrm"]["out"] if ".raw." in d[1]}
    assert {"raw.orders", "raw.web_requests", "raw.email_events"} <= {d[1].split(".", 1)[1] for d in
                                                                     raw_written & by_producer["dbt"]["in"]}
    assert {f"{database}.sync.sync_audience_members", f"{database}.marts.fct_customer_rfm_daily"} <= {
        d[1] for d in by_producer["dbt"]["out"] & by_producer["ecrm"]["in"]}
    files = [d["name"] for e in events for d in _datasets(e) if d["namespace"] == "file"]
    assert all(os.path.isabs(name) for name in files)


def test_a_job_reports_its_datasets_its_parent_and_its_failure(tmp_path, monkeypatch):
    from ecrm import lineage

    log = tmp_path / "events.jsonl"
    for key in [k for k in os.environ if k.startswith(("OPENLINEAGE", "AIRFLOW__OPENLINEAGE"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(log))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    monkeypatch.setenv("OPENLINEAGE_PARENT_ID", "scheduler/nightly.load/0191f3a0-0000-7000-8000-000000000001")
    url = "postgresql://loader:secret@Warehouse.example:6543/shopdw"
    with lineage.job("ecrm.test_job") as run:
        run.read(lineage.file(tmp_path / "in.csv"))
        run.wrote(lineage.table(url, "raw.orders"))
    with pytest.raises(ValueError), lineage.job("ecrm.test_failing"):
        raise ValueError("a broken file")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("ecrm.test_job", "START"), ("ecrm.test_job", "COMPLETE"),
        ("ecrm.test_failing", "START"), ("ecrm.test_failing", "FAIL")]
    done = events[1]
    assert [(d["namespace"], d["name"]) for d in done["inputs"]] == [("file", str(tmp_path / "in.csv"))]
    assert [(d["namespace"], d["name"]) for d in done["outputs"]] == [("postgres://warehouse.example:6543",
                                                                       "shopdw.raw.orders")]
    assert "secret" not in log.read_text() and "loader" not in log.read_text()
    parent = done["run"]["facets"]["parent"]["job"]
    assert (parent["namespace"], parent["name"]) == ("scheduler", "nightly.load")
    assert "a broken file" in events[3]["run"]["facets"]["errorMessage"]["message"]


def test_nothing_configured_emits_nothing_and_imports_nothing(tmp_path):
    code = ("import sys; from ecrm import lineage, transform; import ecrm.load.ingest, ecrm.pipeline\n"
            "with lineage.job('ecrm.x') as run:\n    assert not run\n"
            "assert lineage.dbt_run('dbt_project', ['build']) is None\n"
            "assert not [m for m in sys.modules if m.startswith('openlineage')], 'openlineage imported'\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
