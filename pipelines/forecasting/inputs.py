"""Demand series -> the forecaster's history and known-future drivers at the configured frequency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd


def build_history(series: pd.DataFrame, freq: Literal["D", "W"]) -> tuple[pd.DataFrame, str]:
    """`unique_id, ds, y, censored` at daily or weekly (Sunday-ending) frequency, and its pandas freq."""
    history = series[["unique_id", "ds", "y", "censored"]]
    if freq == "D":
        return history, "D"
    weekly = (
        history.astype({"censored": "int8"})
        .set_index("ds")
        .groupby("unique_id")
        .resample("W-SUN")
        .agg({"y": "sum", "censored": "max"})
        .reset_index()
    )
    return weekly.assign(censored=weekly["censored"].fillna(0).astype(bool)), "W-SUN"


def build_driver_frame(
    series: pd.DataFrame,
    *,
    promotions: pd.DataFrame | None,
    holidays: Sequence[tuple[str, str]],
    freq: Literal["D", "W"],
) -> pd.DataFrame:
    """The forecaster's driver frame (see `pipelines.forecasting.drivers`) of demand series.

    `series` maps each `unique_id` to its `sku`; `promotions` (`sku, start_date, end_date,
    discount`, end inclusive; None: none) apply to every series of their SKU, past and planned;
    `holidays` (`(YYYY-MM-DD, name)`) to every series. Daily rows are `promotion` 1 with its
    `discount` (the deepest of overlapping ones) and `holiday` 1; at weekly frequency each is the
    share of the week's days (and `discount` the mean depth of its promoted days). Periods
    without a driver have no row.
    """
    keys = series[["unique_id", "sku"]].drop_duplicates("unique_id")
    parts = []
    if promotions is not None and len(promotions):
        promo = promotions[["sku", "start_date", "end_date", "discount"]].dropna(
            subset=["start_date", "end_date"]
        )
        start = pd.to_datetime(promo["start_date"]).dt.normalize().to_numpy()
        end = pd.to_datetime(promo["end_date"]).dt.normalize().to_numpy()
        length = np.maximum((end - start) // np.timedelta64(1, "D") + 1, 0).astype(np.int64)
        offsets = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
        days = pd.DataFrame(
            {
                "sku": np.repeat(promo["sku"].to_numpy(), length),
                "ds": np.repeat(start, length) + offsets.astype("timedelta64[D]"),
                "discount": np.repeat(
                    pd.to_numeric(promo["discount"], errors="coerce").fillna(0.0).clip(0, 1).to_numpy(),
                    length,
                ),
            }
        )
        days = days.groupby(["sku", "ds"], as_index=False)["discount"].max()
        on = keys.merge(days, on="sku", how="inner")
        parts.append(
            on.assign(promotion=1.0, holiday=0.0)[["unique_id", "ds", "promotion", "discount", "holiday"]]
        )
    if holidays:
        stamps = pd.to_datetime(sorted({d for d, _ in holidays}))
        parts.append(
            pd.DataFrame(
                {
                    "unique_id": np.repeat(keys["unique_id"].to_numpy(), len(stamps)),
                    "ds": np.tile(stamps.to_numpy(), len(keys)),
                    "promotion": 0.0,
                    "discount": 0.0,
                    "holiday": 1.0,
                }
            )
        )
    if not parts:
        return pd.DataFrame({"unique_id": pd.Series(dtype=object), "ds": pd.Series(dtype="datetime64[ns]")})
    daily = (
        pd.concat(parts, ignore_index=True)
        .groupby(["unique_id", "ds"], as_index=False)
        .agg(promotion=("promotion", "max"), discount=("discount", "max"), holiday=("holiday", "max"))
    )
    daily["ds"] = pd.to_datetime(daily["ds"])
    if freq == "D":
        return daily
    daily["depth"] = daily["discount"] * daily["promotion"]
    weekly = (
        daily.set_index("ds")
        .groupby("unique_id")
        .resample("W-SUN")
        .agg({"promotion": "sum", "depth": "sum", "holiday": "sum"})
        .reset_index()
    )
    weekly["discount"] = np.where(
        weekly["promotion"] > 0, weekly["depth"] / weekly["promotion"].where(weekly["promotion"] > 0, 1), 0.0
    )
    weekly["promotion"] /= 7.0
    weekly["holiday"] /= 7.0
    weekly = weekly[(weekly["promotion"] > 0) | (weekly["holiday"] > 0)]
    return weekly[["unique_id", "ds", "promotion", "discount", "holiday"]].reset_index(drop=True)
