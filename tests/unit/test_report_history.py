"""The report's view of the order lines, read a shard of SKUs at a time, is what the whole night's
lines give (what the report computed from them before it read them in shards)."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipelines.report.history import headline_lines, reduce_history
from pipelines.report.render import build_headlines
from pipelines.series import build_demand_series

NIGHT = date(2026, 11, 22)


def _night_lines(seed: int = 3) -> pd.DataFrame:
    """Order lines of 12 SKUs in 3 warehouses over 200 days: returns, cancellations, a SKU that
    stopped selling before the report's window and one first sold inside it."""
    rng = np.random.default_rng(seed)
    n = 6000
    days = pd.Timestamp(NIGHT) - pd.to_timedelta(rng.integers(0, 200, n), unit="D")
    sku = rng.choice([f"S{i:02d}" for i in range(12)], n)
    frame = pd.DataFrame(
        {
            "order_id": [f"O{i // 3}" for i in range(n)],
            "line_no": np.arange(n) % 3 + 1,
            "order_date": days,
            "customer_id": rng.choice(["c1", "c2", "c3"], n),
            "warehouse": rng.choice(["W1", "W2", "W3"], n),
            "sku": sku,
            "quantity": rng.integers(1, 9, n).astype(float),
            "returned_quantity": np.where(rng.random(n) < 0.05, 1.0, 0.0),
            "unit_price": rng.uniform(1, 20, n).round(2),
            "currency": "EUR",
            "status": rng.choice(["shipped", "shipped", "shipped", "cancelled", "returned"], n),
            "updated_at": days,
        }
    )
    old = frame["sku"] == "S10"
    frame.loc[old, "order_date"] = pd.Timestamp(NIGHT) - pd.Timedelta(days=150)  # before the window
    new = frame["sku"] == "S11"
    frame.loc[new, "order_date"] = pd.Timestamp(NIGHT) - pd.Timedelta(days=30)  # a launch inside it
    return frame.sort_values("order_id", kind="stable").reset_index(drop=True)


CATEGORIES = {f"S{i:02d}": ("bikes" if i < 5 else "parts") for i in range(10)}  # S10, S11: none


@pytest.mark.parametrize("shards", [1, 4])
def test_the_report_history_read_in_shards_is_the_whole_nights(shards):
    lines = _night_lines()
    skus = sorted(lines["sku"].unique())
    parts = [lines[lines["sku"].isin(skus[k::shards])] for k in range(shards)]
    top = ["S03", "S11", "S99"]  # S99 never sold
    demand = build_demand_series(lines, None, end=NIGHT, history_days=120)
    entities = set(demand["unique_id"].drop_duplicates().iloc[[0, 7, 20]])

    got = reduce_history(parts, NIGHT, skus=top, entities=entities, categories=CATEGORIES)

    # what the report computed from the whole night's lines
    sku_hist = demand.groupby(["sku", "ds"], as_index=False)["y"].sum()
    hist = sku_hist.assign(category=sku_hist["sku"].map(CATEGORIES).fillna("(no category)"))
    pd.testing.assert_frame_equal(
        got.category_hist, hist.groupby(["category", "ds"], as_index=False)["y"].sum()
    )
    pd.testing.assert_frame_equal(got.total_hist, hist.groupby("ds", as_index=False)["y"].sum())
    pd.testing.assert_frame_equal(got.sku_hist, sku_hist[sku_hist["sku"].isin(top)].reset_index(drop=True))
    pd.testing.assert_frame_equal(
        got.demand, demand[demand["unique_id"].isin(entities)].reset_index(drop=True)
    )
    assert set(got.sku_hist["sku"]) == {"S03", "S11"}
    assert set(got.category_hist["category"]) == {"bikes", "parts", "(no category)"}
    assert got.demand["unique_id"].nunique() == 3
    # the headline figures: orders, units and revenue of the night and a week before
    figures = [v for h in build_headlines(got.headline_lines, None, NIGHT) for v in (h.value, h.last_week)]
    whole = [
        v for h in build_headlines(headline_lines(lines, NIGHT), None, NIGHT) for v in (h.value, h.last_week)
    ]
    assert figures == pytest.approx(whole, rel=1e-12)  # revenue: a sum in another order
    assert len(got.headline_lines) < len(lines) / 20  # two days of lines, not the night's history
    assert build_headlines(got.headline_lines, None, NIGHT)[0].value > 0
    night = lines[(lines["order_date"] == pd.Timestamp(NIGHT)) & (lines["status"] != "cancelled")]
    assert figures[2] == night["quantity"].sum() > 0  # units: cancelled lines do not count
    assert list(got.headline_lines.columns) == ["order_date", "order_id", "line_no", "quantity", "unit_price"]


def test_a_night_without_order_lines_has_an_empty_history():
    got = reduce_history([], NIGHT, skus=["S01"], entities={"S01|W1"}, categories={})
    assert got.sku_hist.empty and got.category_hist.empty and got.total_hist.empty and got.demand.empty
    assert [h.value for h in build_headlines(got.headline_lines, None, NIGHT)] == [0.0, 0.0, 0.0]
