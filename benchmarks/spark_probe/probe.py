"""One process, one SparkSession (dbt-spark session method is in-process): every dbt command via dbtRunner."""

import json
import os
import sys
import time

from dbt.cli.main import dbtRunner

A = "/tmp/spark-probe/dbt_project"
VARS = '{run_date: "2026-06-03"}'
steps = [s.split("|") for s in sys.argv[1:]]  # e.g. A|run-operation|create_raw_sources
out = {}
r = dbtRunner()
for proj, *args in steps:
    d = A
    t = time.time()
    res = r.invoke(args + ["--project-dir", d, "--profiles-dir", d, "--vars", VARS])
    rows = []
    try:
        for x in res.result.results:
            rows.append({"node": x.node.unique_id, "status": str(x.status), "msg": (x.message or "")[:400]})
    except Exception as e:
        rows.append({"error": repr(res.exception)[:600] if res.exception else repr(e)[:300]})
    key = f"{proj} {' '.join(args)}"
    out[key] = {"success": res.success, "secs": round(time.time() - t, 1), "results": rows}
    print(f"=== {key}: success={res.success} {out[key]['secs']}s", flush=True)
    json.dump(out, open(f"/tmp/spark-probe/results_{os.getpid()}.json", "w"), indent=1)

# PARSE: Spark's own SQL parser on every compiled model (no tables needed)
if os.environ.get("PARSE_DIR"):
    import glob

    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
    parser = spark._jsparkSession.sessionState().sqlParser()
    pres = {}
    for f in sorted(glob.glob(os.environ["PARSE_DIR"] + "/**/*.sql", recursive=True)):
        name = os.path.basename(f)[:-4]
        sql = open(f).read()
        try:
            parser.parsePlan(sql)
            pres[name] = "ok"
        except Exception as e:
            m = str(e)
            i = m.find("[")
            pres[name] = m[i : i + 300] if i >= 0 else m[:300]
    json.dump(pres, open("/tmp/spark-probe/parse_results.json", "w"), indent=1)
    print("=== PARSE", sum(v == "ok" for v in pres.values()), "/", len(pres), flush=True)
