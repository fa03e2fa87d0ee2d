"""Unit tests of pipelines.forecasting (contract, edge cases, intervals, fallbacks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.forecasting import ForecastInputError, forecast


def _frame(values: dict[str, np.ndarray], freq: str = "D", start: str = "2024-01-01") -> pd.DataFrame:
    parts = [
        pd.DataFrame({"unique_id": uid, "ds": pd.date_range(start, periods=len(y), freq=freq), "y": y})
        for uid, y in values.items()
    ]
    return pd.concat(parts, ignore_index=True)


def test_output_contract_shape_and_dates() -> None:
    rng = np.random.default_rng(0)
    hist = _frame({"a": rng.normal(10, 1, 60), "b": rng.normal(5, 1, 30)})
    out = forecast(hist, horizon=7, freq="D")
    assert len(out) == 14
    for col in (
        "unique_id",
        "ds",
        "yhat",
        "yhat_lo_80",
        "yhat_hi_80",
        "yhat_lo_95",
        "yhat_hi_95",
        "model",
        "weights",
        "backtest_error",
        "fallback",
        "fallback_reason",
        "level",
        "trend",
        "seasonal",
    ):
        assert col in out.columns
    b = out[out["unique_id"] == "b"]
    assert list(b["ds"]) == list(pd.date_range("2024-01-31", periods=7, freq="D"))
    assert (out["yhat_lo_95"] <= out["yhat_lo_80"]).all()
    assert (out["yhat_lo_80"] <= out["yhat"]).all() and (out["yhat"] <= out["yhat_hi_80"]).all()
    assert (out["yhat_hi_80"] <= out["yhat_hi_95"]).all()


def test_bad_horizon_raises_clear_error() -> None:
    hist = _frame({"a": np.ones(10)})
    with pytest.raises(ForecastInputError, match="horizon"):
        forecast(hist, horizon=0, freq="D")
