"""Daily quality gate, then publish the audited audiences, push them to the mailer, and write the report."""

from datetime import timedelta

from airflow.sdk import dag, task

from ecrm.orchestration import (
    ASSETS,
    DAILY,
    DEFAULT_ARGS,
    START_DATE,
    migrate_task,
    record_interval,
    warehouse_url,
)


@dag(schedule=DAILY, start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS, max_active_runs=1,
     tags=["ecrm", "publish"], doc_md=__doc__)
def publish_segments():
    @task.sensor(poke_interval=300, timeout=timedelta(hours=12), mode="reschedule")
    def marts_built(data_interval_start=None) -> bool:
        from ecrm.pipeline import stages_done
        return stages_done(["build_marts", "predict"], data_interval_start.date(), warehouse_url())

    @task(retries=0)  # a failed gate must not be retried into success: the data, not the machine, is wrong
    def gate(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        from ecrm.pipeline import gate_segments
        return gate_segments(data_interval_start, data_interval_end, run_id, warehouse_url())

    @task(outlets=[ASSETS["published"]])  # refuses if a build ran after the gate: rerun the gate then
    def publish(data_interval_start=None, data_interval_end=None, run_id=None, outlet_events=None) -> dict:
        from ecrm.pipeline import publish_audited
        summary = publish_audited(data_interval_start, data_interval_end, run_id, warehouse_url())
        return record_interval(outlet_events, ASSETS["published"], data_interval_start, data_interval_end, summary)

    @task(retries=3, retry_delay=timedelta(minutes=2), retry_exponential_backoff=True)  # resumable: sends
    def push(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:  # only what is unconfirmed
        from ecrm.pipeline import push_published
        return push_published(data_interval_start, data_interval_end, run_id, warehouse_url())

    @task(retries=1)  # only reads; after the publish, and its failure leaves publish and push as they are
    def report(data_interval_start=None) -> dict:
        from ecrm.report import write_report
        return write_report(data_interval_start.date(), warehouse_url())

    migrate_task() >> marts_built() >> gate() >> publish() >> [push(), report()]


publish_segments()
