"""Demand series -> the forecaster's history at the configured frequency."""

from __future__ import annotations

from typing import Literal

import pandas as pd


def build_history(series: pd.DataFrame, freq: Literal["D", "W"]) -> tuple[pd.DataFrame, str]:
    """`unique_id, ds, y, censored` at daily or weekly (Sunday-ending) frequency, and its pandas freq."""
    history = series[["unique_id", "ds", "y", "censored"]]
    if freq == "D":
        return history, "D"
    weekly = (
        history.set_index("ds")
        .groupby("unique_id")
        .resample("W-SUN")
        .agg({"y": "sum", "censored": "any"})
        .reset_index()
    )
    return weekly, "W-SUN"
