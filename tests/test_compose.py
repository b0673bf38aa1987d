"""docker-compose.yml cannot run here (no Docker engine): check its shape instead."""

from __future__ import annotations

import re

import yaml

from conftest import ROOT


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_healthchecks():
    services = _compose()["services"]
    expected = {"warehouse", "airflow-db", "airflow-init", "airflow-api-server", "airflow-scheduler",
                "airflow-dag-processor", "airflow-triggerer"}
    assert expected <= set(services)
    for name in expected - {"airflow-init"}:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert services["warehouse"]["image"] != services["airflow-db"].get("build"), "warehouse and metadata DB are separate"


def test_airflow_services_mount_project_and_get_connections_from_env():
    services = _compose()["services"]
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        service = services[name]
        mounts = " ".join(service["volumes"])
        for folder in ("./dags", "./dbt_project", "./expectations"):
            assert folder in mounts, f"{name} does not mount {folder}"
        env = service["environment"]
        assert "AIRFLOW_CONN_ECRM_WAREHOUSE" in env
        assert service["env_file"] == ".env"


def test_no_secrets_in_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    for match in re.finditer(r"(PASSWORD|SECRET)[A-Z_]*:\s*(\S+)", text):
        assert match.group(2).startswith("${"), f"literal secret in docker-compose.yml: {match.group(0)}"
    example = (ROOT / ".env.example").read_text()
    for var in set(re.findall(r"(?<!\$)\$\{([A-Z_]+)\}", text)):
        assert var in example, f"{var} is used by docker-compose.yml but not documented in .env.example"


def test_listmonk_profile_is_wired_to_the_mailer():
    compose = _compose()
    services = compose["services"]
    listmonk, db = services["listmonk"], services["listmonk-db"]
    assert listmonk["profiles"] == ["listmonk"] and db["profiles"] == ["listmonk"]
    assert ":latest" not in listmonk["image"] and ":" in listmonk["image"], "pin the listmonk image"
    assert listmonk["environment"]["LISTMONK_db__host"] == "listmonk-db"
    assert listmonk["depends_on"]["listmonk-db"]["condition"] == "service_healthy"
    assert "healthcheck" in listmonk and "healthcheck" in db
    assert "listmonk-db-data" in compose["volumes"]
    for name in ("warehouse", "airflow-db", "airflow-api-server", "airflow-scheduler"):
        assert "profiles" not in services[name], f"{name} must start without a profile"
        assert "listmonk" not in (services[name].get("depends_on") or {}), "default services must not need listmonk"
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        env = services[name]["environment"]
        for var in ("ECRM_MAILER", "ECRM_LISTMONK_URL", "ECRM_LISTMONK_USER", "ECRM_LISTMONK_TOKEN"):
            assert var in env, f"{name} lacks {var}"
        assert "listmonk:9000" in env["ECRM_LISTMONK_URL"]
        assert env["ECRM_LISTMONK_TOKEN"].startswith("${"), "the token comes from .env"
    example = (ROOT / ".env.example").read_text()
    for var in ("ECRM_MAILER", "ECRM_LISTMONK_TOKEN", "ECRM_MAILCHIMP_API_KEY", "ECRM_MAILER_MAX_REMOVE_SHARE"):
        assert var in example


def test_warehouse_runs_with_the_embedded_warehouse_settings():
    """The compose warehouse gets the same analytics memory settings the benchmarks were measured with."""
    from ecrm.warehouse.embedded import SERVER_SETTINGS

    command = _compose()["services"]["warehouse"]["command"]
    for name, value in SERVER_SETTINGS.items():
        assert f"-c {name}={value}" in command, f"docker-compose warehouse lacks {name}={value}"


def test_celery_profile_runs_two_workers_on_a_redis_broker():
    """`AIRFLOW_EXECUTOR=CeleryExecutor docker compose --profile celery up -d`: Redis, two or more
    workers sharing the api-server's JWT secret and execution API, the lock's working Celery."""
    compose = _compose()
    services = compose["services"]
    redis, worker = services["redis"], services["airflow-worker"]
    assert redis["profiles"] == ["celery"] and worker["profiles"] == ["celery"]
    assert ":latest" not in redis["image"] and ":" in redis["image"], "pin the redis image"
    assert "healthcheck" in redis and "healthcheck" in worker
    assert worker["command"] == "celery worker" and worker["deploy"]["replicas"] >= 2
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    mounts = " ".join(worker["volumes"])
    for folder in ("./dags", "./dbt_project", "./expectations", "./data"):
        assert folder in mounts, f"the worker does not mount {folder}"
    for name in ("airflow-worker", "airflow-scheduler", "airflow-api-server", "airflow-triggerer"):
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379/" in env["AIRFLOW__CELERY__BROKER_URL"]
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "${AIRFLOW_JWT_SECRET}", f"{name}: one JWT secret for all"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-api-server:8080/")
    for name in ("warehouse", "airflow-db", "airflow-api-server", "airflow-scheduler"):
        assert "redis" not in (services[name].get("depends_on") or {}), "default services must not need redis"
    assert "AIRFLOW_EXECUTOR" in (ROOT / ".env.example").read_text()
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    # celery 5.7.0 breaks the scheduler ("cannot import name 'retry' from 'celery.backends.database'")
    assert "celery==5.6.3" in lock and "apache-airflow-providers-celery==3.26.0" in lock
    assert any(line.startswith("redis==") for line in lock)


def test_image_holds_what_a_worker_reads():
    """A pod or a remote worker gets no checkout: the image must carry the DAGs, the dbt project and
    the GX suites, and point ECRM_HOME and the DAGs folder at them (docs/scaling.md)."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    copied = {parts[-2] for parts in (line.split() for line in lines) if parts and parts[0] == "COPY"}
    for folder in ("src", "dags", "dbt_project", "expectations"):
        assert folder in copied, f"the image does not COPY {folder}/"
        assert (ROOT / folder).is_dir()
    env = " ".join(line for line in lines if line.startswith(("ENV", "    ")))
    assert "ECRM_HOME=/opt/ecrm" in env and "AIRFLOW__CORE__DAGS_FOLDER=/opt/ecrm/dags" in env
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".env", "data"} <= ignored, "the build context must leave out the venv, secrets and data"
    assert not ({"dags", "dbt_project", "expectations", "src"} & ignored)
