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

    # A failed gate must not be retried into success: the data, not the machine, is wrong.
    @task(retries=0, outlets=[ASSETS["published"]])
    def gate_publish_push(data_interval_start=None, data_interval_end=None, run_id=None, outlet_events=None) -> dict:
        from ecrm.pipeline import publish_segments as run

        summary = run(data_interval_start, data_interval_end, run_id, warehouse_url())
        return record_interval(outlet_events, ASSETS["published"], data_interval_start, data_interval_end, summary)

    # The marketing report only reads: it runs after a successful publish, and its failure leaves the
    # publish (committed and pushed) as it is.
    @task(retries=1)
    def report(data_interval_start=None) -> dict:
        from ecrm.report import write_report

        return write_report(data_interval_start.date(), warehouse_url())

    migrate_task() >> marts_built() >> gate_publish_push() >> report()


publish_segments()
