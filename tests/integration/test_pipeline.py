"""The nightly steps end to end without a scheduler, on SQLite and on real PostgreSQL + MariaDB."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.config import load_config, source_url
from pipelines.errors import ConfigError, SourceUnavailableError
from pipelines.steps import RunContext, run_all, run_extract
from tests.conftest import NIGHT
from tests.helpers import check_results, dump_results


def _run_twice_identical(config_path) -> None:
    cfg = load_config(config_path)
    report = run_all(cfg, RunContext(NIGHT))
    assert report.is_file() and "Top anomalies" in report.read_text()
    check_results(cfg)
    first = (dump_results(source_url(cfg.source("erp"))), dump_results(source_url(cfg.source("crm"))))
    run_all(cfg, RunContext(NIGHT, attempt=2))
    second = (dump_results(source_url(cfg.source("erp"))), dump_results(source_url(cfg.source("crm"))))
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for t in a:
            pd.testing.assert_frame_equal(a[t], b[t], check_dtype=False)


def test_sqlite_run_twice_gives_identical_results(demo_env):
    _run_twice_identical(demo_env())


@pytest.mark.integration
def test_postgres_erp_and_mariadb_crm(demo_env, pg_database, mariadb_database):
    _run_twice_identical(demo_env(pg_database(), mariadb_database()))


def test_missing_table_is_a_clear_error_and_writes_nothing(demo_env, tmp_path):
    path = demo_env()
    text = path.read_text().replace("table: products", "table: produkts")
    path.write_text(text)
    cfg = load_config(path)
    with pytest.raises(ConfigError, match="table 'produkts' does not exist in source 'erp'"):
        run_extract(cfg, RunContext(NIGHT), source="erp", table="products")
    assert not (cfg.lake / "erp" / "products").exists() or not any((cfg.lake / "erp" / "products").iterdir())


def test_unreachable_database_is_retryable_and_hides_the_password(demo_env, monkeypatch):
    cfg = load_config(demo_env())
    env = cfg.source("crm").url_env
    monkeypatch.setenv(env, "postgresql+psycopg://seam:s3cr3t-pw@127.0.0.1:1/crm")
    with pytest.raises(SourceUnavailableError) as err:
        run_extract(cfg, RunContext(NIGHT), source="crm")
    assert "s3cr3t-pw" not in str(err.value) and "cannot connect" in str(err.value)
    assert not (cfg.lake / "crm").exists()


def test_forecast_archive_and_accuracy_by_lag(demo_env):
    cfg = load_config(demo_env())
    before = NIGHT - pd.Timedelta(days=1)
    for night in (before, NIGHT):
        run_all(cfg, RunContext(night))
    engine = sa.create_engine(source_url(cfg.source("erp")))
    with engine.connect() as conn:
        nights = (
            conn.exec_driver_sql("SELECT DISTINCT run_date FROM seam_forecasts ORDER BY 1").scalars().all()
        )
        acc = pd.read_sql(sa.text("SELECT * FROM seam_v_forecast_accuracy"), conn)
        actual = conn.exec_driver_sql(f"SELECT sum(actual) FROM seam_actuals WHERE ds = '{NIGHT}'").scalar()
    engine.dispose()
    assert [str(n)[:10] for n in nights] == [str(before), str(NIGHT)]  # every night is kept
    lag1 = acc[acc["lag_days"] == 1]
    assert len(lag1) == 1 and lag1["wape"].iloc[0] >= 0 and actual > 0

    from pipelines.status import format_status, read_status

    status = read_status(cfg, days=7)
    assert sorted(status["run_date"].astype(str).unique()) == [str(before), str(NIGHT)]
    assert (status["status"] == "success").all()
    text = format_status(status)
    assert f"{NIGHT}: OK" in text and "forecast:0" in text and "load" in text


def test_sharded_night_equals_the_single_shard_night(demo_env):
    from dataclasses import replace

    from pipelines.config import ScaleSpec
    from pipelines.lake import read_output, shard_path
    from pipelines.sharding import night_skus, shard_of
    from pipelines.steps import run_forecast, run_score, run_validate

    one = replace(load_config(demo_env()), scale=ScaleSpec(shards=1))
    run_extract(one, RunContext(NIGHT))
    run_validate(one, RunContext(NIGHT))
    results = {}
    for shards in (1, 3):
        cfg = replace(one, scale=ScaleSpec(shards=shards))
        run_forecast(cfg, RunContext(NIGHT))
        run_score(cfg, RunContext(NIGHT))
        results[shards] = [read_output(cfg.lake, out, NIGHT) for out in ("forecasts", "anomalies")]
        if shards == 3:
            for k in range(3):  # each shard holds exactly its own SKUs
                part = pd.read_parquet(shard_path(cfg.lake, "forecasts", NIGHT, k))
                assert {shard_of(s, 3) for s in part["sku"]} <= {k}
            assert len({shard_of(s, 3) for s in night_skus(cfg, NIGHT)}) > 1
    # Point forecasts and anomaly scores are per series, so sharding cannot change them.  (Forecast
    # intervals are calibrated on the backtest errors of the series computed together, so they
    # depend on the shard's composition; the DAG and `seam run` use the same plan.)
    same = {0: ["run_date", "sku", "warehouse", "target_date", "yhat", "model"], 1: None}
    for i, (single, sharded) in enumerate(zip(results[1], results[3], strict=True)):
        cols = same[i] or list(single.columns)
        a = single[cols].sort_values(cols[:4]).reset_index(drop=True)
        b = sharded[cols].sort_values(cols[:4]).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
