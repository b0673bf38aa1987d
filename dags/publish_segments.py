"""Daily quality gate, then publish the audited audiences, push them to the mailer (on a failed gate: the day's compliance removals only), and write the report."""

from airflow.sdk import dag, task

from ecrm.orchestration import (
    ASSETS,
    DAILY,
    DEFAULT_ARGS,
    PUSH_RETRIES,
    START_DATE,
    StagesDoneSensor,
    compliance_push_task,
    migrate_task,
    record_interval,
    warehouse_url,
)


@dag(schedule=DAILY, start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS, max_active_runs=1,
     tags=["ecrm", "publish"], doc_md=__doc__)
def publish_segments():
    def marts_built():  # waits in the triggerer, not in a worker slot, and wakes within seconds
        return StagesDoneSensor(task_id="marts_built", stages=["build_marts", "predict"])

    @task(retries=0)  # a failed gate must not be retried into success: the data, not the machine, is wrong
    def gate(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        from ecrm.pipeline import gate_segments
        return gate_segments(data_interval_start, data_interval_end, run_id, warehouse_url())

    @task(outlets=[ASSETS["published"]])  # refuses if a build ran after the gate: rerun the gate then
    def publish(data_interval_start=None, data_interval_end=None, run_id=None, outlet_events=None) -> dict:
        from ecrm.pipeline import publish_audited
        summary = publish_audited(data_interval_start, data_interval_end, run_id, warehouse_url())
        return record_interval(outlet_events, ASSETS["published"], data_interval_start, data_interval_end, summary)

    @task(retries=PUSH_RETRIES)  # resumable (sends only what is unconfirmed): one retry more; backoff of
    def push(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:  # DEFAULT_ARGS
        from ecrm.pipeline import push_published
        return push_published(data_interval_start, data_interval_end, run_id, warehouse_url())

    @task(retries=min(1, DEFAULT_ARGS["retries"]))  # only reads; its failure leaves publish and push be
    def report(data_interval_start=None) -> dict:
        from ecrm.report import write_report
        return write_report(data_interval_start.date(), warehouse_url())

    migrate_task() >> marts_built() >> (audited := gate()) >> publish() >> [push(), report(), compliance_push_task(audited)]


publish_segments()
