"""A real distributed run: Airflow's scheduler, DAG processor, API server and two Celery workers
(Redis broker, PostgreSQL metadata) on loopback run `seam_nightly`; mapped tasks must land on both
workers and the results must equal those of a single-process run of the same night."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from pipelines.config import load_config, source_url
from pipelines.run_context import RunContext
from pipelines.steps import run_all
from scripts.local_cluster import LocalCluster
from tests.conftest import NIGHT

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


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
    """The forecasts made on NIGHT (the distributed deployment also ran two backfilled nights)."""
    engine = sa.create_engine(source_url(cfg.source("erp")))
    with engine.connect() as conn:
        df = pd.read_sql(sa.text("SELECT * FROM seam_forecasts"), conn)
    engine.dispose()
    df = df[pd.to_datetime(df["run_date"]).dt.date == NIGHT]
    assert len(df), f"no forecasts of the night {NIGHT}"
    return df.sort_values(["sku", "warehouse", "target_date"]).reset_index(drop=True)


def test_celery_run_on_two_workers_equals_the_single_process_run(demo_env, pg_database, redis_url, tmp_path):
    config = demo_env(lean=True)  # every kind of task, fewer of them: three nights on Celery
    raw = yaml.safe_load(config.read_text())
    raw["scale"] = {"shards": 2}  # forecast and score mapped twice each
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    cluster = LocalCluster(
        tmp_path / "airflow",
        meta_url=pg_database(),
        broker_url=redis_url,
        config=config,
        workers=2,
        extra_dags=(Path(__file__).with_name("asset_consumer.py"),),
    )
    with cluster:
        cluster.airflow("dags", "unpause", "asset_consumer")
        cluster.trigger("seam_nightly", str(NIGHT))
        state = cluster.wait("seam_nightly", str(NIGHT), timeout=2400)
        assert state == "success", f"run state {state}; logs: {cluster.tail()}"
        # the load's Asset scheduled the downstream DAG, which ran
        consumer = cluster.wait_any("asset_consumer", timeout=300)
        assert consumer == "success", f"asset_consumer: {consumer}; logs: {cluster.tail()}"
        # the README's backfill, as written: two earlier nights, one at a time
        earlier = [str(NIGHT - timedelta(days=2)), str(NIGHT - timedelta(days=1))]
        cluster.backfills_only()
        cluster.backfill("seam_nightly", earlier[0], earlier[1], max_active_runs=1)
        assert [cluster.wait("seam_nightly", d, timeout=2400) for d in earlier] == ["success", "success"], (
            cluster.tail()
        )
        spans = cluster.run_spans("seam_nightly", earlier)
        assert spans[0][1] <= spans[1][0], f"the backfill ran nights at once: {spans}"
        hosts = {
            (t["task_id"], t["hostname"])
            for t in cluster.task_instances("seam_nightly")
            if t["task_id"] in ("forecast", "score", "extract")
        }
    assert {h for _, h in hosts} == {"worker-a", "worker-b"}, hosts  # mapped tasks ran on both workers
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
