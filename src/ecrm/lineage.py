"""OpenLineage events for what ecrm does outside Airflow's own view: the loads, the dbt builds and the
publish and push (docs/lineage.md).

- Loads (ecrm.load.ingest): job `ecrm.ingest.<source>`, the day's landing files in, raw.* (and the
  quarantine) out.
- dbt (ecrm.transform.run_dbt): a `dbt-run-ecrm` job around every in-process invocation, then
  openlineage-dbt's DbtLocalArtifactProcessor over the invocation's manifest.json and run_results.json:
  one job per model, seed and test, each a child of that dbt run.
- Publish (ecrm.pipeline): job `ecrm.publish`, sync.* and marts.* in, published.* out; job
  `ecrm.mailer_push`, published.audience_members in, the mailer's audiences out (the outbox files or
  the ESP's lists: the dbt exposure `mailer_audience_push`).
Airflow's DAG and task runs come from apache-airflow-providers-openlineage. Inside an Airflow task,
every job here is a child of that task's run (ecrm.orchestration registers the task's run with
`set_parent_source`); elsewhere OPENLINEAGE_PARENT_ID / OPENLINEAGE_ROOT_PARENT_ID name a parent.

Dataset names follow OpenLineage's naming so Airflow's, dbt's and these events meet on the same
datasets: a table is namespace `postgres://host:port`, name `database.schema.table` (host and port as
dbt's profile gets them, ecrm.settings.dbt_env); a local file is namespace `file`, name its absolute
path; an object is namespace `s3://bucket` (or `<protocol>://<netloc>`), name its key.

Configured by the environment only, as openlineage-python reads it: OPENLINEAGE_URL (HTTP, e.g.
Marquez), OPENLINEAGE__TRANSPORT__* (any transport, e.g. a file), OPENLINEAGE_CONFIG (a YAML file),
or Airflow's AIRFLOW__OPENLINEAGE__TRANSPORT (JSON). Nothing configured: nothing is emitted and
openlineage is never imported. An emission error is logged and never fails a stage.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
PRODUCER = "urn:ecrm-warehouse:ecrm"
DEFAULT_NAMESPACE = "ecrm"


def enabled() -> bool:
    """Is a transport configured? (The same test as the Airflow provider's: nothing set, nothing sent.)"""
    env = os.environ
    if _true(env.get("OPENLINEAGE_DISABLED")) or _true(env.get("AIRFLOW__OPENLINEAGE__DISABLED")):
        return False
    if env.get("OPENLINEAGE_URL") or env.get("OPENLINEAGE_CONFIG") or env.get("AIRFLOW__OPENLINEAGE__TRANSPORT") \
            or env.get("AIRFLOW__OPENLINEAGE__CONFIG_PATH"):
        return True
    return any(key.startswith("OPENLINEAGE__TRANSPORT") and value for key, value in env.items())


def _true(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("true", "1", "t", "yes")


def job_namespace() -> str:
    """The namespace of ecrm's jobs: OPENLINEAGE_NAMESPACE (which Airflow's provider reads too), else `ecrm`."""
    return (os.environ.get("OPENLINEAGE_NAMESPACE") or os.environ.get("AIRFLOW__OPENLINEAGE__NAMESPACE")
            or DEFAULT_NAMESPACE)


_clients: dict[tuple, object] = {}


def _client():
    """One OpenLineageClient per configuration (the environment may change between tests)."""
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("OPENLINEAGE", "AIRFLOW__OPENLINEAGE"))))
    if key not in _clients:
        from openlineage.client import OpenLineageClient

        airflow_transport = os.environ.get("AIRFLOW__OPENLINEAGE__TRANSPORT")
        config_path = os.environ.get("AIRFLOW__OPENLINEAGE__CONFIG_PATH")
        if airflow_transport and not _openlineage_env_configured():
            _clients[key] = OpenLineageClient(config={"transport": json.loads(airflow_transport)})
        elif config_path and not _openlineage_env_configured():
            import yaml

            with open(config_path) as f:
                _clients[key] = OpenLineageClient(config=yaml.safe_load(f))
        else:
            _clients[key] = OpenLineageClient()
    return _clients[key]


def _openlineage_env_configured() -> bool:
    env = os.environ
    return bool(env.get("OPENLINEAGE_URL") or env.get("OPENLINEAGE_CONFIG")
                or any(k.startswith("OPENLINEAGE__TRANSPORT") and v for k, v in env.items()))


def emit(event) -> None:
    """Send one event; a transport error is logged, never raised (lineage must not stop a day)."""
    try:
        _client().emit(event)
    except Exception as exc:  # noqa: BLE001 -- any transport failure
        log.warning("OpenLineage: could not emit %s of %s: %s", getattr(event, "eventType", "?"),
                    getattr(getattr(event, "job", None), "name", "?"), exc)


# --- the parent run: the Airflow task this runs in, when there is one ---------------------------------

@dataclass(frozen=True)
class Parent:
    namespace: str
    job: str
    run_id: str
    root_namespace: str | None = None
    root_job: str | None = None
    root_run_id: str | None = None

    def metadata(self):
        """openlineage-dbt's ParentRunMetadata (the parent facet of a dbt run's events)."""
        from openlineage.common.provider.dbt.facets import ParentRunMetadata

        return ParentRunMetadata(run_id=self.run_id, job_name=self.job, job_namespace=self.namespace,
                                 root_parent_run_id=self.root_run_id or self.run_id,
                                 root_parent_job_name=self.root_job or self.job,
                                 root_parent_job_namespace=self.root_namespace or self.namespace)


_parent_source: Callable[[], Parent | None] | None = None


def set_parent_source(source: Callable[[], Parent | None] | None) -> None:
    """Register how to find the run this process works for (ecrm.orchestration: the Airflow task's run)."""
    global _parent_source
    _parent_source = source


def current_parent() -> Parent | None:
    """The Airflow task run when inside one, else OPENLINEAGE_PARENT_ID (`namespace/job/run_id`, with
    OPENLINEAGE_ROOT_PARENT_ID alike), else None."""
    if _parent_source is not None:
        try:
            parent = _parent_source()
        except Exception as exc:  # noqa: BLE001 -- a parent we cannot name must not stop the stage
            log.warning("OpenLineage: could not name the parent run: %s", exc)
            parent = None
        if parent is not None:
            return parent
    parts = (os.environ.get("OPENLINEAGE_PARENT_ID") or "").split("/")
    if len(parts) != 3:
        return None
    root = (os.environ.get("OPENLINEAGE_ROOT_PARENT_ID") or "").split("/")
    return Parent(*parts, *(root if len(root) == 3 else (None, None, None)))


# --- dataset names --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dataset:
    namespace: str
    name: str
    facets: dict = field(default_factory=dict, compare=False, hash=False)


def warehouse_namespace(url: str) -> tuple[str, str]:
    """(`postgres://host:port`, database) of a warehouse URL, as dbt's profile gets them (settings.dbt_env)."""
    from .settings import dbt_env

    env = dbt_env(url)
    return f"postgres://{env['ECRM_PG_HOST']}:{env['ECRM_PG_PORT']}", env["ECRM_PG_DATABASE"]


def conn_url(conn) -> str:
    """A URL naming the server and database of a psycopg connection (no credentials)."""
    info = conn.info
    return f"postgresql://{info.host}:{info.port}/{info.dbname}"


def table(url: str, relation: str) -> Dataset:
    """The dataset of `schema.table` in the warehouse at `url`: postgres://host:port, db.schema.table."""
    namespace, database = warehouse_namespace(url)
    return Dataset(namespace, f"{database}.{relation}".lower())


def file(path) -> Dataset:
    """The dataset of a file: namespace `file` and its absolute path, or `<protocol>://<bucket>` and its key."""
    text = str(path)
    protocol = getattr(path, "protocol", "") or ""
    if isinstance(protocol, tuple | list):
        protocol = protocol[0] if protocol else ""
    if protocol in ("", "file", "local"):
        local = getattr(path, "path", text)
        return Dataset("file", os.path.abspath(local.removeprefix("file://")))
    parts = urlsplit(text)
    return Dataset(f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/"))


# --- a job run ------------------------------------------------------------------------------------

class JobRun:
    """The run of one ecrm job: add its inputs and outputs, the context manager emits them."""

    def __init__(self, name: str, description: str | None = None):
        from openlineage.client.uuid import generate_new_uuid

        self.name, self.description = name, description
        self.run_id = str(generate_new_uuid())
        self.parent = current_parent()
        self.inputs: list[Dataset] = []
        self.outputs: list[Dataset] = []
        self.facets: dict = {}

    def __bool__(self) -> bool:
        return True

    def as_parent(self) -> Parent:
        root = self.parent
        return Parent(job_namespace(), self.name, self.run_id,
                      (root.root_namespace or root.namespace) if root else job_namespace(),
                      (root.root_job or root.job) if root else self.name,
                      (root.root_run_id or root.run_id) if root else self.run_id)

    def child(self, name: str, inputs: list[Dataset], outputs: list[Dataset], description: str | None = None) -> None:
        """Emit a finished child job of this run (START and COMPLETE) with its own inputs and outputs: what
        one part of the job read and wrote, where the job's own lists would pair every input with every output."""
        child = JobRun(name, description)
        child.parent = self.as_parent()
        child.read(*inputs)
        child.wrote(*outputs)
        emit(child.event("START"))
        emit(child.event("COMPLETE"))

    def read(self, *datasets: Dataset) -> None:
        self.inputs.extend(d for d in datasets if d not in self.inputs)

    def wrote(self, *datasets: Dataset) -> None:
        self.outputs.extend(d for d in datasets if d not in self.outputs)

    def event(self, state: str, error: BaseException | None = None):
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import documentation_job, error_message_run, job_type_job, parent_run

        run_facets: dict = {}
        if self.parent:
            root = None
            if self.parent.root_run_id:
                root = parent_run.Root(run=parent_run.RootRun(runId=self.parent.root_run_id),
                                       job=parent_run.RootJob(namespace=self.parent.root_namespace,
                                                              name=self.parent.root_job))
            run_facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=self.parent.run_id),
                job=parent_run.Job(namespace=self.parent.namespace, name=self.parent.job), root=root)
        if error is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{type(error).__name__}: {error}"[:2000], programmingLanguage="python")
        job_facets: dict = {"jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="ECRM",
                                                                    jobType="TASK")}
        if self.description:
            job_facets["documentation"] = documentation_job.DocumentationJobFacet(description=self.description)
        done = state != "START"
        return RunEvent(
            eventType=getattr(RunState, state), eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(namespace=job_namespace(), name=self.name, facets=job_facets),
            inputs=[InputDataset(d.namespace, d.name, facets=d.facets) for d in self.inputs] if done else [],
            outputs=[OutputDataset(d.namespace, d.name, facets=d.facets) for d in self.outputs] if done else [],
            producer=PRODUCER)


class _NoRun:
    """What `job` yields when nothing is configured: accepts everything, emits nothing."""

    parent = None

    def __bool__(self) -> bool:
        return False

    def read(self, *datasets) -> None:
        pass

    def wrote(self, *datasets) -> None:
        pass

    def child(self, *args, **kwargs) -> None:
        pass


@contextmanager
def job(name: str, description: str | None = None) -> Iterator[JobRun | _NoRun]:
    """START when the body begins, COMPLETE (with the inputs and outputs the body added) or FAIL (with the
    error) when it ends. Yields a falsy no-op when no transport is configured: `if run:` skips the work
    of naming datasets."""
    if not enabled():
        yield _NoRun()
        return
    run = JobRun(name, description)
    emit(run.event("START"))
    try:
        yield run
    except BaseException as exc:
        emit(run.event("FAIL", exc))
        raise
    emit(run.event("COMPLETE"))


# --- dbt ------------------------------------------------------------------------------------------

DBT_COMMANDS = ("build", "run", "seed", "snapshot", "test")


class DbtRun:
    """One in-process dbt invocation's lineage: START of job `dbt-run-<project>` before dbt runs, then
    openlineage-dbt's events of every node from the invocation's artifacts, then COMPLETE or FAIL."""

    def __init__(self, project_dir, args: list[str]):
        from openlineage.common.provider.dbt.facets import ParentRunMetadata
        from openlineage.common.provider.dbt.local import DbtLocalArtifactProcessor
        from openlineage.dbt import PRODUCER as DBT_PRODUCER
        from openlineage.dbt import dbt_run_event_start

        self.started = datetime.now(UTC).timestamp()
        self.parent = current_parent()
        parent_meta = self.parent.metadata() if self.parent else None
        self.processor = DbtLocalArtifactProcessor(producer=DBT_PRODUCER, job_namespace=job_namespace(),
                                                   project_dir=str(project_dir), dbt_command_line=args,
                                                   logger=logging.getLogger("openlineage.dbt"))
        self.start = dbt_run_event_start(job_name=self.processor.job_name, job_namespace=job_namespace(),
                                         parent_run_metadata=parent_meta)
        root = parent_meta or self.start
        self.processor.dbt_run_metadata = ParentRunMetadata(
            run_id=self.start.run.runId, job_name=self.start.job.name, job_namespace=self.start.job.namespace,
            root_parent_run_id=getattr(root, "root_parent_run_id", None) or self.start.run.runId,
            root_parent_job_name=getattr(root, "root_parent_job_name", None) or self.start.job.name,
            root_parent_job_namespace=getattr(root, "root_parent_job_namespace", None) or self.start.job.namespace)
        emit(self.start)

    def finish(self, success: bool) -> int:
        """Emit the nodes' events (when dbt wrote run_results.json in this invocation) and the end of
        the run; call it with dbt's environment still set (profiles.yml reads env_var()). Returns how
        many events were emitted."""
        from openlineage.dbt import dbt_run_event_end, dbt_run_event_failed

        events: list = []
        try:
            if os.stat(self.processor.run_result_path).st_mtime >= self.started - 1:
                events = self.processor.parse().events()
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001 -- unreadable artifacts must not fail the build
            log.warning("OpenLineage: could not read dbt's artifacts: %s", exc)
        meta = self.processor.dbt_run_metadata
        parent_meta = self.parent.metadata() if self.parent else None
        end = (dbt_run_event_end if success else dbt_run_event_failed)(
            run_id=meta.run_id, job_namespace=meta.job_namespace, job_name=meta.job_name,
            parent_run_metadata=parent_meta)
        for event in [*events, end]:
            emit(event)
        return len(events) + 1


def dbt_run(project_dir, args: list[str]) -> DbtRun | None:
    """A DbtRun for this invocation, or None when nothing is configured or the command makes no lineage."""
    if not enabled() or not args or args[0] not in DBT_COMMANDS:
        return None
    try:
        return DbtRun(project_dir, args)
    except Exception as exc:  # noqa: BLE001
        log.warning("OpenLineage: dbt lineage is off for this invocation: %s", exc)
        return None
