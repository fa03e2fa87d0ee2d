"""New products: a series with a short history is forecast from its category's established series,
scaled by what it has sold so far, and a sharded night gives it the same forecast."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipelines.forecasting import Peers, PeerStats, build_options, forecast, run_forecast
from pipelines.forecasting.calendar import WeekStats
from pipelines.forecasting.peers import PeerProfiles
from pipelines.forecasting.rows import build_forecast_rows
from pipelines.forecasting.validation import build_series

DAYS = 140
END = pd.Timestamp("2025-07-20")  # a Sunday


def _panel() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two warehouses, a weekday-only business: 'tools' sells about 4 a weekday per series,
    'toys' about 1; 'new-tool' launched 5 days ago, 'lonely' (a category nobody else is in) 3
    days ago and has not sold yet, 'one-order' sold one big order on its first day."""
    rng = np.random.default_rng(5)
    ds = pd.date_range(end=END, periods=DAYS, freq="D")
    open_day = ds.day_of_week.to_numpy() < 5
    frames, keys = [], []
    for i in range(16):
        category, rate = ("tools", 4.0) if i % 2 == 0 else ("toys", 1.0)
        warehouse = f"WH{i % 4 // 2 + 1}"
        y = rng.poisson(rate * rng.uniform(0.6, 1.4) * open_day * 1.4).astype(float)
        frames.append(pd.DataFrame({"unique_id": f"old{i:02d}", "ds": ds, "y": y}))
        keys.append((f"old{i:02d}", category, warehouse))
    new_ds = ds[-5:]  # Wednesday to Sunday
    frames.append(pd.DataFrame({"unique_id": "new-tool", "ds": new_ds, "y": [6.0, 5.0, 7.0, 0.0, 0.0]}))
    keys.append(("new-tool", "tools", "WH1"))
    frames.append(pd.DataFrame({"unique_id": "lonely", "ds": ds[-3:], "y": [0.0, 0.0, 0.0]}))
    keys.append(("lonely", "garden", "WH1"))
    frames.append(pd.DataFrame({"unique_id": "one-order", "ds": new_ds, "y": [60.0, 0.0, 0.0, 0.0, 0.0]}))
    keys.append(("one-order", "toys", "WH2"))
    return pd.concat(frames, ignore_index=True), pd.DataFrame(
        keys, columns=["unique_id", "category", "warehouse"]
    )


def _options():
    return build_options("D", n_jobs=1)


def _series(fc: pd.DataFrame, uid: str) -> pd.DataFrame:
    return fc[fc["unique_id"] == uid]


@pytest.fixture(scope="module")
def panel_forecast() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    history, keys = _panel()
    return history, keys, run_forecast(history, 14, "D", (80, 95), _options(), peers=Peers(keys))


def test_new_product_is_forecast_near_its_peers_scaled_level(panel_forecast):
    history, keys, fc = panel_forecast
    new = _series(fc, "new-tool")
    weekday = new["ds"].dt.day_of_week < 5
    assert (new["yhat"][weekday] > 0).all() and (new["yhat"][~weekday] == 0).all()
    # the 'tools' peers of WH1 sell about 4 a day over the week (5.6 a weekday); it sold 18 in 3
    # weekdays: its weekday forecast lies between the two, not at 0
    peers = history[history["unique_id"].isin(keys.loc[keys["category"] == "tools", "unique_id"])]
    recent = peers[peers["ds"] > END - pd.Timedelta(days=28)]
    peer_weekday = recent[recent["ds"].dt.day_of_week < 5].groupby("unique_id")["y"].mean().median()
    assert 0.7 * peer_weekday < new["yhat"][weekday].mean() < 6.0 * 1.1
    assert (new["model"] == "new_product").all()
    assert (new["yhat_hi_95"] >= new["yhat_hi_80"]).all() and (new["yhat_hi_80"] > new["yhat"])[weekday].all()
    rows = build_forecast_rows(
        new, keys.assign(sku=keys["unique_id"]), run_date=date(2025, 7, 20), model_version="t"
    )
    explanation = json.loads(rows["explanation"].iat[0])
    assert "new_product" in explanation
    assert "5 periods of history (< 28)" in explanation["new_product"]
    assert "category 'tools' in warehouse 'WH1'" in explanation["new_product"]


def test_one_early_order_does_not_explode_the_forecast(panel_forecast):
    _, _, fc = panel_forecast
    one = _series(fc, "one-order")
    weights = json.loads(one["weights"].iat[0])
    # 60 units in its first 5 days (12 a day) against 'toys' peers selling about 1 a day
    assert weights["own"] < 0.5
    assert 0 < one["yhat"].max() < 6.0


def test_no_peers_and_no_sales_is_zero_and_says_why(panel_forecast):
    _, keys, fc = panel_forecast
    lonely = _series(fc, "lonely")
    assert (lonely["yhat"] == 0).all() and (lonely["yhat_hi_95"] == 0).all()
    rows = build_forecast_rows(
        lonely, keys.assign(sku=keys["unique_id"]), run_date=date(2025, 7, 20), model_version="t"
    )
    why = json.loads(rows["explanation"].iat[0])["new_product"]
    assert "no sales yet" in why and "no established series in category 'garden'" in why
    assert "forecasting 0" in why


def test_established_series_are_unchanged_by_peers(panel_forecast):
    history, _, fc = panel_forecast
    old = history[history["unique_id"].str.startswith("old")]
    plain = run_forecast(old, 14, "D", (80, 95), _options())
    with_peers = fc[fc["unique_id"].str.startswith("old")].reset_index(drop=True)
    assert with_peers["new_product"].isna().all()
    assert plain["yhat"].to_numpy().tobytes() == with_peers["yhat"].to_numpy().tobytes()
    # the public contract needs no peers: no series is a new product there
    assert forecast(history, 14, "D")["new_product"].isna().all()


def test_regular_explanation_has_no_new_product_key(panel_forecast):
    _, keys, fc = panel_forecast
    old = _series(fc, "old00")
    rows = build_forecast_rows(
        old, keys.assign(sku=keys["unique_id"]), run_date=date(2025, 7, 20), model_version="t"
    )
    assert "new_product" not in json.loads(rows["explanation"].iat[0])


def test_two_shards_give_the_single_shard_forecast(panel_forecast):
    history, keys, whole = panel_forecast
    options = _options()
    ids = sorted(history["unique_id"].unique())
    shards = [history[history["unique_id"].isin(ids[k::2])] for k in range(2)]
    weeks, peers = WeekStats("D", options.season_lengths), PeerStats("D", options.new_product_periods)
    for part in shards:  # what the plan step does, one shard at a time
        series = build_series(part, "D")
        weeks.add(series)
        peers.add(series, keys)
    week = weeks.finish()
    # the figures travel through the shard plan as JSON
    profiles = PeerProfiles.from_dict(json.loads(json.dumps(peers.finish(week).to_dict())))
    parts = [run_forecast(part, 14, "D", (80, 95), options, week, Peers(keys, profiles)) for part in shards]
    sharded = pd.concat(parts).sort_values(["unique_id", "ds"]).reset_index(drop=True)
    single = whole.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    assert sharded["yhat"].to_numpy().tobytes() == single["yhat"].to_numpy().tobytes()
    assert sharded["new_product"].tolist() == single["new_product"].tolist()
    new = single["new_product"].notna()
    for col in ("yhat_lo_95", "yhat_hi_95"):  # a new product's interval comes from its peers alone
        assert sharded.loc[new, col].to_numpy().tobytes() == single.loc[new, col].to_numpy().tobytes()


def test_peers_gathered_in_batches_keep_every_value_exactly():
    """A batch of whole units is kept compactly, one of fractional demand as it is: both give the
    peers of the whole panel."""
    history, keys = _panel()
    fractional = history["unique_id"].isin(["old01", "old02", "old05"])
    history.loc[fractional, "y"] = history.loc[fractional, "y"] * 0.1 + 1e-9
    series = build_series(history, "D")
    whole = PeerStats("D", 28)
    whole.add(series, keys)
    batched = PeerStats("D", 28)
    for part in (series[10:], series[:3], series[3:10]):
        batched.add(part, keys)
    week = WeekStats("D", _options().season_lengths)
    week.add(series)
    for panel_week in (None, week.finish()):
        assert batched.finish(panel_week).to_dict() == whole.finish(panel_week).to_dict()
    # keeping the fractional windows in float32 would have changed the peers' figures
    rounded = PeerStats("D", 28)
    rounded.add(build_series(history.assign(y=history["y"].astype(np.float32).astype(float)), "D"), keys)
    assert rounded.finish(None).to_dict() != whole.finish(None).to_dict()


def test_peers_are_not_gathered_twice():
    history, keys = _panel()
    stats = PeerStats("D", 28)
    series = build_series(history, "D")
    stats.add(series, keys)
    stats.add(series[:1], keys)
    with pytest.raises(ValueError, match="added twice"):
        stats.finish(None)
