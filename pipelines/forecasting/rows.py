"""Forecaster output -> rows of `seam_forecasts`."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd

EXPLAINED = ("weights", "backtest_error", "fallback_reason", "level", "trend", "seasonal")


def build_forecast_rows(
    fc: pd.DataFrame, *, run_date: date, model_version: str, levels: tuple[int, int] = (80, 95)
) -> pd.DataFrame:
    """Rows of `seam_forecasts` (entity keys, bounds, model, explanation) from `forecast`'s output.

    `fc.unique_id` is `sku|warehouse` as built by `pipelines.series.build_demand_series`.
    """
    lo, hi = levels
    parts = fc["unique_id"].str.split("|", n=1, expand=True)
    explain_cols = [c for c in EXPLAINED if c in fc.columns]
    explanation = (
        fc[explain_cols].apply(
            lambda r: json.dumps(
                {k: (None if pd.isna(v) else v) if not isinstance(v, str) else v for k, v in r.items()},
                default=str,
            ),
            axis=1,
        )
        if explain_cols
        else None
    )
    return pd.DataFrame(
        {
            "run_date": pd.Timestamp(run_date),
            "sku": parts[0],
            "warehouse": parts[1],
            "target_date": pd.to_datetime(fc["ds"]),
            "yhat": fc["yhat"].astype(float),
            "yhat_lo_80": fc[f"yhat_lo_{lo}"].astype(float),
            "yhat_hi_80": fc[f"yhat_hi_{lo}"].astype(float),
            "yhat_lo_95": fc[f"yhat_lo_{hi}"].astype(float),
            "yhat_hi_95": fc[f"yhat_hi_{hi}"].astype(float),
            "model": fc["model"].astype(str),
            "model_version": model_version,
            "explanation": explanation,
            "fallback": fc["fallback"].astype(bool) if "fallback" in fc else False,
            "training_snapshot_date": pd.Timestamp(run_date),
        }
    )
