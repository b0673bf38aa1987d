# The Airflow image with the ecrm package and its pinned dependencies (used by docker-compose.yml).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:0 requirements.lock pyproject.toml README.md /opt/ecrm/
COPY --chown=airflow:0 src /opt/ecrm/src
RUN pip install --no-cache-dir -r /opt/ecrm/requirements.lock && pip install --no-cache-dir --no-deps -e /opt/ecrm
