"""One simulated day through all five DAGs (dag.test) in a process of its own, for tests/test_lineage.py.

A process of its own because Airflow registers the OpenLineage listener when it loads its plugins,
once per process, and only if a transport is configured then: the test process has long loaded them.
Usage: python tests/lineage_day.py WAREHOUSE_URL DATA_DIR AIRFLOW_HOME DAY (the transport in the environment).
Prints the DAG runs' states as JSON. The __main__ guard matters: dbt's spawned children re-import __main__.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path


def main(url: str, data: Path, home: Path, day: date) -> dict:
    os.environ.update({"ECRM_DATA_DIR": str(data), "ECRM_LANDING": str(data / "landing"),
                       "ECRM_OUTBOX": str(data / "outbox"), "ECRM_TASK_RETRIES": "0"})
    from ecrm import airflow_env
    from ecrm.pipeline import ingest_initial
    from ecrm.simulate import ShopSimulator

    airflow_env.configure(url, home=home)
    sim = ShopSimulator(landing=data / "landing", outbox=data / "outbox", truth=data / "truth", start=day,
                        customers=300, seed=11)
    sim.write_initial()
    ingest_initial(day, url=url)
    sim.write_day(day)
    dags = airflow_env.load_dags()
    states: dict[str, str] = {}
    for dag_id in airflow_env.DAG_ORDER:
        states[dag_id] = str(airflow_env.run_day(dags, dag_id, day).state)
        if states[dag_id] != "success":  # the next DAG's sensor would wait for it (up to 12 hours)
            break
    return states


if __name__ == "__main__":
    states = main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), date.fromisoformat(sys.argv[4]))
    print(json.dumps(states))
