"""Input contracts of the metric scorer and the dense (series x period) panel it works on.

Input frames are long (``unique_id, ds, y``). The scorer works on a dense float matrix per chunk of
series: one row per series, one column per period (a day, an hour, ...), NaN where a period has no
value. Absent periods inside a series' range therefore become NaN cells and come back as output rows
with ``y = NaN``. Periods are numbered from 1970-01-01 00:00 (see :mod:`pipelines.anomaly.cadence`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.anomaly.cadence import Cadence, cadence_for, parse_freq
from pipelines.anomaly.errors import AnomalyInputError

logger = logging.getLogger(__name__)

SERIES_COLUMNS = ("unique_id", "ds", "y")
EVENT_COLUMNS = ("unique_id", "ds", "event")
FEEDBACK_COLUMNS = ("unique_id", "ds")
ALL_SERIES = "*"
#: Label of points an analyst marked as expected (false positives), see ``score(feedback=...)``.
FEEDBACK_LABEL = "marked as expected by an analyst"
_DAY_NS = 86_400 * 10**9
_MINUTE_NS = 60 * 10**9


@dataclass(frozen=True)
class SeriesPanel:
    """Validated series in compact arrays.

    Attributes:
        ids: series names, one per series (sorted).
        codes: series index of every input row.
        periods: period number (periods since 1970-01-01 00:00) of every input row.
        y: value of every input row (float64, NaN allowed).
        first: first period number of every series.
        last: last period number of every series (extended to ``end`` if given).
        cadence: the sampling period and the model's windows.
    """

    ids: np.ndarray
    codes: np.ndarray
    periods: np.ndarray
    y: np.ndarray
    first: np.ndarray
    last: np.ndarray
    cadence: Cadence


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


def _stamps(ds: pd.Series, what: str) -> np.ndarray:
    """Timestamps as int64 nanoseconds since 1970-01-01 (naive, as given)."""
    if not pd.api.types.is_datetime64_dtype(ds.dtype):
        raise AnomalyInputError(
            f"{what}.ds must be a datetime64 column of regular timestamps (daily, hourly, ...), got dtype "
            f"{ds.dtype}; convert it with pd.to_datetime"
        )
    if ds.isna().any():
        raise AnomalyInputError(f"{what}.ds has {int(ds.isna().sum())} null value(s); expected none")
    return ds.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _to_periods(stamps: np.ndarray, cad: Cadence, what: str) -> np.ndarray:
    off = np.mod(stamps, cad.period_ns) != 0
    if off.any():
        example = pd.Timestamp(int(stamps[np.argmax(off)]))
        grid = "midnight daily" if cad.is_daily else f"every {pd.Timedelta(cad.period_ns, unit='ns')}"
        raise AnomalyInputError(
            f"{what}.ds must hold timestamps on the series' grid ({grid}), got {example}; "
            "aggregate to the series' period first (e.g. ds.dt.floor('h') after summing per hour)"
        )
    return np.floor_divide(stamps, cad.period_ns)


def resolve_cadence(df: pd.DataFrame, freq: str | pd.Timedelta | None) -> Cadence:
    """The cadence of ``df.ds``: ``freq`` if given, else inferred from the timestamps.

    Midnight timestamps only: daily. Otherwise the greatest common divisor of the steps between
    consecutive timestamps of each series (and of a day), e.g. one hour for hourly series with gaps.

    Raises:
        AnomalyInputError: on a bad ``ds`` column or a period that does not divide a day.
    """
    df = _check_columns(df, SERIES_COLUMNS, "df")
    stamps = _stamps(df["ds"], "df")
    if freq is not None:
        return cadence_for(parse_freq(freq))
    if not np.mod(stamps, _DAY_NS).any():
        return cadence_for(_DAY_NS)
    codes = pd.factorize(df["unique_id"])[0]
    order = np.lexsort((stamps, codes))
    steps = np.diff(stamps[order])[np.diff(codes[order]) == 0]
    period = int(np.gcd.reduce(np.concatenate([[_DAY_NS], np.unique(steps[steps > 0])]).astype(np.int64)))
    if period < _MINUTE_NS:
        raise AnomalyInputError(
            f"df.ds must hold regular timestamps (midnight daily, hourly, every 15 minutes, ...), but the "
            f"steps between timestamps have no common period of a minute or more (got "
            f"{pd.Timedelta(period, unit='ns')}); aggregate to a regular period first (e.g. ds.dt.floor('h'))"
        )
    return cadence_for(period)


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


def build_series_panel(
    df: pd.DataFrame, *, end: pd.Timestamp | None = None, freq: str | pd.Timedelta | None = None
) -> SeriesPanel:
    """Validate a long ``unique_id, ds, y`` frame and return it as a :class:`SeriesPanel`.

    Args:
        df: the series.
        end: extend every series up to the period holding this timestamp.
        freq: the sampling period (e.g. "D", "h"); inferred from ``ds`` when None.

    Raises:
        AnomalyInputError: on missing columns, wrong dtypes, timestamps off the period grid, null
            keys, duplicate keys or infinite y.
    """
    cad = resolve_cadence(df, freq)
    _check_ids(df["unique_id"], "df")
    periods = _to_periods(_stamps(df["ds"], "df"), cad, "df")
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
    key = codes * (1 << 32) + (periods - periods.min() if len(periods) else periods)
    dup_mask = pd.Index(key).duplicated()
    if dup_mask.any():
        row = int(np.argmax(dup_mask))
        when = pd.Timestamp(df["ds"].iloc[row])
        raise AnomalyInputError(
            f"df has duplicate (unique_id, ds) keys, e.g. ({ids[codes[row]]!r}, "
            f"{when.date() if cad.is_daily else when}); expected one row per series and "
            f"{cad.unit_name()}; aggregate duplicates before scoring"
        )
    n = len(ids)
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first, codes, periods)
    np.maximum.at(last, codes, periods)
    if end is not None:
        last = np.maximum(last, period_of(end, cad))
    return SeriesPanel(ids=ids, codes=codes, periods=periods, y=y, first=first, last=last, cadence=cad)


def period_of(when: pd.Timestamp, cad: Cadence) -> int:
    """Number of the period holding ``when`` (the day of a timestamp for daily series)."""
    return int(pd.Timestamp(when).value // cad.period_ns)


def build_event_table(events: pd.DataFrame | None, cad: Cadence) -> pd.DataFrame:
    """Validate known events; return ``unique_id`` ("*" = every series), ``period`` (int), ``event``.

    For series sampled several times a day, an event at midnight covers the whole day (holidays and
    promotions are given as dates); any other timestamp marks its own period.

    Raises:
        AnomalyInputError: on missing columns, wrong dtypes or empty event labels.
    """
    if events is None:
        return _empty_table()
    events = _check_columns(events, EVENT_COLUMNS, "events")
    _check_ids(events["unique_id"], "events", allow_null=True)
    stamps = _stamps(events["ds"], "events")
    labels = events["event"]
    if labels.isna().any() or not labels.map(lambda v: isinstance(v, str) and v.strip() != "").all():
        raise AnomalyInputError(
            "events.event must hold non-empty strings such as 'promotion' or 'holiday: Christmas'"
        )
    uid = events["unique_id"].to_numpy(dtype=object).copy()
    uid[pd.isna(uid)] = ALL_SERIES
    lab = labels.to_numpy(dtype=object)
    if not cad.is_daily:
        whole_day = np.mod(stamps, _DAY_NS) == 0
        reps = np.where(whole_day, cad.per_day, 1)
        within = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
        stamps = np.repeat(stamps, reps) + within * cad.period_ns
        uid, lab = np.repeat(uid, reps), np.repeat(lab, reps)
    periods = _to_periods(stamps, cad, "events")
    out = pd.DataFrame({"unique_id": uid, "period": periods, "event": lab})
    # One label per (series, period): several events on a period are joined, in their order.
    out = out.drop_duplicates().sort_values(["unique_id", "period"], kind="stable", ignore_index=True)
    shared = out.duplicated(["unique_id", "period"], keep=False).to_numpy()
    if not shared.any():
        return out
    joined = (
        out[shared]
        .groupby(["unique_id", "period"], as_index=False, sort=True)["event"]
        .agg(lambda s: "; ".join(s))
    )
    single = out[~shared]
    return pd.concat([single, joined], ignore_index=True).sort_values(
        ["unique_id", "period"], kind="stable", ignore_index=True
    )


def build_feedback_table(feedback: pd.DataFrame | None, cad: Cadence) -> pd.DataFrame:
    """Validate analyst feedback (``unique_id, ds`` of points marked as expected / false positives).

    Returns the same form as :func:`build_event_table`, labelled :data:`FEEDBACK_LABEL`.

    Raises:
        AnomalyInputError: on missing columns, null or non-string ids, or timestamps off the grid.
    """
    if feedback is None:
        return _empty_table()
    feedback = _check_columns(feedback, FEEDBACK_COLUMNS, "feedback")
    _check_ids(feedback["unique_id"], "feedback")
    periods = _to_periods(_stamps(feedback["ds"], "feedback"), cad, "feedback")
    out = pd.DataFrame(
        {
            "unique_id": feedback["unique_id"].to_numpy(dtype=object),
            "period": periods,
            "event": FEEDBACK_LABEL,
        }
    )
    return out.drop_duplicates(["unique_id", "period"]).reset_index(drop=True)


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_id": pd.Series([], dtype=object),
            "period": pd.Series([], dtype=np.int64),
            "event": pd.Series([], dtype=object),
        }
    )


def period_to_timestamp(periods: np.ndarray, cad: Cadence) -> np.ndarray:
    """Convert period numbers to ``datetime64[ns]``."""
    return (np.asarray(periods, dtype=np.int64) * cad.period_ns).astype("datetime64[ns]")
