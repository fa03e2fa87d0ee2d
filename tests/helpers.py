"""Assertions on the result tables shared by the pipeline and DAG tests."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import sqlalchemy as sa

from pipelines.config import Config, source_url
from tests.conftest import NIGHT, SMALL_SERIES

TABLES = ("seam_forecasts", "seam_anomaly_scores", "seam_data_quality_results", "seam_load_batches")


def dump_results(url: str) -> dict[str, pd.DataFrame]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        have = set(sa.inspect(conn).get_table_names())
        out = {t: pd.read_sql(sa.text(f"SELECT * FROM {t}"), conn) for t in TABLES if t in have}
    engine.dispose()
    for t, df in out.items():
        keep = [c for c in df.columns if c != "loaded_at"]
        out[t] = df[keep].sort_values(keep[:4]).reset_index(drop=True)
    return out


def check_results(cfg: Config) -> None:
    erp, crm = dump_results(source_url(cfg.source("erp"))), dump_results(source_url(cfg.source("crm")))
    fc = erp["seam_forecasts"]
    # every SKU x warehouse, every day of the horizon; and the product master's three upcoming
    # launches (no sale yet) in both warehouses of their categories
    assert len(fc) == SMALL_SERIES * cfg.forecast.horizon
    check_launches(fc)
    assert (pd.to_datetime(fc.run_date).dt.date == NIGHT).all()
    assert pd.to_datetime(fc.target_date).min().date() == NIGHT + pd.Timedelta(days=1)
    assert (fc.yhat_lo_95 <= fc.yhat_lo_80).all() and (fc.yhat_lo_80 <= fc.yhat).all()
    assert (fc.yhat <= fc.yhat_hi_80).all() and (fc.yhat_hi_80 <= fc.yhat_hi_95).all()
    assert fc.model.str.len().gt(0).all() and fc.model_version.str.startswith("seam-").all()
    # the adjust step ran: a final forecast on every row, equal to the statistical one without overrides
    assert (fc.yhat_final == fc.yhat).all() and fc.override_ids.isna().all()
    scores = erp["seam_anomaly_scores"]
    assert {"demand", "revenue", "order_count"} <= set(scores.metric)
    assert scores.score.between(0, 1).all()
    assert pd.to_datetime(scores.ds).max().date() == NIGHT
    assert {"tickets"} <= set(crm["seam_anomaly_scores"].metric)  # CRM metrics go back into the CRM
    dq = erp["seam_data_quality_results"]
    assert dq.success.astype(bool).all() and len(dq) > 30


def check_launches(fc: pd.DataFrame) -> None:
    """The small demo's launches (`DemoSize.upcoming_launches`: SKU-0007 launched 10 days before the
    night without selling, SKU-0008 and SKU-0009 launching 5 and 12 days after it) in the loaded
    forecasts: 0 before the launch date, the peers' level from it, and the explanation says so."""
    import json

    target = pd.to_datetime(fc.target_date).dt.date
    for sku, days in (("SKU-0007", -10), ("SKU-0008", 5), ("SKU-0009", 12)):
        launch = NIGHT + timedelta(days=days)
        rows = fc[fc.sku == sku]
        assert sorted(rows.warehouse.unique()) == ["WH01", "WH02"], sku
        before = (target[rows.index] < launch).to_numpy()
        assert (rows.yhat[before] == 0).all() and (rows.yhat_hi_95[before] == 0).all(), sku
        assert (rows.yhat[~before] > 0).all(), sku
        notes = rows.explanation.map(lambda e: json.loads(e)["new_product"])
        assert notes.str.startswith(f"launches on {launch.isoformat()}; new product:").all(), sku
    # the launch that has not sold for 10 days is forecast below its peers' level
    sold_nothing = fc[fc.sku == "SKU-0007"].yhat.mean()
    assert 0 < sold_nothing < fc[fc.sku == "SKU-0009"].yhat.max()
