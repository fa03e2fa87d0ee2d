"""Input contract of the forecasting stage and conversion of the long frame to per-series arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset, Day, Tick, Week

from pipelines.forecasting.errors import ForecastInputError

REQUIRED_COLUMNS = ("unique_id", "ds", "y")


@dataclass(frozen=True)
class SeriesInput:
    """One series on a regular grid: `y` has NaN for gaps, missing and censored values."""

    unique_id: str
    y: np.ndarray
    last_ds: pd.Timestamp


def check_arguments(horizon: object, levels: Sequence[object]) -> tuple[int, tuple[float, ...]]:
    """Validate `horizon` and `levels`; return them as int and a tuple of floats.

    Raises:
        ForecastInputError: horizon is not an integer >= 1, or a level is outside (0, 100).
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ForecastInputError(
            f"`horizon` must be an integer >= 1, got {horizon!r}; pass the number of future periods "
            "to forecast (e.g. horizon=28)"
        )
    if isinstance(levels, str) or not isinstance(levels, Sequence | np.ndarray):
        raise ForecastInputError(
            f"`levels` must be a sequence of numbers in (0, 100), got {levels!r}; pass e.g. levels=(80, 95)"
        )
    out: list[float] = []
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int | float | np.number):
            raise ForecastInputError(
                f"`levels` must be numbers in (0, 100), got {level!r}; pass e.g. levels=(80, 95)"
            )
        value = float(level)
        if not 0.0 < value < 100.0 or not np.isfinite(value):
            raise ForecastInputError(
                f"every interval level must be in (0, 100) (percent), got {level!r}; "
                "pass e.g. levels=(80, 95)"
            )
        out.append(value)
    return int(horizon), tuple(dict.fromkeys(out))


def check_history(history: object) -> pd.DataFrame:
    """Check the long history frame against the contract and return it unchanged.

    Required: a DataFrame with `unique_id`, `ds` (datetime64), `y` (numeric; NaN allowed), optional
    `censored` (bool), no null `unique_id`/`ds`, no duplicate (unique_id, ds).

    Raises:
        ForecastInputError: with the column, the offending value(s) and the fix.
    """
    if not isinstance(history, pd.DataFrame):
        raise ForecastInputError(
            f"`history` must be a pandas DataFrame with columns {list(REQUIRED_COLUMNS)}, "
            f"got {type(history).__name__}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in history.columns]
    if missing:
        raise ForecastInputError(
            f"history is missing required column(s) {missing}; expected {list(REQUIRED_COLUMNS)} "
            f"(+ optional 'censored'), got {list(history.columns)}; rename the columns at extract"
        )
    if history.empty:
        raise ForecastInputError("history has no rows; expected at least one observation per series")
    if not pd.api.types.is_datetime64_any_dtype(history["ds"]):
        raise ForecastInputError(
            f"column 'ds' must have a datetime64 dtype, got {history['ds'].dtype}; "
            "convert it with pd.to_datetime before forecasting"
        )
    if not pd.api.types.is_numeric_dtype(history["y"]) or pd.api.types.is_bool_dtype(history["y"]):
        raise ForecastInputError(
            f"column 'y' must be numeric (float), got {history['y'].dtype}; "
            "cast it with pd.to_numeric before forecasting"
        )
    if history["unique_id"].isna().any() or history["ds"].isna().any():
        n_id, n_ds = int(history["unique_id"].isna().sum()), int(history["ds"].isna().sum())
        raise ForecastInputError(
            f"'unique_id' and 'ds' must not be null, got {n_id} null unique_id and {n_ds} null ds; "
            "drop or repair those rows upstream"
        )
    y = history["y"].to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(y).any():
        raise ForecastInputError(
            f"column 'y' contains {int(np.isinf(y).sum())} infinite value(s); expected finite "
            "numbers or NaN for missing values"
        )
    if "censored" in history.columns:
        cens = history["censored"]
        if not pd.api.types.is_bool_dtype(cens) or cens.isna().any():
            raise ForecastInputError(
                f"column 'censored' must be boolean without nulls, got dtype {cens.dtype}; "
                "set True on stock-out days and False elsewhere"
            )
    dup = history.duplicated(["unique_id", "ds"])
    if dup.any():
        first = history.loc[dup, ["unique_id", "ds"]].iloc[0]
        raise ForecastInputError(
            f"history has {int(dup.sum())} duplicate (unique_id, ds) rows, e.g. "
            f"({first['unique_id']!r}, {first['ds']}); expected one row per series and period; "
            "aggregate duplicates upstream"
        )
    return history


def fixed_step(offset: BaseOffset) -> pd.Timedelta | None:
    """Constant spacing of `offset` when it has one (ticks, days, weeks), else None."""
    if isinstance(offset, Tick):
        return pd.Timedelta(offset)
    if isinstance(offset, Day):
        return pd.Timedelta(days=offset.n)
    if isinstance(offset, Week):
        return pd.Timedelta(weeks=offset.n)
    return None


def _off_grid_error(uid: object, bad: object, first: object, freq: str) -> ForecastInputError:
    return ForecastInputError(
        f"series {uid!r}: ds value {bad} is not on the {freq!r} grid starting at {first}; "
        "expected timestamps spaced exactly by `freq`; pass the frequency of the data "
        "(e.g. 'W-MON' for Monday weeks) or align ds upstream"
    )


def _grid_positions(frame: pd.DataFrame, offset: BaseOffset, freq: str) -> np.ndarray:
    """Position of each row on its series' regular grid (rows sorted by series then ds)."""
    first = frame.groupby("unique_id", sort=False)["ds"].transform("min")
    step = fixed_step(offset)
    if step is not None:
        delta = (frame["ds"] - first).to_numpy()
        pos = delta // step.to_timedelta64()
        bad = delta % step.to_timedelta64() != np.timedelta64(0)
        if isinstance(offset, Week) and offset.weekday is not None:
            bad |= frame["ds"].dt.dayofweek.to_numpy() != offset.weekday
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _off_grid_error(frame["unique_id"].iat[i], frame["ds"].iat[i], first.iat[i], freq)
        return pos.astype(np.int64)
    out = np.empty(len(frame), dtype=np.int64)
    for _, idx in frame.groupby("unique_id", sort=False).indices.items():
        ds = pd.DatetimeIndex(frame["ds"].to_numpy()[idx])
        grid = pd.date_range(start=ds[0], end=ds[-1], freq=offset)
        pos = grid.get_indexer(ds)
        if (pos < 0).any():
            raise _off_grid_error(frame["unique_id"].iat[idx[0]], ds[pos < 0][0], ds[0], freq)
        out[idx] = pos
    return out


def _wall_time(ds: pd.Series) -> pd.Series:
    return ds.dt.tz_localize(None) if ds.dt.tz is not None else ds


def localize_like(stamps: pd.DatetimeIndex, history: pd.DataFrame) -> pd.DatetimeIndex:
    """Give wall-time output stamps the time zone of the history's ds (no-op when naive).

    Ambiguous wall times (DST fall-back) take standard time; non-existent ones (spring-forward)
    move forward, so every output stamp is valid.
    """
    tz = history["ds"].dt.tz
    if tz is None:
        return stamps
    ambiguous = np.zeros(len(stamps), dtype=bool)
    return stamps.tz_localize(tz, ambiguous=ambiguous, nonexistent="shift_forward")


def build_series(history: pd.DataFrame, freq: str) -> list[SeriesInput]:
    """Split a checked history into regular-grid series (order of first appearance).

    Censored observations become NaN: a stock-out only bounds demand from below, so the model must
    not learn from it. Missing periods inside a series become NaN too.

    Raises:
        ForecastInputError: a series' ds values do not lie on the `freq` grid.
    """
    offset = to_offset(freq)
    frame = pd.DataFrame(
        {
            "unique_id": history["unique_id"].astype(str).to_numpy(),
            # time-zone aware stamps are handled as local wall time (see `localize_like`)
            "ds": _wall_time(history["ds"]).to_numpy(),
            "y": history["y"].to_numpy(dtype=np.float64, na_value=np.nan),
        }
    )
    if "censored" in history.columns:
        frame.loc[history["censored"].to_numpy(dtype=bool), "y"] = np.nan
    codes, uniques = pd.factorize(frame["unique_id"])
    frame["code"] = codes
    frame = frame.sort_values(["code", "ds"], kind="stable", ignore_index=True)
    pos = _grid_positions(frame, offset, freq)
    bounds = np.flatnonzero(np.diff(frame["code"].to_numpy())) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(frame)]])
    values = frame["y"].to_numpy()
    ds = frame["ds"].to_numpy()
    out: list[SeriesInput] = []
    for uid, a, b in zip(uniques, starts, ends, strict=True):
        y = np.full(int(pos[b - 1]) + 1, np.nan)
        y[pos[a:b]] = values[a:b]
        out.append(SeriesInput(unique_id=str(uid), y=y, last_ds=pd.Timestamp(ds[b - 1])))
    return out
