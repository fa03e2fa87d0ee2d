"""The metrics over the whole night's order lines, aggregated one shard of SKUs at a time."""

from __future__ import annotations

from datetime import date
from functools import partial

import numpy as np
import pandas as pd
import pytest

from pipelines.anomaly.daily import DailyTotals
from pipelines.config import CustomMetric
from pipelines.series import (
    build_custom_series,
    build_metric_series,
    custom_rows,
    metric_rows,
    series_from_daily,
)

END = date(2026, 3, 31)


def _lines(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    order = rng.integers(0, n // 3, n)
    day = pd.Timestamp("2026-01-01") + pd.to_timedelta(order % 90, unit="D")
    lines = pd.DataFrame(
        {
            "order_id": [f"o{k}" for k in order],
            "line_no": np.arange(n),
            "order_date": day + pd.to_timedelta(rng.integers(0, 36_000, n), unit="s"),
            "customer_id": [f"c{k % 40}" for k in order],
            "warehouse": [f"W{k % 3}" for k in order],
            "sku": [f"S{k}" for k in rng.integers(0, 30, n)],
            "quantity": rng.integers(1, 5, n).astype(float),
            "returned_quantity": np.where(rng.random(n) < 0.05, 1.0, 0.0),
            "unit_price": rng.uniform(1, 20, n).round(2),
            "status": np.where(rng.random(n) < 0.03, "cancelled", "shipped"),
        }
    )
    lines.loc[rng.random(n) < 0.02, "unit_price"] = np.nan  # a mean and a distinct count skip these
    return lines


def _shards(lines: pd.DataFrame, k: int) -> list[pd.DataFrame]:
    shard = lines["sku"].str[1:].astype(int) % k
    return [lines[shard == j] for j in range(k)]


@pytest.mark.parametrize("metric", ["revenue", "order_count"])
def test_a_warehouse_metric_gathered_shard_by_shard_is_the_whole_nights(metric: str) -> None:
    lines = _lines()
    # the orders span shards: a distinct count of each shard's orders would count them twice
    shards = _shards(lines, 3)
    assert len(set(shards[0]["order_id"]) & set(shards[1]["order_id"])) > 100
    with DailyTotals(partial(metric_rows, metric)) as totals:
        for part in shards:
            totals.add(part)
        daily = totals.finish()
    got = series_from_daily(metric, *daily, end=END, history_days=120)
    want = build_metric_series(metric, lines, end=END, history_days=120)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
    assert want["y"].notna().sum() > 200


@pytest.mark.parametrize("aggregate", ["count", "sum", "mean", "nunique"])
def test_a_custom_metric_gathered_shard_by_shard_is_the_whole_nights(aggregate: str) -> None:
    lines = _lines(seed=1)
    metric = CustomMetric(
        name="custom",
        dataset="order_lines",
        date="order_date",
        aggregate=aggregate,  # type: ignore[arg-type]
        column=None if aggregate == "count" else "unit_price",
        entity=("warehouse", "customer_id"),
    )
    with DailyTotals(partial(custom_rows, metric)) as totals:
        for part in _shards(lines, 4):
            totals.add(part)
        daily = totals.finish()
    got = series_from_daily("custom", *daily, end=END, history_days=120)
    want = build_custom_series(metric, lines, end=END, history_days=120)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


def test_nothing_added_gives_no_series() -> None:
    with DailyTotals(partial(metric_rows, "order_count")) as totals:
        daily = totals.finish()
    assert series_from_daily("order_count", *daily, end=END, history_days=30).empty
