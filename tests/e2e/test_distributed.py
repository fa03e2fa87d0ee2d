"""A real distributed run: Airflow's scheduler, DAG processor, API server and two Celery workers
(Redis broker, PostgreSQL metadata) on loopback run `seam_nightly`; mapped tasks must land on both
workers and the results must equal those of a single-process run of the same night."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from pipelines.config import load_config, source_url
from pipelines.steps import RunContext, run_all
from tests.conftest import NIGHT, ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("SEAM_TEST_REDIS_URL")
    if not url:
        message = (
            "SEAM_TEST_REDIS_URL is not set: no Redis broker for the Celery test (run scripts/services.sh)"
        )
        if os.environ.get("SEAM_REQUIRE_SERVICES") == "1":
            pytest.fail(f"SEAM_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    return url


def _forecasts(cfg) -> pd.DataFrame:
    engine = sa.create_engine(source_url(cfg.source("erp")))
    with engine.connect() as conn:
        df = pd.read_sql(sa.text("SELECT * FROM seam_forecasts"), conn)
    engine.dispose()
    return df.sort_values(["sku", "warehouse", "target_date"]).reset_index(drop=True)


def test_celery_run_on_two_workers_equals_the_single_process_run(demo_env, pg_database, redis_url, tmp_path):
    config = demo_env()
    raw = yaml.safe_load(config.read_text())
    raw["scale"] = {"shards": 4}
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    meta = make_url(pg_database()).set(drivername="postgresql+psycopg")
    meta_url = meta.render_as_string(hide_password=False)
    port = _free_port()
    home = tmp_path / "airflow"
    home.mkdir()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": meta.set(
            drivername="postgresql+psycopg_async"
        ).render_as_string(hide_password=False),
        "AIRFLOW__CELERY__BROKER_URL": redis_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "SEAM_CONFIG": str(config),
        "SEAM_NIGHTLY_SCHEDULE": "none",  # only the triggered night runs, no scheduled one beside it
        "PYTHONPATH": str(ROOT),
    }
    airflow = [sys.executable, "-m", "airflow"]

    def run(*args: str) -> str:
        res = subprocess.run([*airflow, *args], env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, f"airflow {' '.join(args)}: {res.stderr[-2000:]}"
        return res.stdout

    run("db", "migrate")
    run("pools", "set", "source_databases", "4", "source connections")
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []

    def start(name: str, *args: str, extra: dict[str, str] | None = None) -> None:
        out = (logs / f"{name}.log").open("w")
        procs.append(
            subprocess.Popen(
                [*airflow, *args],
                env={**env, **(extra or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    try:
        start("api-server", "api-server", "--port", str(port))
        start("scheduler", "scheduler")
        start("dag-processor", "dag-processor")
        for w in ("worker-a", "worker-b"):
            start(
                w,
                "celery",
                "worker",
                "--concurrency",
                "2",
                "-H",
                f"{w}@%h",
                extra={
                    "SEAM_WORKER_NAME": w,
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.worker_identity.hostname",
                },
            )
        deadline = time.monotonic() + 240
        while "seam_nightly" not in run("dags", "list", "-o", "plain"):
            assert time.monotonic() < deadline, "the DAG processor did not parse seam_nightly in time"
            time.sleep(5)
        run("dags", "unpause", "seam_nightly")
        run("dags", "trigger", "seam_nightly", "--logical-date", f"{NIGHT}T00:00:00+00:00")
        deadline = time.monotonic() + 900
        state = None
        engine = sa.create_engine(meta_url)
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                state = conn.exec_driver_sql(
                    "SELECT state FROM dag_run WHERE dag_id = 'seam_nightly' AND logical_date = %(d)s",
                    {"d": f"{NIGHT}T00:00:00+00:00"},
                ).scalar()
            if state in ("success", "failed"):
                break
            time.sleep(10)
        engine.dispose()
        tail = {p.name: p.read_text()[-1500:] for p in logs.iterdir()}
        assert state == "success", f"run state {state}; logs: {tail}"
        engine = sa.create_engine(meta_url)
        with engine.connect() as conn:
            hosts = conn.exec_driver_sql(
                "SELECT task_id, hostname FROM task_instance WHERE task_id IN ('forecast', 'score', 'extract')"
            ).all()
        engine.dispose()
        assert {h for _, h in hosts} == {"worker-a", "worker-b"}, hosts  # mapped tasks ran on both workers
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    distributed = _forecasts(load_config(config))

    # the same night in one process, on a fresh copy of the same demo
    single_cfg = load_config(_single_copy(config, tmp_path))
    run_all(single_cfg, RunContext(NIGHT))
    single = _forecasts(single_cfg)
    cols = [c for c in distributed.columns if c not in ("model_version",)]
    pd.testing.assert_frame_equal(distributed[cols], single[cols], check_dtype=False)


def _single_copy(config: Path, tmp_path: Path) -> Path:
    """A second demo with its own databases and lake, for the single-process run."""
    from pipelines.demo import generate
    from tests.conftest import SMALL

    base = tmp_path / "single"
    base.mkdir()
    erp, crm = f"sqlite:///{base / 'erp.db'}", f"sqlite:///{base / 'crm.db'}"
    generate(erp, crm, SMALL)
    raw = yaml.safe_load(config.read_text())
    raw["lake"] = str(base / "lake")
    raw["report"] = {"directory": str(base / "reports")}
    for name, url in (("erp", erp), ("crm", crm)):
        raw["sources"][name].pop("url_env", None)
        raw["sources"][name]["url"] = url
    path = base / "seam.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
