"""A forecast row's explanation: JSON of the explained columns, nulls kept, empty extras left out."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd

from pipelines.forecasting.rows import build_forecast_rows


def _forecast() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_id": ["a", "a", "b"],
            "ds": pd.to_datetime(["2026-01-02", "2026-01-03", "2026-01-02"]),
            "yhat": [1.0, 2.0, 0.0],
            **{f"yhat_{side}_{lvl}": [0.5, 1.5, 0.0] for side in ("lo", "hi") for lvl in (80, 95)},
            "model": ["theta", "theta", "croston"],
            "fallback": [False, False, True],
            "weights": ['{"theta": 1.0}', '{"theta": 1.0}', None],
            "backtest_error": [0.25, 0.25, np.nan],
            "fallback_reason": [None, None, "too short: 3 days"],
            "level": [1.5, 1.5, np.nan],
            "trend": [np.nan, np.nan, np.nan],
            "seasonal": [0.125, -0.5, np.nan],
            "new_product": [np.nan, np.nan, "new product: 3 periods of history (< 28)"],
            "drivers": [np.nan, "promotion 20% off: x1.70 expected uplift", np.nan],
        }
    )


def test_the_explanation_keeps_nulls_and_leaves_out_empty_extras():
    keys = pd.DataFrame({"unique_id": ["a", "b"], "sku": ["S1", "S2"], "warehouse": ["W1", "W1"]})
    rows = build_forecast_rows(_forecast(), keys, run_date=date(2026, 1, 1), model_version="t")
    explained = [json.loads(text) for text in rows["explanation"]]
    assert explained[0] == {
        "weights": '{"theta": 1.0}',
        "backtest_error": 0.25,
        "fallback_reason": None,
        "level": 1.5,
        "trend": None,
        "seasonal": 0.125,
    }
    assert explained[1]["drivers"] == "promotion 20% off: x1.70 expected uplift"
    assert "new_product" not in explained[1] and explained[1]["seasonal"] == -0.5
    assert explained[2] == {
        "weights": None,
        "backtest_error": None,
        "fallback_reason": "too short: 3 days",
        "level": None,
        "trend": None,
        "seasonal": None,
        "new_product": "new product: 3 periods of history (< 28)",
    }
    assert list(rows["sku"]) == ["S1", "S1", "S2"] and list(rows["fallback"]) == [False, False, True]
