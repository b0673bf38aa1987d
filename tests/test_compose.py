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
