"""The production compose file: services, health checks, volumes, and no secrets in the file.

No Docker engine runs on the development machines, so the file is checked by parsing it; where the
`docker compose` plugin exists, `docker compose config` validates it too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipelines.config import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
LONG_RUNNING = [
    "airflow-db",
    "redis",
    "erp-db",
    "crm-db",
    "mailcatcher",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
]
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def test_the_airflow_components_and_their_backing_services_are_there():
    assert set(LONG_RUNNING) | {"airflow-init", "seed-demo"} == set(SERVICES)
    commands = {s: SERVICES[s].get("command") for s in SERVICES}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"] == "celery worker"
    assert "container_name" not in SERVICES["airflow-worker"]  # so that --scale airflow-worker=N works
    assert "seam generate" in " ".join(SERVICES["seed-demo"]["command"])


def test_image_is_built_from_the_official_airflow_image_with_the_lock_file():
    assert SERVICES["airflow-worker"]["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.\d+-python3\.11$", dockerfile, re.M)
    assert "-c constraints.txt" in dockerfile


def test_executor_broker_and_metadata_database():
    env = _env("airflow-worker")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
    assert "@airflow-db/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_every_long_running_service_has_a_health_check(service):
    check = SERVICES[service].get("healthcheck")
    assert check and check["test"] and check.get("interval")


def test_named_volumes_for_lake_logs_and_databases():
    assert {"seam-lake", "airflow-logs", "airflow-db", "erp-db", "crm-db"} <= set(COMPOSE["volumes"])
    mounts = SERVICES["airflow-worker"]["volumes"]
    assert "seam-lake:/opt/seam/data" in mounts and "airflow-logs:/opt/airflow/logs" in mounts
    cfg = load_config(ROOT / "config" / "compose.yml")
    assert str(cfg.lake).startswith("/opt/seam/data")


def test_every_connection_the_config_uses_is_defined():
    cfg = load_config(ROOT / "config" / "compose.yml")
    env = _env("airflow-worker")
    for source in cfg.sources:
        assert source.conn_id, f"{source.name} should use an Airflow connection in compose"
        assert f"AIRFLOW_CONN_{source.conn_id.upper()}" in env


def test_no_secret_literal_in_the_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    # every password in a URL is a ${VARIABLE} (or $${VAR} expanded inside the container)
    for user_pass in re.findall(r"://[^:/@\s]+:([^@\s]+)@", text):
        assert user_pass.startswith("${") or user_pass.startswith("$${"), user_pass
    for service in SERVICES:
        for key, value in _env(service).items():
            if re.search(r"PASSWORD|SECRET|FERNET", key):
                assert value.startswith("${"), f"{service}.{key} must come from .env"
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", text))  # $${X} is expanded in the container
    assert used <= set(ENV_EXAMPLE), f"not in .env.example: {sorted(used - set(ENV_EXAMPLE))}"


def test_docker_compose_config_accepts_the_file(tmp_path):
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here; the file was checked by parsing it")
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    res = subprocess.run(
        [
            docker,
            "compose",
            "--env-file",
            str(env),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
