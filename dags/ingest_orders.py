"""Daily load of the shop's customers, orders and order lines for one UTC day into raw.*.

Two modes: with an `ecrm_shop_db` connection, an incremental pull from the shop's database by
`updated_at` watermark with a lookback; without it, the day's export files in the landing zone.
"""

from airflow.sdk import dag, task

from ecrm.orchestration import (
    ASSETS,
    DAILY,
    DEFAULT_ARGS,
    START_DATE,
    migrate_task,
    record_interval,
    shop_db_url,
    warehouse_url,
)


@dag(schedule=DAILY, start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS, max_active_runs=1,
     tags=["ecrm", "ingest"], doc_md=__doc__)
def ingest_orders():
    @task(outlets=[ASSETS["shop"]])
    def load(data_interval_start=None, data_interval_end=None, run_id=None, outlet_events=None) -> dict:
        from ecrm.pipeline import ingest_interval, ingest_shop_db

        shop = shop_db_url()
        if shop:
            summary = ingest_shop_db(data_interval_start, data_interval_end, shop, run_id, warehouse_url())
        else:
            summary = ingest_interval("shop", data_interval_start, data_interval_end, run_id, warehouse_url())
        return record_interval(outlet_events, ASSETS["shop"], data_interval_start, data_interval_end, summary)

    migrate_task() >> load()


ingest_orders()
