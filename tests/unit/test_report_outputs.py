"""The report's reduction of a night's forecasts, read a shard at a time, is what the whole night's
forecast rows give."""

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.report.outputs import BANDS, known_ahead_items, known_ahead_section, reduce_forecasts


def _forecasts() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    skus, warehouses = [f"S{i:02d}" for i in range(9)], ["W1", "W2"]
    days = pd.date_range("2026-11-23", periods=14)
    rows = []
    for sku in skus:
        for wh in warehouses:
            for day in days:
                note: dict[str, str] = {}
                if sku in ("S01", "S04") and day.day in (25, 26):
                    note["drivers"] = "promotion 20% off: x1.6 expected uplift"
                if sku == "S07":
                    note["new_product"] = "launches on 2026-11-27; new product: peers"
                y = float(rng.gamma(2.0, 3.0))
                rows.append(
                    {
                        "sku": sku,
                        "warehouse": wh,
                        "target_date": day,
                        "yhat": y,
                        "yhat_lo_80": y * 0.6,
                        "yhat_hi_80": y * 1.5,
                        "yhat_lo_95": y * 0.4,
                        "yhat_hi_95": y * 1.9,
                        "model": "ets" if sku < "S05" else "croston",
                        "model_version": "v1",
                        "explanation": json.dumps(note),
                    }
                )
    return pd.DataFrame(rows)


CATEGORIES = {"S00": "a", "S01": "a", "S02": "b", "S03": "b", "S04": "b"}  # the others: none


@pytest.mark.parametrize("shards", [1, 3])
def test_forecasts_reduced_shard_by_shard_are_the_whole_nights(shards):
    rows = _forecasts()
    skus = sorted(rows["sku"].unique())
    parts = [rows[rows["sku"].isin(skus[k::shards])] for k in range(shards)]
    got = reduce_forecasts(parts, categories=CATEGORIES, names={"S01": "Bike"}, skus=["S03", "S07"])

    assert got.rows == len(rows) and got.series == 18 and got.models == ["croston", "ets"]
    assert got.model_version == "v1"
    assert got.top(3) == list(rows.groupby("sku")["yhat"].sum().nlargest(3).index)
    pd.testing.assert_frame_equal(
        got.sku_rows.sort_values(["sku", "warehouse", "target_date"]).reset_index(drop=True),
        rows[rows["sku"].isin(["S03", "S07"])].reset_index(drop=True),
    )
    whole = rows.assign(category=rows["sku"].map(CATEGORIES).fillna("(no category)"))
    pd.testing.assert_frame_equal(
        got.category_bands, whole.groupby(["category", "target_date"], as_index=False)[BANDS].sum()
    )
    assert sorted(got.category_bands["category"].unique()) == ["(no category)", "a", "b"]
    pd.testing.assert_frame_equal(got.by_date, rows.groupby("target_date", as_index=False)["yhat"].sum())
    section = known_ahead_section(got.drivers, got.new, 10)
    assert section == known_ahead_section(*known_ahead_items(rows, {"S01": "Bike"}), 10)
    assert section["n_drivers"] == 2 and section["n_new"] == 1
    assert section["new"][0]["launch"] == "2026-11-27"


def test_no_forecast_rows_reduce_to_an_empty_summary():
    got = reduce_forecasts([], categories={}, names={})
    assert got.rows == 0 and got.top(5) == [] and got.series == 0 and got.model_version is None


def test_the_previous_nights_summary_skips_the_known_ahead_entries():
    rows = _forecasts()
    got = reduce_forecasts([rows], categories=CATEGORIES, skus=["S01"], known=False)
    assert got.drivers == [] and got.new == [] and set(got.sku_rows["sku"]) == {"S01"}
