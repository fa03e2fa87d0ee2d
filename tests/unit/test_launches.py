"""Product launches (`pipelines.launches`): their series and their forecasts held until launch."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from pipelines.launches import Launch, hold_until_launch, launch_series
from pipelines.series import join_keys

END = date(2026, 11, 22)


def test_a_launch_already_passed_has_zeros_since_and_one_ahead_has_nothing_observed():
    launches = [Launch("A", "W1", date(2026, 11, 12)), Launch("B", "W2", date(2026, 12, 1))]
    frame = launch_series(launches, END, history_days=730)
    a = frame[frame["sku"] == "A"]
    assert a["ds"].min() == pd.Timestamp("2026-11-12") and a["ds"].max() == pd.Timestamp(END)
    assert len(a) == 11 and (a["y"] == 0).all()
    b = frame[frame["sku"] == "B"]
    assert b["ds"].tolist() == [pd.Timestamp(END)] and b["y"].isna().all()
    assert not frame["censored"].any()
    assert frame["unique_id"].tolist() == join_keys(frame["sku"], frame["warehouse"]).tolist()
    # a launch long ago: only the history window
    old = launch_series([Launch("C", "W1", date(2020, 1, 1))], END, history_days=30)
    assert len(old) == 30 and old["ds"].min() == pd.Timestamp("2026-10-24")


def _forecast(uid: str, ds: pd.DatetimeIndex) -> pd.DataFrame:
    n = len(ds)
    return pd.DataFrame(
        {
            "unique_id": uid,
            "ds": ds,
            "yhat": np.full(n, 7.0),
            "yhat_lo_80": np.full(n, 5.0),
            "yhat_hi_80": np.full(n, 9.0),
            "yhat_lo_95": np.full(n, 4.0),
            "yhat_hi_95": np.full(n, 10.0),
            "level": np.full(n, 7.0),
            "new_product": "new product: from peers",
        }
    )


def test_daily_forecasts_are_zero_before_the_launch_date_and_say_when():
    uid = join_keys(pd.Series(["B"]), pd.Series(["W2"]))[0]
    days = pd.date_range("2026-11-23", periods=14, freq="D")
    fc = pd.concat([_forecast(uid, days), _forecast("other", days).assign(new_product=None)])
    out = hold_until_launch(fc, [Launch("B", "W2", date(2026, 11, 27))], "D")
    mine = out[out["unique_id"] == uid]
    before = mine["ds"] < pd.Timestamp("2026-11-27")
    assert before.sum() == 4
    for col in ("yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95", "level"):
        assert (mine.loc[before, col] == 0).all() and (mine.loc[~before, col] > 0).all()
    assert (mine["new_product"] == "launches on 2026-11-27; new product: from peers").all()
    # other series are untouched
    pd.testing.assert_frame_equal(out[out["unique_id"] == "other"], fc[fc["unique_id"] == "other"])


def test_the_week_a_product_launches_in_gets_its_days_on_sale():
    uid = join_keys(pd.Series(["B"]), pd.Series(["W2"]))[0]
    weeks = pd.date_range("2026-11-29", periods=3, freq="W-SUN")  # Sundays
    out = hold_until_launch(_forecast(uid, weeks), [Launch("B", "W2", date(2026, 12, 3))], "W-SUN")
    # the week ending Nov 29 is before the launch; Thursday Dec 3 to Sunday Dec 6 is 4 of 7 days
    np.testing.assert_allclose(out["yhat"].to_numpy(), [0.0, 7.0 * 4 / 7, 7.0])
