"""Daily dbt build (staging, marts, sync audiences, tests) as of the run's day, once its loads are in,
with the lifetime-value forecast (ecrm.predict) between the models it reads and those that read it."""

from airflow.sdk import dag, task

from ecrm.orchestration import (
    ASSETS,
    DAILY,
    DEFAULT_ARGS,
    INGEST_STAGES,
    START_DATE,
    StagesDoneSensor,
    migrate_task,
    record_interval,
    warehouse_url,
)


@dag(schedule=DAILY, start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS, max_active_runs=1,
     tags=["ecrm", "dbt"], doc_md=__doc__)
def build_marts():
    def loads_done():  # waits in the triggerer, not in a worker slot, and wakes within seconds
        return StagesDoneSensor(task_id="loads_done", stages=INGEST_STAGES)

    # One task: dbt build, forecast, dbt build of what reads the forecast, under one build lock (a
    # build of another day in between would change the tables the forecast reads; docs/decisions.md).
    @task(outlets=[ASSETS["marts"]])
    def dbt_build_and_forecast(data_interval_start=None, data_interval_end=None, run_id=None,
                               outlet_events=None) -> dict:
        from ecrm.pipeline import build_marts as build

        summary = build(data_interval_start, data_interval_end, run_id, warehouse_url())
        return record_interval(outlet_events, ASSETS["marts"], data_interval_start, data_interval_end, summary)

    migrate_task() >> loads_done() >> dbt_build_and_forecast()


build_marts()
