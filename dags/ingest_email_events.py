"""Daily load of the email service's events and campaigns for one UTC day into raw.* (quarantine and ledger in the warehouse)."""

from airflow.sdk import dag, task

from ecrm.orchestration import (
    ASSETS,
    DAILY,
    DEFAULT_ARGS,
    LOAD_PARAMS,
    START_DATE,
    migrate_task,
    record_interval,
    warehouse_url,
)


@dag(schedule=DAILY, start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS, max_active_runs=1,
     tags=["ecrm", "ingest"], doc_md=__doc__, params=LOAD_PARAMS)
def ingest_email_events():
    @task(outlets=[ASSETS["email"]])
    def load(data_interval_start=None, data_interval_end=None, run_id=None, outlet_events=None, params=None) -> dict:
        from ecrm.pipeline import ingest_interval

        summary = ingest_interval("email", data_interval_start, data_interval_end, run_id, warehouse_url(),
                                  allow_empty=bool(params and params.get("allow_empty")),
                                  allow_shrink=bool(params and params.get("allow_shrink")))
        return record_interval(outlet_events, ASSETS["email"], data_interval_start, data_interval_end, summary)

    migrate_task() >> load()


ingest_email_events()
