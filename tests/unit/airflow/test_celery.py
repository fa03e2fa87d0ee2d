"""The Celery settings seam's deployments use: Airflow's defaults, plus seam's modules preloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_a_worker_with_seams_settings_imports_the_steps_libraries_before_it_forks(tmp_path):
    """What a Celery worker does at start (`loader.init_worker`), with the setting the deployments use:
    afterwards seam's steps, Great Expectations and the models are in memory, and Airflow's own
    Celery settings are unchanged."""
    code = (
        "import json, sys\n"
        "from airflow.providers.celery.executors.celery_executor_utils import app\n"
        "from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG\n"
        "before = sorted(m for m in ('great_expectations', 'statsmodels', 'pipelines.steps') if m in sys.modules)\n"
        "app.loader.init_worker()\n"
        "after = sorted(m for m in ('great_expectations', 'statsmodels', 'pipelines.steps') if m in sys.modules)\n"
        "same = all(app.conf[k] == v for k, v in DEFAULT_CELERY_CONFIG.items() if k != 'imports')\n"
        "print(json.dumps({'before': before, 'after': after, 'defaults_kept': same}))\n"
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "pipelines.airflow.celery.CELERY_CONFIG",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {
        "before": [],
        "after": ["great_expectations", "pipelines.steps", "statsmodels"],
        "defaults_kept": True,
    }


def test_the_compose_deployment_uses_the_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "pipelines.airflow.celery.CELERY_CONFIG"
