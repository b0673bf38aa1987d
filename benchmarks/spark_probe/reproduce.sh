#!/bin/sh
# Does the dbt project run on Spark? (docs/scaling.md, "Another dbt adapter"). dbt-spark's session
# method in a venv of its own (OpenJDK 17 needed; ~630 MB; 1-3 min per dbt step, mostly JVM start-up):
# A = a copy of dbt_project unchanged but for one macro that creates the raw sources as tiny Spark
# tables and a Spark profile. Runs seed, compile and run of A, Spark's own parser over every compiled
# model (probe.py with PARSE_DIR), each PostgreSQL construct the project uses on its own
# (constructs.py) and the parse after rewriting each model's first error in turn (onion.py).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=/tmp/spark-probe
mkdir -p $DIR && cd $DIR
test -x venv/bin/python || { python3.11 -m venv venv &&
  nice -n 19 venv/bin/pip install -q 'dbt-spark[session]==1.11.0' 'pyspark==4.3.0' 'dbt-core<1.12'; }
rm -rf dbt_project && cp -r "$HERE/../../dbt_project" dbt_project && rm -rf dbt_project/target dbt_project/logs
cp "$HERE/create_raw_sources.sql" dbt_project/macros/zz_probe_create_raw_sources.sql
cp "$HERE/profiles.yml" dbt_project/profiles.yml
export PYSPARK_SUBMIT_ARGS="--master local[1] --driver-memory 1g pyspark-shell" DBT_SEND_ANONYMOUS_USAGE_STATS=false
cd $DIR
nice -n 19 venv/bin/python "$HERE/probe.py" "A|run-operation|create_raw_sources" "A|seed" "A|compile"
PARSE_DIR=$DIR/dbt_project/target/compiled/ecrm/models nice -n 19 venv/bin/python "$HERE/probe.py" "A|run"
nice -n 19 venv/bin/python "$HERE/constructs.py"
nice -n 19 venv/bin/python "$HERE/onion.py"
