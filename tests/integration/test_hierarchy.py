"""The forecast hierarchy through the night: coherent at every level, stored, loaded once, reported."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.config import load_config, source_url
from pipelines.db import make_engine
from pipelines.forecasting.hierarchy import build_hierarchy
from pipelines.load import load_batch
from pipelines.run_context import RunContext
from pipelines.state import migrate
from pipelines.steps import run_all, run_load
from tests.conftest import NIGHT

# (child level, parent level, the keys that name the parent)
EDGES = [
    ("category", "total", []),
    ("category_warehouse", "category", ["category"]),
    ("sku", "category", ["category"]),
    ("sku_warehouse", "sku", ["sku"]),
    ("sku_warehouse", "category_warehouse", ["category", "warehouse"]),
]


def assert_coherent(rows: pd.DataFrame) -> None:
    """Children sum to their parents at every level, within rounding, for every target date."""
    rows = rows.assign(target_date=pd.to_datetime(rows["target_date"]))
    for child, parent, keys in EDGES:
        c = rows[rows["level"] == child].groupby([*keys, "target_date"])["yhat"].sum()
        p = rows[rows["level"] == parent].set_index([*keys, "target_date"])["yhat"]
        assert len(p) and len(c) == len(p), (child, parent)
        np.testing.assert_allclose(c.sort_index().to_numpy(), p.sort_index().to_numpy(), atol=1e-6, rtol=1e-9)
    for lv in ("80", "95"):
        assert (rows[f"yhat_lo_{lv}"] <= rows["yhat"] + 1e-9).all()
        assert (rows["yhat"] <= rows[f"yhat_hi_{lv}"] + 1e-9).all()
    assert (rows["yhat"] >= 0).all()


def test_a_night_stores_coherent_levels_loads_once_and_reports_category_bands(demo_env) -> None:
    cfg = load_config(demo_env(lean=True))
    report = run_all(cfg, RunContext(NIGHT))
    engine = sa.create_engine(source_url(cfg.source("erp")))
    with engine.connect() as conn:
        rows = pd.read_sql(sa.text("SELECT * FROM seam_forecasts_hierarchy"), conn)
        bottom = pd.read_sql(sa.text("SELECT * FROM seam_forecasts"), conn)
    assert set(rows["level"]) == {"total", "category", "category_warehouse", "sku", "sku_warehouse"}
    assert_coherent(rows)
    # keys the level sums over are NULL; the bottom level covers exactly seam_forecasts' series
    assert rows.loc[rows["level"] == "total", ["category", "sku", "warehouse"]].isna().all(axis=None)
    assert rows.loc[rows["level"] == "sku", "warehouse"].isna().all()
    assert rows.loc[rows["level"] == "category", ["sku", "warehouse"]].isna().all(axis=None)
    low = rows[rows["level"] == "sku_warehouse"]
    assert set(zip(low["sku"], low["warehouse"], strict=True)) == set(
        zip(bottom["sku"], bottom["warehouse"], strict=True)
    )
    assert rows["method"].str.startswith("mint_").all()

    # the load of the same night is a no-op the second time
    again = {r.table: r for r in run_load(cfg, RunContext(NIGHT))}
    assert again["seam_forecasts_hierarchy"].skipped

    # the report's category charts are the reconciled categories: their totals, with their own bands
    html = report.read_text()
    assert "Reconciled forecasts" in html and "on the wide side" not in html
    shown = dict(re.findall(r"<strong>([^<]+)</strong>: ([\d,]+) units over the horizon", html))
    cats = rows[rows["level"] == "category"].groupby("category")["yhat"].sum()
    for cat, total in cats.items():
        assert shown[cat] == f"{total:,.0f}"
    assert shown["All products"] == f"{rows[rows['level'] == 'total']['yhat'].sum():,.0f}"
    # a category's own 95% band is narrower than the sum of its SKU x warehouse base bands
    width = lambda f: (f["yhat_hi_95"] - f["yhat_lo_95"]).sum()  # noqa: E731
    products = pd.read_sql(sa.text("SELECT sku, category FROM products"), engine)
    summed = bottom.merge(products, on="sku")
    narrower = [
        width(rows[(rows["level"] == "category") & (rows["category"] == c)])
        < width(summed[summed["category"] == c])
        for c in cats.index
    ]
    assert all(narrower)


def _rows() -> pd.DataFrame:
    """A night of `seam_forecasts_hierarchy` rows (NULL keys where a level aggregates)."""
    bottom = pd.DataFrame(
        {"sku": ["A", "A", "B"], "warehouse": ["W1", "W2", "W1"], "category": ["x", "x", "y"]}
    )
    nodes = build_hierarchy(bottom).nodes
    days = pd.date_range(NIGHT + pd.Timedelta(days=1), periods=3)
    out = nodes.loc[nodes.index.repeat(len(days))].reset_index(drop=True)
    rng = np.random.default_rng(1)
    out = out.assign(
        run_date=pd.Timestamp(NIGHT),
        target_date=np.tile(days.to_numpy(), len(nodes)),
        yhat=rng.uniform(0, 5, len(out)),
        yhat_base=rng.uniform(0, 5, len(out)),
        method="mint_diagonal",
        model_version="test",
    )
    for lv in ("80", "95"):
        out[f"yhat_lo_{lv}"] = out["yhat"] / 2
        out[f"yhat_hi_{lv}"] = out["yhat"] * 2
    return out


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_the_table_loads_once_on_servers(server: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_database" if server == "postgresql" else "mariadb_database")()
    engine = make_engine(url, write=True)
    try:
        migrate(engine)
        rows = _rows()
        assert not load_batch(engine, "seam_forecasts_hierarchy", NIGHT, rows).skipped
        assert load_batch(engine, "seam_forecasts_hierarchy", NIGHT, rows).skipped
        with engine.connect() as conn:
            back = pd.read_sql(sa.text("SELECT * FROM seam_forecasts_hierarchy"), conn)
        assert len(back) == len(rows)
        total = back[back["level"] == "total"]
        assert total[["category", "sku", "warehouse"]].isna().all(axis=None)
        merged = back.merge(rows, on=["level", "series_key"], suffixes=("", "_sent"))
        assert (merged["category"].isna() == merged["category_sent"].isna()).all()
        # a new version of the night replaces the old one
        changed = rows.assign(
            yhat=rows["yhat"] + 1, yhat_hi_80=rows["yhat_hi_80"] + 1, yhat_hi_95=rows["yhat_hi_95"] + 1
        )
        assert not load_batch(engine, "seam_forecasts_hierarchy", NIGHT, changed).skipped
        with engine.connect() as conn:
            n, s = conn.execute(sa.text("SELECT COUNT(*), SUM(yhat) FROM seam_forecasts_hierarchy")).one()
        assert n == len(rows) and s == pytest.approx(changed["yhat"].sum())
    finally:
        engine.dispose()
