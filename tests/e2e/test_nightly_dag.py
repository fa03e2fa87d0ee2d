"""End to end: the nightly DAG through Airflow itself (`dag.test()`), checked on the result tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.config import load_config
from tests.conftest import NIGHT, ROOT
from tests.helpers import check_results, dump_results

pytestmark = pytest.mark.e2e


def _run_dag(config: Path, airflow_home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
        "SEAM_CONFIG": str(config),
    }
    setup = f". {ROOT}/scripts/airflow-env.sh && {sys.executable} -m airflow db migrate"
    subprocess.run(["bash", "-c", setup], env=env, check=True, capture_output=True, timeout=300)
    return subprocess.run(
        [
            "bash",
            "-c",
            f". {ROOT}/scripts/airflow-env.sh && {sys.executable} scripts/run_dag.py --date {NIGHT}",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def _assert_success(res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert f"seam_nightly {NIGHT}: " in res.stdout and "success" in res.stdout


def test_nightly_dag_on_embedded_sqlite(demo_env, tmp_path):
    config = demo_env()
    raw = yaml.safe_load(config.read_text())
    raw["scale"] = {"shards": 2}  # forecasting and scoring as two mapped tasks each
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    res = _run_dag(config, tmp_path / "airflow")
    _assert_success(res)
    cfg = load_config(config)
    check_results(cfg)
    report = cfg.report.directory / NIGHT.isoformat() / "report.html"
    assert str(report) in res.stdout
    ledger = dump_results(cfg.sources[0].url or os.environ[cfg.source("erp").url_env])
    assert set(ledger["seam_load_batches"].table_name) == {
        "seam_forecasts",
        "seam_forecasts_hierarchy",
        "seam_anomaly_scores",
        "seam_anomaly_incidents",
        "seam_data_quality_results",
        "seam_actuals",
        "seam_forecast_accuracy",
    }
    # A first night has no archived forecast whose day has happened: its accuracy batch is empty.
    batches = ledger["seam_load_batches"].set_index("table_name")["row_count"]
    assert batches["seam_forecast_accuracy"] == 0


@pytest.mark.integration
def test_nightly_dag_on_postgres_and_mariadb(demo_env, pg_database, mariadb_database, tmp_path):
    config = demo_env(pg_database(), mariadb_database())
    _assert_success(_run_dag(config, tmp_path / "airflow"))
    check_results(load_config(config))
