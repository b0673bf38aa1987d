"""Daily load of the shop's customers, orders and order lines for one UTC day into raw.*.

Two modes: with an `ecrm_shop_db` connection, an incremental pull from the shop's database by
`updated_at` watermark with a lookback; without it, the day's export files in the landing zone.
"""

from airflow.sdk import dag, task

from ecrm.orchestration import DAILY, DEFAULT_ARGS, START_DATE, shop_db_url, warehouse_url


@dag(schedule=DAILY, start_date=START_DATE, catchup=False, default_args=DEFAULT_ARGS, max_active_runs=1,
     tags=["ecrm", "ingest"], doc_md=__doc__)
def ingest_orders():
    @task
    def load(data_interval_start=None, data_interval_end=None, run_id=None) -> dict:
        from ecrm.pipeline import ingest_interval, ingest_shop_db

        shop = shop_db_url()
        if shop:
            return ingest_shop_db(data_interval_start, data_interval_end, shop, run_id, warehouse_url())
        return ingest_interval("shop", data_interval_start, data_interval_end, run_id, warehouse_url())

    load()


ingest_orders()
