"""Input contracts of the metric scorer and the dense (series x day) panel it works on.

Input frames are long (``unique_id, ds, y``). The scorer works on a dense float matrix per chunk of
series: one row per series, one column per calendar day, NaN where a day has no value. Absent days
inside a series' range therefore become NaN cells and come back as output rows with ``y = NaN``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.anomaly.errors import AnomalyInputError

logger = logging.getLogger(__name__)

SERIES_COLUMNS = ("unique_id", "ds", "y")
EVENT_COLUMNS = ("unique_id", "ds", "event")
ALL_SERIES = "*"
_DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class SeriesPanel:
    """Validated series in compact arrays.

    Attributes:
        ids: series names, one per series (sorted).
        codes: series index of every input row.
        days: day number (days since 1970-01-01) of every input row.
        y: value of every input row (float64, NaN allowed).
        first_day: first day number of every series.
        last_day: last day number of every series (extended to ``end`` if given).
    """

    ids: np.ndarray
    codes: np.ndarray
    days: np.ndarray
    y: np.ndarray
    first_day: np.ndarray
    last_day: np.ndarray


def _check_columns(df: object, required: tuple[str, ...], what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise AnomalyInputError(
            f"{what} must be a pandas DataFrame with columns {list(required)}, got {type(df).__name__}"
        )
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise AnomalyInputError(
            f"{what} is missing column(s) {missing}: expected {list(required)}, got {list(df.columns)}; "
            "rename the columns at the extract boundary"
        )
    return df


def _to_days(ds: pd.Series, what: str) -> np.ndarray:
    if not pd.api.types.is_datetime64_dtype(ds.dtype):
        raise AnomalyInputError(
            f"{what}.ds must be a datetime64 column of daily timestamps, got dtype {ds.dtype}; "
            "convert it with pd.to_datetime"
        )
    if ds.isna().any():
        raise AnomalyInputError(f"{what}.ds has {int(ds.isna().sum())} null value(s); expected none")
    values = ds.to_numpy(dtype="datetime64[ns]")
    days = values.astype("datetime64[D]")
    off = values != days.astype("datetime64[ns]")
    if off.any():
        example = pd.Timestamp(values[np.argmax(off)])
        raise AnomalyInputError(
            f"{what}.ds must hold midnight daily timestamps, got {example}; "
            "aggregate to days first (e.g. ds.dt.normalize() after summing per day)"
        )
    return days.astype(np.int64)


def _check_ids(ids: pd.Series, what: str, allow_null: bool = False) -> None:
    if not allow_null and ids.isna().any():
        raise AnomalyInputError(f"{what}.unique_id has {int(ids.isna().sum())} null value(s); expected none")
    if isinstance(ids.dtype, pd.StringDtype):
        return
    # infer_dtype scans in C; the element-wise look-up below only runs to name an offending value.
    if pd.api.types.infer_dtype(ids, skipna=True) not in ("string", "empty"):
        non_str = ids.dropna().map(type).ne(str)
        bad = ids.dropna()[non_str].iloc[0]
        raise AnomalyInputError(
            f"{what}.unique_id must hold strings, got {bad!r} of type {type(bad).__name__}; "
            "cast it with .astype(str)"
        )


def build_series_panel(df: pd.DataFrame, *, end: pd.Timestamp | None = None) -> SeriesPanel:
    """Validate a long ``unique_id, ds, y`` frame and return it as a :class:`SeriesPanel`.

    Raises:
        AnomalyInputError: on missing columns, wrong dtypes, null keys, duplicate keys or infinite y.
    """
    df = _check_columns(df, SERIES_COLUMNS, "df")
    _check_ids(df["unique_id"], "df")
    days = _to_days(df["ds"], "df")
    if not pd.api.types.is_numeric_dtype(df["y"].dtype) or pd.api.types.is_bool_dtype(df["y"].dtype):
        raise AnomalyInputError(
            f"df.y must be numeric (float, NaN allowed), got dtype {df['y'].dtype}; "
            "convert it with pd.to_numeric"
        )
    y = df["y"].to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(y).any():
        raise AnomalyInputError("df.y has infinite value(s); expected finite numbers or NaN for no value")
    # Hash-based factorize (then sorting only the distinct ids) is much faster than np.unique on
    # millions of Python strings.
    codes, uniques = pd.factorize(df["unique_id"], sort=True)
    ids = np.asarray(uniques, dtype=object)
    codes = np.asarray(codes, dtype=np.int64)
    key = codes * (1 << 32) + (days - days.min() if len(days) else days)
    dup_mask = pd.Index(key).duplicated()
    if dup_mask.any():
        row = int(np.argmax(dup_mask))
        raise AnomalyInputError(
            f"df has duplicate (unique_id, ds) keys, e.g. ({ids[codes[row]]!r}, "
            f"{pd.Timestamp(df['ds'].iloc[row]).date()}); expected one row per series and day; "
            "aggregate duplicates before scoring"
        )
    n = len(ids)
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first, codes, days)
    np.maximum.at(last, codes, days)
    if end is not None:
        end_day = int(np.datetime64(pd.Timestamp(end).normalize().asm8, "D").astype(np.int64))
        last = np.maximum(last, end_day)
    return SeriesPanel(ids=ids, codes=codes, days=days, y=y, first_day=first, last_day=last)


def build_event_table(events: pd.DataFrame | None) -> pd.DataFrame:
    """Validate known events; return ``unique_id`` ("*" = every series), ``day`` (int) and ``event``.

    Raises:
        AnomalyInputError: on missing columns, wrong dtypes or empty event labels.
    """
    if events is None:
        return pd.DataFrame({"unique_id": pd.Series([], dtype=object), "day": [], "event": []})
    events = _check_columns(events, EVENT_COLUMNS, "events")
    _check_ids(events["unique_id"], "events", allow_null=True)
    days = _to_days(events["ds"], "events")
    labels = events["event"]
    if labels.isna().any() or not labels.map(lambda v: isinstance(v, str) and v.strip() != "").all():
        raise AnomalyInputError(
            "events.event must hold non-empty strings such as 'promotion' or 'holiday: Christmas'"
        )
    uid = events["unique_id"].to_numpy(dtype=object).copy()
    uid[pd.isna(uid)] = ALL_SERIES
    out = pd.DataFrame({"unique_id": uid, "day": days, "event": labels.to_numpy(dtype=object)})
    # One label per (series, day): several events on a day are joined.
    return out.groupby(["unique_id", "day"], as_index=False, sort=True)["event"].agg(
        lambda s: "; ".join(dict.fromkeys(s))
    )


def day_to_timestamp(days: np.ndarray) -> np.ndarray:
    """Convert day numbers to ``datetime64[ns]``."""
    return (days.astype("datetime64[D]")).astype("datetime64[ns]")
