"""The panel week gathered shard by shard is the week of the whole panel, so sharding a night does
not change any series' point forecast."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.forecasting import build_options, run_forecast
from pipelines.forecasting.calendar import PanelWeek, WeekStats, panel_week
from pipelines.forecasting.validation import build_series


def _panel(n: int = 24, days: int = 140) -> pd.DataFrame:
    """Sparse daily series of a shop closed on Sundays, busy ones peaking on Fridays."""
    rng = np.random.default_rng(11)
    ds = pd.date_range("2025-03-03", periods=days, freq="D")
    weekday = ds.day_of_week.to_numpy()
    frames = []
    for i in range(n):
        rate = rng.uniform(0.03, 4.0) * np.where(weekday == 4, 2.0, 1.0)
        y = rng.poisson(rate).astype(float)
        y[weekday == 6] = 0.0
        frames.append(pd.DataFrame({"unique_id": f"sku{i:02d}", "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


def _shards(history: pd.DataFrame, k: int) -> list[pd.DataFrame]:
    codes = history["unique_id"].str[3:].astype(int) % k
    return [history[codes == j] for j in range(k)]


def test_week_gathered_in_batches_equals_the_week_of_the_whole_panel() -> None:
    history = _panel()
    options = build_options("D")
    whole = panel_week(build_series(history, "D"), "D", options.season_lengths)
    stats = WeekStats("D", options.season_lengths)
    for part in reversed(_shards(history, 3)):
        stats.add(build_series(part, "D"))
    gathered = stats.finish()
    assert whole is not None and gathered is not None
    assert whole.period == gathered.period == 7
    assert whole.closed.tolist() == gathered.closed.tolist() == [False] * 6 + [True]
    assert whole.pool.tobytes() == gathered.pool.tobytes()
    assert whole.prior_demands == gathered.prior_demands
    # Friday carries more of the pooled week than Monday
    assert whole.pool[4] > whole.pool[0]


def test_week_survives_json_bit_for_bit() -> None:
    options = build_options("D")
    week = panel_week(build_series(_panel(), "D"), "D", options.season_lengths)
    assert week is not None
    back = PanelWeek.from_dict(json.loads(json.dumps(week.to_dict())))
    assert back.pool.tobytes() == week.pool.tobytes()
    assert back.closed.tolist() == week.closed.tolist()
    assert back.prior_demands == week.prior_demands


def test_a_series_added_twice_is_refused() -> None:
    history = _panel(4)
    stats = WeekStats("D", build_options("D").season_lengths)
    stats.add(build_series(history, "D"))
    stats.add(build_series(history[history["unique_id"] == "sku01"], "D"))
    with pytest.raises(ValueError, match="added twice"):
        stats.finish()


def test_weekly_data_has_no_week_to_gather() -> None:
    stats = WeekStats("W-SUN", build_options("W-SUN").season_lengths)
    assert not stats.needed
    assert stats.finish() is None


def test_shards_forecast_with_the_panel_week_equal_the_whole_panel() -> None:
    history = _panel()
    options = build_options("D")
    stats = WeekStats("D", options.season_lengths)
    parts = _shards(history, 3)
    for part in parts:
        stats.add(build_series(part, "D"))
    week = stats.finish()
    whole = run_forecast(history, 14, "D", [80], options).set_index(["unique_id", "ds"])
    sharded = pd.concat([run_forecast(p, 14, "D", [80], options, week) for p in parts])
    sharded = sharded.set_index(["unique_id", "ds"]).loc[whole.index]
    assert sharded["yhat"].to_numpy().tobytes() == whole["yhat"].to_numpy().tobytes()
    assert (sharded["model"] == whole["model"]).all()
    # Without the panel week a shard estimates the week from its own few series, and differs.
    alone = pd.concat([run_forecast(p, 14, "D", [80], options) for p in parts])
    alone = alone.set_index(["unique_id", "ds"]).loc[whole.index]
    assert not np.array_equal(alone["yhat"].to_numpy(), whole["yhat"].to_numpy())
