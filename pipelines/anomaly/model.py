"""Numeric core of the metric scorer on a dense (series x day) matrix.

Model (``robust-weekday-z``): the expectation of day ``t`` is the median of the same weekday over the
previous 8 weeks; the residual is scaled by 1.4826 x MAD of those values; the score is one minus the
two-sided Student-t tail probability of the scaled residual (degrees of freedom from the number of
values), so short histories get wide bands. Known-event days are left out of the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from pipelines.anomaly.windows import lagged_windows, quantile_sorted, sorted_count

MODEL_LABEL = "robust-weekday-z"
#: Days of history before ``t`` that any statistic at ``t`` reads. An incremental run must be given at
#: least this many days before its first output day to reproduce a full run exactly.
REQUIRED_HISTORY_DAYS = 91

KIND_NONE, KIND_SPIKE, KIND_DIP, KIND_SHIFT, KIND_MISSING = 0, 1, 2, 3, 4
KIND_LABELS: dict[int, str | None] = {
    KIND_NONE: None,
    KIND_SPIKE: "spike",
    KIND_DIP: "dip",
    KIND_SHIFT: "level_shift",
    KIND_MISSING: "missing",
}
_MAD_TO_SD = 1.4826
_WEEKS = 8
_MISSING_WINDOW = 28
_MISSING_PRESENT_FRACTION = 0.9


@dataclass(frozen=True)
class MatrixScores:
    """Scores for columns ``[start, T)`` of a chunk; every array is (series, T - start)."""

    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    score: np.ndarray
    is_anomaly: np.ndarray
    kind: np.ndarray
    shift_start: np.ndarray


def two_sided_score(z: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """One minus the two-sided Student-t tail probability of ``z`` with ``dof`` degrees of freedom."""
    return 1.0 - 2.0 * special.stdtr(dof, -np.abs(z))


def t_quantile(dof: np.ndarray, threshold: float) -> np.ndarray:
    """Half-width, in scale units, of the two-sided band holding ``threshold`` of a Student-t."""
    return special.stdtrit(dof, 1.0 - (1.0 - threshold) / 2.0)


def score_matrix(
    y: np.ndarray, event: np.ndarray, start: int, *, threshold: float, min_history: int
) -> MatrixScores:
    """Score columns ``[start, T)`` of ``y`` (NaN = no value) using only earlier columns.

    Args:
        y: (series, days) values.
        event: (series, days) True on known-event days (never alarms, excluded from history).
        start: first output column.
        threshold: score threshold of ``is_anomaly``.
        min_history: valid history values needed before alarms.
    """
    stop = y.shape[1]
    hist = np.where(event, np.nan, y)
    win = lagged_windows(hist, start, stop, first_lag=7, n=_WEEKS, step=7)
    s, cnt = sorted_count(win)
    med = quantile_sorted(s, cnt, 0.5)
    dev = np.sort(np.abs(win - med[..., None]), axis=-1)
    mad = quantile_sorted(dev, cnt, 0.5)
    mean_ad = np.nanmean(np.abs(win - med[..., None]), axis=-1) if win.size else med
    scale = np.fmax(_MAD_TO_SD * mad, 1.2533 * mean_ad)
    scale = np.fmax(scale, 1e-9 * (1.0 + np.abs(med)))
    dof = np.maximum(cnt - 1, 1).astype(np.float64)
    yt = y[:, start:]
    z = (yt - med) / scale
    score = two_sided_score(z, dof)
    half = t_quantile(dof, threshold) * scale
    lower, upper = med - half, med + half

    recent = lagged_windows(y, start, stop, first_lag=1, n=_MISSING_WINDOW)
    present = np.count_nonzero(~np.isnan(recent), axis=-1)
    long_hist = lagged_windows(y, start, stop, first_lag=1, n=REQUIRED_HISTORY_DAYS)
    n_valid = np.count_nonzero(~np.isnan(long_hist), axis=-1)
    n_missing = REQUIRED_HISTORY_DAYS - n_valid
    missing = np.isnan(yt)
    # Probability that a day is missing, estimated from the last 91 days (Jeffreys prior).
    miss_score = 1.0 - (n_missing + 0.5) / (REQUIRED_HISTORY_DAYS + 1.0)
    score = np.where(missing, miss_score, score)
    enough = (cnt >= 4) & (n_valid >= min_history)
    ev = event[:, start:]
    kind = np.where(z > 0, KIND_SPIKE, KIND_DIP).astype(np.int8)
    is_anom = enough & ~ev & ~missing & (score >= threshold)
    usual_reporter = present >= _MISSING_PRESENT_FRACTION * _MISSING_WINDOW
    miss_anom = missing & usual_reporter & ~ev
    kind = np.where(missing, np.where(usual_reporter, KIND_MISSING, KIND_NONE), kind)
    kind = np.where(~missing & (score < threshold), KIND_NONE, kind).astype(np.int8)
    score = np.where(np.isnan(score), 0.0, score)
    return MatrixScores(
        expected=med,
        lower=lower,
        upper=upper,
        score=np.clip(score, 0.0, 1.0),
        is_anomaly=is_anom | miss_anom,
        kind=kind,
        shift_start=np.full(yt.shape, -1, dtype=np.int64),
    )
