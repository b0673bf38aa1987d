# The Airflow image with the ecrm package, its pinned dependencies and everything a worker reads:
# the DAG files, the dbt project and the GX suites. docker-compose.yml mounts the checkout's copies
# over them (edit and rerun without a rebuild); Kubernetes pods and remote Celery workers use the
# image as it is (docs/scaling.md): one version of code, models and checks per image tag.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:0 requirements.lock pyproject.toml README.md /opt/ecrm/
RUN pip install --no-cache-dir -r /opt/ecrm/requirements.lock
COPY --chown=airflow:0 src /opt/ecrm/src
RUN pip install --no-cache-dir --no-deps -e /opt/ecrm
COPY --chown=airflow:0 dags /opt/ecrm/dags
COPY --chown=airflow:0 dbt_project /opt/ecrm/dbt_project
COPY --chown=airflow:0 expectations /opt/ecrm/expectations
ENV ECRM_HOME=/opt/ecrm \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/ecrm/dags
