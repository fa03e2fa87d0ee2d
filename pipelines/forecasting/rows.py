"""Forecaster output -> rows of `seam_forecasts`."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd

EXPLAINED = (
    "weights",
    "backtest_error",
    "fallback_reason",
    "level",
    "trend",
    "seasonal",
    "new_product",
    "drivers",
)
# keys left out of a row's explanation when empty (a regular series' explanation is unchanged)
OMITTED_WHEN_EMPTY = ("new_product", "drivers")


def _explain(row: pd.Series) -> str:
    values = {k: (None if pd.isna(v) else v) if not isinstance(v, str) else v for k, v in row.items()}
    return json.dumps(
        {k: v for k, v in values.items() if v is not None or k not in OMITTED_WHEN_EMPTY}, default=str
    )


def build_forecast_rows(
    fc: pd.DataFrame,
    keys: pd.DataFrame,
    *,
    run_date: date,
    model_version: str,
    levels: tuple[int, int] = (80, 95),
) -> pd.DataFrame:
    """Rows of `seam_forecasts` (entity keys, bounds, model, explanation) from `forecast`'s output.

    The explanation is a JSON object of the `EXPLAINED` columns; a new product's has `new_product`
    (how its forecast was made from its peers, or why it is 0); a row with a known-future driver
    has `drivers` (e.g. "promotion 20% off: x1.70 expected uplift").

    `keys` maps each `unique_id` to its `sku` and `warehouse` (the columns of
    `pipelines.series.build_demand_series`): ids are never parsed back into keys.
    """
    lo, hi = levels
    parts = keys[["unique_id", "sku", "warehouse"]].drop_duplicates("unique_id").set_index("unique_id")
    parts = parts.reindex(fc["unique_id"].to_numpy())
    if parts.isna().any().any():
        raise ValueError("build_forecast_rows: forecast series without sku and warehouse in `keys`")
    explain_cols = [c for c in EXPLAINED if c in fc.columns]
    explanation = fc[explain_cols].apply(_explain, axis=1) if explain_cols else None
    return pd.DataFrame(
        {
            "run_date": pd.Timestamp(run_date),
            "sku": parts["sku"].to_numpy(),
            "warehouse": parts["warehouse"].to_numpy(),
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
