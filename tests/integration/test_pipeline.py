"""The nightly steps end to end without a scheduler, on SQLite and on real PostgreSQL + MariaDB."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.config import load_config, source_url
from pipelines.errors import ConfigError, SourceUnavailableError
from pipelines.steps import RunContext, run_all, run_extract
from tests.conftest import NIGHT

TABLES = ("seam_forecasts", "seam_anomaly_scores", "seam_data_quality_results", "seam_load_batches")


def _dump(url: str) -> dict[str, pd.DataFrame]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        have = set(sa.inspect(conn).get_table_names())
        out = {t: pd.read_sql(sa.text(f"SELECT * FROM {t}"), conn) for t in TABLES if t in have}
    engine.dispose()
    for t, df in out.items():
        keep = [c for c in df.columns if c != "loaded_at"]
        out[t] = df[keep].sort_values(keep[:4]).reset_index(drop=True)
    return out


def _check_results(cfg) -> None:
    erp, crm = _dump(source_url(cfg.source("erp"))), _dump(source_url(cfg.source("crm")))
    fc = erp["seam_forecasts"]
    assert len(fc) == 6 * 2 * cfg.forecast.horizon  # every SKU x warehouse, every day of the horizon
    assert (pd.to_datetime(fc.run_date).dt.date == NIGHT).all()
    assert pd.to_datetime(fc.target_date).min().date() == NIGHT + pd.Timedelta(days=1)
    assert (fc.yhat_lo_95 <= fc.yhat_lo_80).all() and (fc.yhat_lo_80 <= fc.yhat).all()
    assert (fc.yhat <= fc.yhat_hi_80).all() and (fc.yhat_hi_80 <= fc.yhat_hi_95).all()
    assert fc.model.str.len().gt(0).all() and fc.model_version.str.startswith("seam-").all()
    scores = erp["seam_anomaly_scores"]
    assert {"demand", "revenue", "order_count"} <= set(scores.metric)
    assert scores.score.between(0, 1).all()
    assert pd.to_datetime(scores.ds).max().date() == NIGHT
    assert {"tickets"} <= set(crm["seam_anomaly_scores"].metric)  # CRM metrics go back into the CRM
    dq = erp["seam_data_quality_results"]
    assert dq.success.astype(bool).all() and len(dq) > 30


def _run_twice_identical(config_path) -> None:
    cfg = load_config(config_path)
    report = run_all(cfg, RunContext(NIGHT))
    assert report.is_file() and "Top anomalies" in report.read_text()
    _check_results(cfg)
    first = (_dump(source_url(cfg.source("erp"))), _dump(source_url(cfg.source("crm"))))
    run_all(cfg, RunContext(NIGHT, attempt=2))
    second = (_dump(source_url(cfg.source("erp"))), _dump(source_url(cfg.source("crm"))))
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
