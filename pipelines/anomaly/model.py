"""Numeric core of the metric scorer on a dense (series x day) matrix.

Model ``causal-robust-decomposition`` (every statistic of day ``t`` reads only days before ``t``):

* level ``B_t``: median of the last 28 days (4 of each weekday, so weekday-neutral);
* weekday offset ``O_t``: median over the last 8 same weekdays ``s`` of ``y_s - B_s``. Because ``B``
  trails by two weeks, the offset also absorbs that lag under a local linear trend;
* yearly correction ``Y_t``: median of last year's residuals ``y_s - B_s - O_s`` over the 29 days around
  ``t - 364`` (same weekday alignment), shrunk to 0 unless it is clearly non-zero;
* ``expected = B + O + Y``; residual scale: the larger of IQR / 1.349 and the 5-95% range / 3.29 of the
  residuals of the last 56 days (both estimate a Gaussian sigma; the second guards against heavy
  tails), floored at 1 for count series (so ordinary zeros and ones never alarm); in intermittent
  series (mostly zeros) a value up to the recent maximum is treated as ordinary. The scale and the
  yearly term move slowly and are computed once a week, at a fixed weekday (calendar-anchored, so a
  run over any range of days gives the same values);
* point score: one minus the two-sided Student-t tail probability of ``z = (y - expected) / scale``,
  with degrees of freedom from the number of residuals (0.37 per residual, the efficiency of IQR),
  so short histories get wide bands;
* level shift: a scan over the last 2..14 days of standardised sums of z (variance corrected for the
  lag-1 autocorrelation of z over the last 56 days), with Siegmund's tail approximation for the
  maximum over window lengths; the start of the best window is reported as "since".

Known-event days are left out of the history. Missing days are flagged when the series reported on at
least 90% of the previous 28 days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from pipelines.anomaly.windows import lagged_windows, quantile_sorted, sorted_count, windows_at

MODEL_LABEL = "causal-robust-decomposition"

_LEVEL_DAYS = 28
_WEEKS = 8
_YEAR = 364
_YEAR_HALF_WIDTH = 14
_SCALE_DAYS = 56
_SCAN_DAYS = 14
_MISSING_WINDOW = 28
_MISSING_PRESENT_FRACTION = 0.9
_IQR_TO_SD = 1.349
_Q90_RANGE_TO_SD = 3.2897
_MAD_EFFICIENCY = 0.37
_Z_CLIP = 4.0
_MAX_RHO = 0.8
_SHIFT_MIN_POINT_Z = 1.0
_YEARLY_MIN_COUNT = 15
_YEARLY_SHRINK_SE = 2.0
_INTERMITTENT_ZERO_FRACTION = 0.5
_INTERMITTENT_MAX_Z = 3.0

#: Days of history before ``t`` that any statistic at ``t`` reads. An incremental run must be given at
#: least this many days before its first output day to reproduce a full run exactly.
REQUIRED_HISTORY_DAYS = (
    # shift scan + autocorrelation window + weekly anchors of the scale and yearly terms + yearly
    # window + weekday offsets + level window
    _SCAN_DAYS + 2 * _SCALE_DAYS + 1 + 2 * 7 + _YEAR + _YEAR_HALF_WIDTH + 7 * _WEEKS + _LEVEL_DAYS
)

KIND_NONE, KIND_SPIKE, KIND_DIP, KIND_SHIFT, KIND_MISSING = 0, 1, 2, 3, 4
KIND_LABELS: dict[int, str | None] = {
    KIND_NONE: None,
    KIND_SPIKE: "spike",
    KIND_DIP: "dip",
    KIND_SHIFT: "level_shift",
    KIND_MISSING: "missing",
}


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


def shift_score(stat: np.ndarray, n_scales: float) -> np.ndarray:
    """One minus the two-sided tail probability of a max-over-scales standardised-sum statistic.

    Uses Siegmund's approximation ``P(max_j S_j / sqrt(j) > x) ~ 1 - Phi(x) + x phi(x) log(b / a)`` for
    window lengths ``a..b`` (``n_scales = b / a``).
    """
    x = np.abs(stat)
    tail = special.ndtr(-x) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi) * np.log(n_scales)
    return 1.0 - np.minimum(1.0, 2.0 * tail)


def _median_at(
    x: np.ndarray, cols: np.ndarray, first_lag: int, n: int, step: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    s, c = sorted_count(windows_at(x, cols, first_lag, n, step), in_place=True)
    return quantile_sorted(s, c, 0.5), c


def _rolling_count(mask: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """Number of True cells among the ``n`` days before each column (exact integer arithmetic)."""
    c = np.zeros((mask.shape[0], mask.shape[1] + 1), dtype=np.int32)
    np.cumsum(mask, axis=1, out=c[:, 1:])
    return c[:, cols] - c[:, cols - n]


def _span(a: int, b: int) -> np.ndarray:
    return np.arange(a, b, dtype=np.intp)


def _anchors(cols: np.ndarray, day_of_col0: int) -> np.ndarray:
    """Weekly anchor of each column: the latest earlier column falling on a Thursday.

    Slow-moving statistics (residual scale, yearly correction) are computed once per week at the
    anchor; being tied to the calendar, they are the same whatever range of days is scored.
    """
    prev = cols - 1
    return prev - (day_of_col0 + prev) % 7


def _expected_at(hist: np.ndarray, cols: np.ndarray, pad: int, day_of_col0: int) -> np.ndarray:
    """Expected value (``B + O + Y``) of padded history ``hist`` at padded columns ``cols``."""
    anchor = _anchors(cols, day_of_col0)
    ycols, yidx = np.unique(anchor, return_inverse=True)
    year_cols = np.unique(
        (ycols[:, None] + 1 - _YEAR + np.arange(-_YEAR_HALF_WIDTH, _YEAR_HALF_WIDTH + 1)[None, :]).ravel()
    )
    year_cols = year_cols[year_cols >= pad]
    base_cols = np.union1d(cols, year_cols)
    level_cols = np.unique((base_cols[:, None] - 7 * np.arange(0, _WEEKS + 1)[None, :]).ravel())
    level_cols = level_cols[level_cols >= pad]
    level = np.full(hist.shape, np.nan)
    level[:, level_cols], _ = _median_at(hist, level_cols, 1, _LEVEL_DAYS)
    offset, n_off = _median_at(hist - level, base_cols, 7, _WEEKS, 7)
    base = np.full(hist.shape, np.nan)
    base[:, base_cols] = level[:, base_cols] + np.where(n_off >= 2, offset, 0.0)
    resid0 = hist - base
    win = windows_at(resid0, ycols, _YEAR - _YEAR_HALF_WIDTH - 1, 2 * _YEAR_HALF_WIDTH + 1)
    s, c = sorted_count(win, in_place=True)
    yearly = quantile_sorted(s, c, 0.5)
    sd = (quantile_sorted(s, c, 0.75) - quantile_sorted(s, c, 0.25)) / _IQR_TO_SD
    se = _YEARLY_SHRINK_SE * 1.2533 * sd / np.sqrt(np.maximum(c, 1))
    yearly = np.sign(yearly) * np.maximum(np.abs(yearly) - se, 0.0)
    yearly = np.where((c >= _YEARLY_MIN_COUNT) & np.isfinite(yearly), yearly, 0.0)
    return base[:, cols] + yearly[:, yidx.ravel()]


def score_matrix(
    y: np.ndarray, event: np.ndarray, start: int, *, day0: int, threshold: float, min_history: int
) -> MatrixScores:
    """Score columns ``[start, T)`` of ``y`` (NaN = no value) using only earlier columns.

    Args:
        y: (series, days) values.
        day0: day number (days since 1970-01-01) of column 0.
        event: (series, days) True on known-event days (never alarms, excluded from history).
        start: first output column.
        threshold: score threshold of ``is_anomaly``.
        min_history: valid history values needed before alarms.
    """
    n_series, n_days = y.shape
    pad = REQUIRED_HISTORY_DAYS + 1
    yp = np.concatenate([np.full((n_series, pad), np.nan), y], axis=1)
    evp = np.concatenate([np.zeros((n_series, pad), dtype=bool), event], axis=1)
    hist = np.where(evp, np.nan, yp)
    out_cols = _span(start + pad, n_days + pad)
    z_cols = _span(max(start + pad - _SCAN_DAYS + 1 - _SCALE_DAYS, pad), n_days + pad)
    exp_cols = _span(max(z_cols[0] - _SCALE_DAYS, pad) if len(z_cols) else pad, n_days + pad)

    expected = np.full(yp.shape, np.nan)
    if len(exp_cols):
        expected[:, exp_cols] = _expected_at(hist, exp_cols, pad, day0 - pad)
    resid = hist - expected

    # Residual scale at the z columns: two quantile-based Gaussian sigma estimates (IQR / 1.349 and the
    # 5-95% range / 3.29); the larger one guards against heavy tails.
    # Computed at weekly anchors (see _anchors) and spread to the days that follow them.
    acols, aidx = np.unique(_anchors(z_cols, day0 - pad), return_inverse=True)
    aidx = aidx.ravel()
    s, n_res = sorted_count(windows_at(resid, acols, 0, _SCALE_DAYS), in_place=True)
    q = {p: quantile_sorted(s, n_res, p)[:, aidx] for p in (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)}
    n_res = n_res[:, aidx]
    scale = np.fmax((q[0.75] - q[0.25]) / _IQR_TO_SD, (q[0.95] - q[0.05]) / _Q90_RANGE_TO_SD)
    n_hist = _rolling_count(~np.isnan(hist), acols + 1, _SCALE_DAYS)[:, aidx]
    n_int = _rolling_count(hist == np.round(hist), acols + 1, _SCALE_DAYS)[:, aidx]
    n_zero = _rolling_count(hist == 0, acols + 1, _SCALE_DAYS)[:, aidx]
    counts = (n_hist > 0) & (n_int == n_hist)
    scale = np.where(counts, np.fmax(scale, 1.0), scale)
    intermittent = n_zero >= _INTERMITTENT_ZERO_FRACTION * np.maximum(n_hist, 1)
    recent_max = np.fmax(q[1.0] - q[0.5], q[0.5] - q[0.0])
    scale = np.where(intermittent, np.fmax(scale, recent_max / _INTERMITTENT_MAX_Z), scale)
    level_abs = np.abs(expected[:, z_cols])
    scale = np.fmax(np.nan_to_num(scale, nan=0.0), 1e-3 * np.nan_to_num(level_abs, nan=0.0) + 1e-9)
    dof = np.maximum(_MAD_EFFICIENCY * (n_res - 1), 1.0)

    yz = yp[:, z_cols]
    z = (yz - expected[:, z_cols]) / scale
    point = two_sided_score(z, dof)
    # Level shift: standardised sums of Gaussian-equivalent z over the last 2..14 days, with the
    # variance of the sums corrected for the lag-1 autocorrelation of z seen over the last 56 days.
    zg = np.clip(special.ndtri(np.clip(special.stdtr(dof, z), 1e-300, 1 - 1e-16)), -_Z_CLIP, _Z_CLIP)
    zg = np.where(np.isnan(z) | evp[:, z_cols], np.nan, zg)
    k = len(out_cols)
    zo = len(z_cols) - k
    zpad = np.concatenate([np.full((n_series, _SCAN_DAYS + _SCALE_DAYS + 1), np.nan), zg], axis=1)
    off = _SCAN_DAYS + _SCALE_DAYS + 1 + zo
    z0 = np.nan_to_num(zpad)
    pairs = np.zeros_like(z0)
    pairs[:, 1:] = z0[:, 1:] * z0[:, :-1]
    # Contiguous copies: sums over sliding-window views may be reordered by numpy, which would make
    # an incremental run differ from a full one in the last bits.
    lagprod = np.ascontiguousarray(lagged_windows(pairs, off, off + k, 1, _SCALE_DAYS)).sum(axis=-1)
    sq = np.ascontiguousarray(lagged_windows(z0 * z0, off, off + k, 1, _SCALE_DAYS)).sum(axis=-1)
    rho = np.clip(np.where(sq > 0, lagprod / np.where(sq > 0, sq, 1.0), 0.0), 0.0, _MAX_RHO)
    scan = lagged_windows(zpad, off, off + k, 0, _SCAN_DAYS)[..., ::-1]
    sums = np.cumsum(np.nan_to_num(scan), axis=-1)
    nval = np.cumsum(~np.isnan(scan), axis=-1)
    r = rho[..., None]
    var = nval * (1 + r) / (1 - r) - 2 * r * (1 - r**nval) / (1 - r) ** 2
    stat = np.where(nval >= 2, sums / np.sqrt(np.maximum(var, 1.0)), 0.0)
    stat[..., 0] = 0.0
    best = np.argmax(np.abs(stat), axis=-1)
    best_stat = np.take_along_axis(stat, best[..., None], axis=-1)[..., 0]
    shift = shift_score(best_stat, _SCAN_DAYS / 2.0)

    zt, pt = z[:, zo:], point[:, zo:]
    yt, evt = yp[:, out_cols], evp[:, out_cols]
    missing = np.isnan(yt)
    consistent = (np.sign(zt) == np.sign(best_stat)) & (np.abs(zt) >= _SHIFT_MIN_POINT_Z)
    is_shift = consistent & (shift >= threshold) & (shift > pt)
    score = np.where(is_shift, shift, pt)
    kind = np.where(zt > 0, KIND_SPIKE, KIND_DIP)
    kind = np.where(is_shift, KIND_SHIFT, kind)
    kind = np.where(score >= threshold, kind, KIND_NONE)
    shift_start = np.where(is_shift, out_cols[None, :] - pad - best, -1)

    recent = windows_at(yp, out_cols, 1, _MISSING_WINDOW)
    present = np.count_nonzero(~np.isnan(recent), axis=-1)
    n_valid = n_hist[:, zo:]
    n_missing = _SCALE_DAYS - n_valid
    # Probability that a day is missing, estimated from the last 56 days (Jeffreys prior).
    miss_score = 1.0 - (n_missing + 0.5) / (_SCALE_DAYS + 1.0)
    usual_reporter = present >= _MISSING_PRESENT_FRACTION * _MISSING_WINDOW
    score = np.where(missing, np.where(usual_reporter, miss_score, 0.0), score)
    kind = np.where(missing, np.where(usual_reporter, KIND_MISSING, KIND_NONE), kind).astype(np.int8)
    enough = (n_valid >= min_history) & (n_res[:, zo:] >= 7)
    is_anom = (enough & ~evt & ~missing & (score >= threshold)) | (missing & usual_reporter & ~evt)
    half = t_quantile(dof[:, zo:], threshold) * scale[:, zo:]
    exp_out = expected[:, out_cols]
    return MatrixScores(
        expected=exp_out,
        lower=exp_out - half,
        upper=exp_out + half,
        score=np.clip(np.nan_to_num(score, nan=0.0), 0.0, 1.0),
        is_anomaly=is_anom,
        kind=kind,
        shift_start=shift_start,
    )
