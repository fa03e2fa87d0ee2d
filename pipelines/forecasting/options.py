"""Options of the forecasting stage and their defaults inferred from the pandas frequency."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from pandas.tseries.frequencies import to_offset

from pipelines.forecasting.errors import ForecastInputError


@dataclass(frozen=True)
class ForecastOptions:
    """Tuning knobs of `run_forecast`.

    Attributes:
        season_lengths: seasonal periods in steps of the frequency, shortest first (e.g. (7, 365.25)
            for daily data). Empty for non-seasonal data. Non-integer periods are allowed for
            decomposition; models needing an integer period round them.
        n_jobs: worker processes; None means os.cpu_count(). 1 runs serially.
        backtest_windows: rolling-origin backtest windows (each `horizon` long) used to select and
            combine models and to calibrate intervals.
        combine_top: the largest number of best-ranked models averaged in a combination.
        min_combine: the smallest number of models combined (1 allows a single model).
        nonnegative: True clips forecasts and bounds at 0, False never clips; None (default)
            clips the series whose history has no negative value.
        max_history: keep only the most recent this many observations for fitting (older data
            rarely helps and costs time); at least `min_seasons_kept` seasons are kept.
        min_seasons_kept: lower bound on the kept history, in the longest integer season.
        batch_size: series per task sent to a worker process.
        serial_below: run serially when there are fewer series than this.
        calendar: use the business's week (see `calendar`): periods in which the whole panel never
            had demand are forecast as 0, and intermittent and low-volume forecasts follow the
            weekly profile. Only for frequencies with a weekly (or daily) cycle among the
            season lengths.
        new_product_periods: with peers (`run_forecast(..., peers=...)`), a series with less
            history than this many periods is a new product, forecast from its peers (see
            `peers`); without peers this has no effect.
    """

    season_lengths: tuple[float, ...] = ()
    n_jobs: int | None = None
    backtest_windows: int = 12
    combine_top: int = 3
    min_combine: int = 2
    nonnegative: bool | None = None
    max_history: int = 600
    min_seasons_kept: int = 3
    batch_size: int = 64
    serial_below: int = 40
    calendar: bool = True
    new_product_periods: int = 28

    def __post_init__(self) -> None:
        checks = {
            "backtest_windows": self.backtest_windows >= 0,
            "min_combine": self.min_combine >= 1,
            "combine_top": self.combine_top >= self.min_combine,
            "max_history": self.max_history >= 8,
            "batch_size": self.batch_size >= 1,
            "n_jobs": self.n_jobs is None or self.n_jobs >= 1,
            "new_product_periods": self.new_product_periods >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ForecastInputError(
                    f"ForecastOptions.{name} is out of range, got {getattr(self, name)!r}; expected "
                    "backtest_windows >= 0, 1 <= min_combine <= combine_top, max_history >= 8, "
                    "batch_size >= 1, n_jobs None or >= 1 and new_product_periods >= 1"
                )
        if any(p <= 1 for p in self.season_lengths):
            raise ForecastInputError(
                f"ForecastOptions.season_lengths must be periods > 1, got {self.season_lengths!r}"
            )

    def resolved_jobs(self) -> int:
        """Number of worker processes to use (>= 1)."""
        return max(1, self.n_jobs if self.n_jobs is not None else (os.cpu_count() or 1))


def infer_season_lengths(freq: str) -> tuple[float, ...]:
    """Default seasonal periods for a pandas frequency string.

    Weekly ('W', 'W-SUN', ...): 52 (yearly). Daily ('D'): 7 and 365.25. Business daily ('B'): 5.
    Hourly ('h', 'H'): 24 and 168. Monthly: 12. Quarterly: 4. Minutes: 60*24/step per day.
    Anything else: no seasonality.

    Raises:
        ForecastInputError: `freq` is not a pandas frequency.
    """
    try:
        offset = to_offset(freq)
    except (ValueError, TypeError) as err:
        raise ForecastInputError(
            f"`freq` must be a pandas frequency string such as 'D', 'W-SUN' or 'h', got {freq!r}; "
            "pass the frequency of the history's ds column"
        ) from err
    name = offset.name.upper() if offset.name else ""
    n = int(getattr(offset, "n", 1) or 1)
    base = name.split("-")[0]
    if base == "W":
        return (52.0 / n,) if n < 52 else ()
    if base == "D":
        if n == 1:
            return (7.0, 365.25)
        return (365.25 / n,) if n < 180 else ()
    if base == "B":
        return (5.0,) if n == 1 else ()
    if base in ("H", "HOUR"):
        if n == 1:
            return (24.0, 168.0)
        return tuple(p / n for p in (24.0, 168.0) if p / n >= 2 and float(p / n).is_integer())
    if base in ("T", "MIN"):
        per_day = 24 * 60 / n
        return (per_day,) if per_day.is_integer() and per_day >= 2 else ()
    if base in ("M", "MS", "ME", "BM", "BMS", "BME", "SM", "SMS"):
        return (12.0 / n,) if 12 % n == 0 and n < 12 else ()
    if base in ("Q", "QS", "QE", "BQ", "BQS", "BQE"):
        return (4.0,) if n == 1 else ()
    return ()


def build_options(freq: str, **overrides: Any) -> ForecastOptions:
    """Options with season lengths inferred from `freq`, updated with `overrides`."""
    opts = ForecastOptions(season_lengths=infer_season_lengths(freq))
    if overrides:
        opts = replace(opts, **overrides)
    return opts


def future_index(last: pd.Timestamp, horizon: int, freq: str) -> pd.DatetimeIndex:
    """The `horizon` timestamps following `last` at `freq`."""
    offset = to_offset(freq)
    return pd.date_range(start=last + offset, periods=horizon, freq=offset)
