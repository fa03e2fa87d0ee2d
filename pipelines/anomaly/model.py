"""Numeric core of the metric scorer on a dense (series x period) matrix.

Model ``causal-robust-decomposition`` (every statistic of period ``t`` reads only periods before
``t``). Window lengths come from the series' :class:`~pipelines.anomaly.cadence.Cadence`; the figures
below are those of daily series (hourly and finer series: see ``cadence.py``):

* level ``B_t``: median of the last 28 days (4 of each weekday, so weekday-neutral); for series
  sampled several times a day, the 5%-trimmed mean of the last week, refreshed at midnight;
* seasonal offset ``O_t``: median over the last 8 same weekdays ``s`` of ``y_s - B_s`` (hourly:
  the same hour of the week, or of the day while fewer than two weeks are known). Because ``B``
  trails by two weeks, the offset also absorbs that lag under a local linear trend;
* yearly correction ``Y_t`` (daily series): median of last year's residuals ``y_s - B_s - O_s`` over
  the 29 days around ``t - 364`` (same weekday alignment), shrunk to 0 unless it is clearly non-zero;
* ``expected = B + O + Y`` (additive). A multiplicative variant ``B * O' * (1 + Y')`` uses medians of
  ratios ``y_s / B_s`` instead of differences, since weekday and yearly effects of most business series
  scale with the level;
* residual model, chosen per series at each weekly anchor from the last 168 days by the Box-Cox profile
  likelihood (``log scale - mean log h'(y)``): the additive expectation on the original scale, or the
  multiplicative one on a variance-stabilised scale ``h(y) - h(expected)`` with Anscombe's square root
  ``2 sqrt(y + 3/8)`` (Poisson-like counts) or ``log1p`` (multiplicative, right-skewed noise);
  non-negative series only. Bands are ``h^-1(h(expected) -/+ half-width)``, so they are asymmetric,
  and never reach below zero for a series without negative values;
* residual scale: the larger of IQR / 1.349 and the 5-95% range / 3.29 of the chosen residuals of the
  last 56 days (both estimate a Gaussian sigma; the second guards against heavy tails), floored at one
  unit for count series (so ordinary zeros and ones never alarm). The model choice, the scale and the
  yearly term move slowly and are computed once a week, at a fixed weekday (calendar-anchored, so a
  run over any range of days gives the same values);
* point score: one minus the two-sided Student-t tail probability of ``z = (y - expected) / scale``,
  with degrees of freedom from the number of residuals (0.37 per residual, the efficiency of IQR,
  times Bartlett's ``(1 - rho^2) / (1 + rho^2)`` for lag-1 autocorrelated residuals), so short or
  autocorrelated histories get wide bands. Whole-number non-negative series take at least the tail
  of a Poisson law around the expected value (low counts are discrete), and a zero at least the rate
  of unexplained zeros (stock-outs, closures) of its weekday over the last year;
* sparse non-negative series (mostly zero where they sell at all, see ``counts.sparse_at``) are
  scored by the compound count model of ``counts.py`` instead (model ``causal-compound-count``);
* level shift: a scan over the last 2..14 days of standardised sums of Gaussian-equivalent z
  (variance corrected for the lag-1 autocorrelation of the residuals of the 56 days before the weekly
  anchor), with Siegmund's tail approximation for the maximum over window lengths; the start of the
  best window is reported as "since".

Scores are per day: for series sampled several times a day, one minus the periods per day times the
period's two-sided tail probability (a Bonferroni bound), so the thresholds keep their meaning.
Known-event periods (and points marked as expected by analysts) are left out of the history. Missing
periods are flagged when the series reported on at least 90% of the previous 28 days (hourly: the
previous week).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from pipelines.anomaly.cadence import DAILY, Cadence
from pipelines.anomaly.counts import CompoundCounts, shrink_rate, sparse_at
from pipelines.anomaly.windows import quantile_sorted, sorted_count, windows_at

MODEL_LABEL = "causal-robust-decomposition"
COUNT_MODEL_LABEL = "causal-compound-count"

_IQR_TO_SD = 1.349
_Q90_RANGE_TO_SD = 3.2897
_MAD_EFFICIENCY = 0.37
_Z_CLIP = 4.0
_MAX_RHO = 0.8
_SHIFT_MIN_POINT_Z = 1.0
_YEARLY_MIN_COUNT = 15
_YEARLY_SHRINK_SE = 2.0
_INTERMITTENT_MAX_Z = 3.0
_MISSING_PRESENT_FRACTION = 0.9

#: Days of history before ``t`` that any statistic at ``t`` reads, for daily series. An incremental
#: run must be given at least this many days before its first output day to reproduce a full run
#: exactly (see :func:`pipelines.anomaly.cadence.required_history` for other periods).
REQUIRED_HISTORY_DAYS = DAILY.required_history

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
    tail: np.ndarray  # one-sided probability of a value at least this far out (NaN = no value)
    count_model: np.ndarray  # True where the sparse count model scored the value


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


def _anscombe(x: np.ndarray) -> np.ndarray:
    return 2.0 * np.sqrt(x + 0.375)


def _anscombe_log_dh(x: np.ndarray) -> np.ndarray:
    return -0.5 * np.log(x + 0.375)


def _log1p_log_dh(x: np.ndarray) -> np.ndarray:
    return -np.log1p(x)


_Fn = Callable[[np.ndarray], np.ndarray]

#: Candidate models of the residual, as (h, log h'): the additive decomposition on the original scale
#: (``h = None``), and the multiplicative one on Anscombe's square-root scale (Poisson-like counts) and
#: on the log1p scale (multiplicative noise).
_CANDIDATES: tuple[tuple[_Fn | None, _Fn | None], ...] = (
    (None, None),
    (_anscombe, _anscombe_log_dh),
    (np.log1p, _log1p_log_dh),
)


def _unit_step(h: _Fn | None, e: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Size, on the scale ``h``, of a change of ``step`` units at ``e``."""
    if h is None:
        return np.full_like(e, step)
    return h(e + step) - h(e)


def _selection_criterion(
    rh: np.ndarray,
    hist_pos: np.ndarray,
    acols: np.ndarray,
    log_dh: _Fn | None,
    n_select: int,
) -> np.ndarray:
    """Negative Box-Cox profile log-likelihood per residual, ``log(scale) - mean(log h'(y))``.

    ``scale`` is the mean absolute deviation from the median (efficient and robust enough to compare
    models) of the residuals ``rh`` over the last ``n_select`` periods before each anchor column.
    """
    win = windows_at(rh, acols, 0, n_select)
    n = np.count_nonzero(~np.isnan(win), axis=-1)
    centre = quantile_sorted(*sorted_count(win), 0.5)
    mad = np.nan_to_num(np.abs(win - centre[..., None])).sum(axis=-1) / np.maximum(n, 1)
    if log_dh is None:
        jac = np.zeros_like(mad)
    else:
        used = np.where(np.isnan(rh), 0.0, log_dh(np.nan_to_num(hist_pos)))
        jac = windows_at(used, acols, 0, n_select).sum(axis=-1) / np.maximum(n, 1)
    with np.errstate(divide="ignore"):
        return np.where(n > 0, np.log(mad) - jac, np.nan)


def _lag1_autocorrelation(win: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each window around ``centre`` (NaN cells count as 0), in [0, 0.8]."""
    x = np.nan_to_num(win - centre[..., None])
    num = (x[..., 1:] * x[..., :-1]).sum(axis=-1)
    den = (x * x).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(den > 0, num / den, 0.0)
    return np.clip(np.nan_to_num(rho), 0.0, _MAX_RHO)


def _band(expected: np.ndarray, half: np.ndarray, transform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Band ``h^-1(h(expected) -/+ half)`` on the original scale for each cell's transform."""
    e = np.fmax(expected, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        sq_lo = np.fmax(_anscombe(e) - half, 0.0)
        sq_hi = _anscombe(e) + half
        lower = np.choose(
            transform,
            [
                expected - half,
                np.fmax((sq_lo / 2.0) ** 2 - 0.375, 0.0),
                np.fmax(np.expm1(np.log1p(e) - half), 0.0),
            ],
        )
        upper = np.choose(
            transform,
            [expected + half, (sq_hi / 2.0) ** 2 - 0.375, np.expm1(np.log1p(e) + half)],
        )
    return lower, upper


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


def _anchors(cols: np.ndarray, period_of_col0: int, cad: Cadence) -> np.ndarray:
    """Anchor of each column: the latest earlier column whose period number is ``anchor_phase``
    modulo ``anchor_every`` (a Thursday for daily series, the last period of a day otherwise).

    Slow-moving statistics (residual scale, model choice, yearly correction, count model) are computed
    once per anchor; being tied to the calendar, they are the same whatever range is scored.
    """
    prev = cols - 1
    return prev - (period_of_col0 + prev - cad.anchor_phase) % cad.anchor_every


def _level_at(hist: np.ndarray, cols: np.ndarray, period_of_col0: int, cad: Cadence) -> np.ndarray:
    """Level of the ``cad.level`` periods before the last refresh, at each column.

    Daily series: the median of the 28 days before ``t`` (refreshed every day). Series sampled
    several times a day: the mean of the last week without its lowest and highest ``cad.level_trim``
    share, refreshed at midnight; a median of all hours of the week would be a night value, zero for
    a business-hours series, leaving no level for the seasonal ratios.
    """
    bound = cols - (period_of_col0 + cols) % cad.level_step
    ucols, inv = np.unique(bound, return_inverse=True)
    if not cad.level_trim:
        med, _ = _median_at(hist, ucols, 1, cad.level)
        return med[:, inv.ravel()]
    s, c = sorted_count(windows_at(hist, ucols, 1, cad.level), in_place=True)
    cut = np.floor(cad.level_trim * c).astype(np.intp)
    pos = np.arange(s.shape[-1])
    keep = (pos >= cut[..., None]) & (pos < (c - cut)[..., None])
    n = keep.sum(axis=-1)
    with np.errstate(invalid="ignore"):
        level = np.where(n > 0, np.where(keep, s, 0.0).sum(axis=-1) / np.maximum(n, 1), np.nan)
    return level[:, inv.ravel()]


def _seasonal(x: np.ndarray, cols: np.ndarray, cad: Cadence, default: float) -> tuple[np.ndarray, np.ndarray]:
    """Median of ``x`` over the last ``offset_cycles`` same positions of the longest seasonal cycle
    with at least two values (weekday for daily series; period of the week, else of the day,
    otherwise), ``default`` where no cycle has two. Also returns whether the value is finite and set."""
    out = np.full((x.shape[0], len(cols)), default)
    found = np.zeros(out.shape, dtype=bool)
    for cycle in reversed(cad.cycles):
        med, n = _median_at(x, cols, cycle, cad.offset_cycles, cycle)
        use = (n >= 2) & np.isfinite(med)
        out = np.where(use, med, out)
        found |= use
    return out, found


def _expected_at(
    hist: np.ndarray, cols: np.ndarray, pad: int, period_of_col0: int, cad: Cadence
) -> tuple[np.ndarray, np.ndarray]:
    """Expected values of padded history ``hist`` at padded columns ``cols``: additive ``B + O + Y``
    and multiplicative ``B * O' * (1 + Y')``."""
    anchor = _anchors(cols, period_of_col0, cad)
    ycols, yidx = np.unique(anchor, return_inverse=True)
    base_cols = cols
    if cad.year:
        half = cad.year_half
        year_cols = np.unique((ycols[:, None] + 1 - cad.year + np.arange(-half, half + 1)[None, :]).ravel())
        year_cols = year_cols[year_cols >= pad]
        base_cols = np.union1d(cols, year_cols)
    lags = np.unique(np.concatenate([c * np.arange(0, cad.offset_cycles + 1) for c in cad.cycles]))
    level_cols = np.unique((base_cols[:, None] - lags[None, :]).ravel())
    level_cols = level_cols[level_cols >= pad]
    level = np.full(hist.shape, np.nan)
    level[:, level_cols] = _level_at(hist, level_cols, period_of_col0, cad)
    offset, _ = _seasonal(hist - level, base_cols, cad, 0.0)
    base = np.full(hist.shape, np.nan)
    base[:, base_cols] = level[:, base_cols] + offset
    if cad.year:
        yearly = _yearly(hist - base, ycols, cad)
        additive = base[:, cols] + yearly[:, yidx.ravel()]
    else:
        additive = base[:, cols]

    # Multiplicative variant: the same level times seasonal and yearly ratios. The level (a median) is
    # the same on any monotone scale; weekday effects of many business series scale with the level.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(level > 0, hist / level, np.nan)
    factor, _ = _seasonal(ratio, base_cols, cad, 1.0)
    base_m = np.full(hist.shape, np.nan)
    base_m[:, base_cols] = level[:, base_cols] * factor
    if cad.year:
        with np.errstate(divide="ignore", invalid="ignore"):
            rel0 = np.where(base_m > 0, hist / base_m, np.nan)
        yearly_m = _yearly(rel0, ycols, cad, centre=1.0)
        multiplicative = base_m[:, cols] * (1.0 + yearly_m[:, yidx.ravel()])
    else:
        multiplicative = base_m[:, cols]
    return additive, multiplicative


def _yearly(resid: np.ndarray, ycols: np.ndarray, cad: Cadence, centre: float = 0.0) -> np.ndarray:
    """Yearly correction at anchors ``ycols``: median of last year's residuals around ``t - year``,
    shrunk towards 0 by twice its standard error, 0 unless enough residuals exist."""
    half = cad.year_half
    win = windows_at(resid, ycols, cad.year - half - 1, 2 * half + 1)
    s, c = sorted_count(win, in_place=True)
    yearly = quantile_sorted(s, c, 0.5) - centre
    sd = (quantile_sorted(s, c, 0.75) - quantile_sorted(s, c, 0.25)) / _IQR_TO_SD
    se = _YEARLY_SHRINK_SE * 1.2533 * sd / np.sqrt(np.maximum(c, 1))
    yearly = np.sign(yearly) * np.maximum(np.abs(yearly) - se, 0.0)
    return np.where((c >= _YEARLY_MIN_COUNT) & np.isfinite(yearly), yearly, 0.0)


def _poisson_floor(
    y: np.ndarray, mu: np.ndarray, tail: np.ndarray, pit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tail and PIT of counts ``y`` no further out than under a Poisson law of mean ``mu``."""
    k = np.round(np.fmax(y, 0.0))
    below = special.pdtr(k - 1.0, mu)  # P(Y < y), 0 for y = 0
    at_most = special.pdtr(k, mu)  # P(Y <= y)
    mid = 0.5 * (below + at_most)
    low = y <= mu
    tail = np.where(low, np.fmax(tail, at_most), np.fmax(tail, 1.0 - below))
    pit = np.where(low, np.fmax(pit, np.fmin(mid, 0.5)), np.fmin(pit, np.fmax(mid, 0.5)))
    return tail, pit


def _per_day(score: np.ndarray, cad: Cadence) -> np.ndarray:
    """Score of a period turned into a score per day: ``1 - min(1, periods per day * (1 - score))``
    (a Bonferroni bound over the day's periods; unchanged for daily series)."""
    if cad.per_day == 1:
        return score
    return 1.0 - np.fmin(1.0, cad.per_day * (1.0 - score))


def _zero_rate(
    hist: np.ndarray,
    acols: np.ndarray,
    aidx: np.ndarray,
    cols: np.ndarray,
    discrete: np.ndarray,
    cad: Cadence,
) -> np.ndarray:
    """Rate of unexplained zeros (stock-outs, outages) in the same position of the longest seasonal
    cycle (the same weekday, or hour of the week) over the ``cad.long`` periods up to each anchor.

    Zeros are counted beyond those a Poisson count around the position's median explains (for
    whole-number series: a quiet night hour is zero now and then by chance). The position's rate is
    shrunk towards the rate over the "open" positions (fewer than half zeros, so a closed weekend
    does not count) at the same time of day, see :func:`counts.shrink_rate`; without unexplained
    zeros it is 0 and the model alone decides.
    """
    cycle = cad.cycles[0]
    win = windows_at(hist, acols, 0, cad.long)  # a copy (advanced indexing)
    by_pos = np.moveaxis(win.reshape(win.shape[0], win.shape[1], cad.long // cycle, cycle), 2, -1)
    zeros = (by_pos == 0).sum(axis=-1)
    valid = (~np.isnan(by_pos)).sum(axis=-1)
    srt, cnt = sorted_count(by_pos)
    median = np.nan_to_num(quantile_sorted(srt, cnt, 0.5))
    with np.errstate(over="ignore"):
        chance = np.where(discrete[..., None], valid * np.exp(-np.fmax(median, 0.0)), 0.0)
    excess = np.fmax(zeros - chance, 0.0)
    # Pool over the open positions at the same time of day (every weekday of a daily series; the
    # same hour on every weekday of an hourly one: a night's zeros say nothing about the afternoon).
    open_ = 2 * zeros < valid
    group = (cycle // cad.cycles[-1], cad.cycles[-1]) if len(cad.cycles) > 1 else (1, cycle)

    def by_time_of_day(a: np.ndarray) -> np.ndarray:
        return np.where(open_, a, 0.0).reshape(*a.shape[:2], *group).sum(axis=2)

    pooled = np.fmax(by_time_of_day(zeros) - by_time_of_day(chance), 0.0) / np.fmax(
        by_time_of_day(valid), 1.0
    )
    where = (cols - (acols[aidx] - cad.long + 1)) % cycle
    rows = np.arange(win.shape[0])[:, None]
    k0 = excess[rows, aidx[None, :], where[None, :]]
    n = valid[rows, aidx[None, :], where[None, :]]
    base = (
        pooled[rows, aidx[None, :], (where % group[1])[None, :]]
        if len(cad.cycles) > 1
        else pooled[:, aidx, 0]
    )
    return np.where(base > 0, shrink_rate(k0, n, base), 0.0)


def _shift_scan(
    zg: np.ndarray, rho: np.ndarray, zo: int, k: int, n_scan: int
) -> tuple[np.ndarray, np.ndarray]:
    """Best standardised sum of ``zg`` over the last 2..``n_scan`` periods for the last ``k`` columns.

    The variance of a sum of ``j`` values is corrected for lag-1 autocorrelation ``rho``. Returns the
    length - 1 of the best window (the shift started that many periods ago) and its statistic; the
    earliest of equal statistics wins. Loops over window lengths so memory stays (series x k).
    """
    n_series = zg.shape[0]
    zpad = np.concatenate([np.full((n_series, n_scan + 1), np.nan), zg], axis=1)
    off = n_scan + 1 + zo
    sums = np.zeros((n_series, k))
    nval = np.zeros((n_series, k))
    best = np.zeros((n_series, k), dtype=np.intp)
    best_stat = np.zeros((n_series, k))
    for j in range(n_scan):
        cell = zpad[:, off - j : off - j + k]
        sums += np.nan_to_num(cell)
        nval += ~np.isnan(cell)
        if j == 0:
            continue
        var = nval * (1 + rho) / (1 - rho) - 2 * rho * (1 - rho**nval) / (1 - rho) ** 2
        stat = np.where(nval >= 2, sums / np.sqrt(np.maximum(var, 1.0)), 0.0)
        better = np.abs(stat) > np.abs(best_stat)
        best = np.where(better, j, best)
        best_stat = np.where(better, stat, best_stat)
    return best, best_stat


def score_matrix(
    y: np.ndarray,
    event: np.ndarray,
    start: int,
    *,
    day0: int,
    threshold: float,
    min_history: int,
    cadence: Cadence = DAILY,
) -> MatrixScores:
    """Score columns ``[start, T)`` of ``y`` (NaN = no value) using only earlier columns.

    Args:
        y: (series, periods) values.
        day0: period number (periods since 1970-01-01 00:00; days for daily series) of column 0.
        event: (series, periods) True on known-event periods (never alarm, excluded from history).
        start: first output column.
        threshold: score threshold of ``is_anomaly``.
        min_history: valid history values needed before alarms.
        cadence: the sampling period and the windows of the model.
    """
    cad = cadence
    n_series, n_days = y.shape
    pad = cad.required_history + 1
    yp = np.concatenate([np.full((n_series, pad), np.nan), y], axis=1)
    evp = np.concatenate([np.zeros((n_series, pad), dtype=bool), event], axis=1)
    hist = np.where(evp, np.nan, yp)
    out_cols = _span(start + pad, n_days + pad)
    z_cols = _span(max(start + pad - cad.scan + 1, pad), n_days + pad)
    # The first z column's anchor is up to anchor_every periods earlier and reads cad.select residuals.
    first_exp = z_cols[0] - cad.anchor_every - cad.select if len(z_cols) else pad
    exp_cols = _span(max(first_exp, pad), n_days + pad)

    expected = np.full(yp.shape, np.nan)
    expected_m = np.full(yp.shape, np.nan)
    if len(exp_cols):
        expected[:, exp_cols], expected_m[:, exp_cols] = _expected_at(hist, exp_cols, pad, day0 - pad, cad)
    resid = hist - expected

    # Residuals are measured on a variance-stabilised scale h(y) - h(expected), with the model chosen
    # per series at each weekly anchor (see _anchors): the additive decomposition on the original
    # scale, or the multiplicative one with Anscombe's square root (Poisson-like counts) or log1p
    # (multiplicative noise), whichever maximises the Box-Cox profile likelihood over the last 168
    # days (see _selection_criterion). The choice uses a longer window than the scale (56 days) so it
    # is stable and does not favour whichever model happens to underestimate the recent scale.
    # Residual scale: two quantile-based Gaussian sigma estimates (IQR / 1.349 and the 5-95% range /
    # 3.29) of the chosen residuals; the larger one guards against heavy tails.
    acols, aidx = np.unique(_anchors(z_cols, day0 - pad, cad), return_inverse=True)
    aidx = aidx.ravel()
    n_hist = _rolling_count(~np.isnan(hist), acols + 1, cad.scale)
    n_int = _rolling_count(hist == np.round(hist), acols + 1, cad.scale)
    n_neg = _rolling_count(hist < 0, acols + 1, cad.select)
    counts = (n_hist > 0) & (n_int == n_hist)
    nonneg = (n_neg == 0) & (n_hist > 0)
    # Mostly zero where the series sells at all (see counts.sparse_at); a series that is zero only
    # when closed (weekends, nights) is not intermittent.
    intermittent = np.zeros(n_hist.shape, dtype=bool)
    with_zeros = np.flatnonzero((_rolling_count(hist == 0, acols + 1, cad.long) > 0).any(axis=1))
    if len(with_zeros):  # a series without a zero in the long window is not sparse
        intermittent[with_zeros] = sparse_at(hist[with_zeros], acols, cad)
    exp_pos = np.fmax(expected_m, 0.0)
    with np.errstate(invalid="ignore"):
        hist_pos = np.where(hist >= 0, hist, np.nan)
    crit: list[np.ndarray] = []
    scales: list[np.ndarray] = []
    quants: list[dict[float, np.ndarray]] = []
    n_res_all: list[np.ndarray] = []
    rhos: list[np.ndarray] = []
    rhos_shift: list[np.ndarray] = []
    for t, (h, log_dh) in enumerate(_CANDIDATES):
        rh = resid if h is None else h(hist_pos) - h(exp_pos)
        win = windows_at(rh, acols, 0, cad.scale)
        s, n_res = sorted_count(win)
        q = {pr: quantile_sorted(s, n_res, pr) for pr in (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)}
        rhos.append(_lag1_autocorrelation(win, q[0.5]))
        # Uncentred: a persistent offset of the residuals counts as correlation in the shift scan, so
        # a slowly drifting series does not read as a level shift.
        rhos_shift.append(_lag1_autocorrelation(win, np.zeros_like(q[0.5])))
        sc = np.fmax((q[0.75] - q[0.25]) / _IQR_TO_SD, (q[0.95] - q[0.05]) / _Q90_RANGE_TO_SD)
        c = _selection_criterion(rh, hist_pos, acols, log_dh, cad.select)
        if t > 0:
            # Other models must explain (almost) the same days as the additive identity model.
            ok = ~intermittent & (sc > 0) & (n_res >= n_res_all[0] - 1)
            if h is not None:
                ok &= n_neg == 0
            c = np.where(ok, c, np.inf)
        crit.append(np.nan_to_num(c, nan=np.inf, neginf=-np.inf))
        scales.append(sc)
        quants.append(q)
        n_res_all.append(n_res)
    choice = np.argmin(np.stack(crit), axis=0)  # ties (e.g. constant history) keep the identity
    choice = np.where(np.isneginf(crit[0]) | (scales[0] <= 0), 0, choice)
    scale_a = np.choose(choice, scales)
    rho_res = np.choose(choice, rhos)[:, aidx]
    rho_shift = np.choose(choice, rhos_shift)[:, aidx]
    q0 = quants[0]
    n_res = n_res_all[0][:, aidx]
    tz = choice[:, aidx]
    scale = scale_a[:, aidx]
    exp_z = np.where(tz == 0, expected[:, z_cols], expected_m[:, z_cols])
    e_pos = np.fmax(exp_z, 0.0)
    # Count series: a change of one unit is never an anomaly by itself (floor of one unit, measured
    # on the chosen scale at the expected value).
    unit = np.choose(tz, [_unit_step(h, e_pos) for h, _ in _CANDIDATES])
    scale = np.where(counts[:, aidx], np.fmax(scale, unit), scale)
    # In intermittent series (identity scale) a value up to the recent maximum is ordinary.
    recent_max = np.fmax(q0[1.0] - q0[0.5], q0[0.5] - q0[0.0])[:, aidx]
    scale = np.where(intermittent[:, aidx], np.fmax(scale, recent_max / _INTERMITTENT_MAX_Z), scale)
    dh = np.choose(tz, [_unit_step(h, e_pos, 1e-3) / 1e-3 for h, _ in _CANDIDATES])
    level_abs = np.abs(exp_z) * dh
    scale = np.fmax(np.nan_to_num(scale, nan=0.0), 1e-3 * np.nan_to_num(level_abs, nan=0.0) + 1e-9)
    n_hist = n_hist[:, aidx]
    # Effective number of residuals behind the scale: autocorrelated residuals carry less information
    # (Bartlett: n (1 - rho^2) / (1 + rho^2) for a variance under AR(1)), times the IQR's efficiency.
    dof = np.maximum(_MAD_EFFICIENCY * (n_res - 1) * (1 - rho_res**2) / (1 + rho_res**2), 1.0)

    yz = yp[:, z_cols]
    with np.errstate(invalid="ignore"):
        yz_pos = np.fmax(yz, 0.0)
    z = np.choose(tz, [yz - exp_z if h is None else h(yz_pos) - h(e_pos) for h, _ in _CANDIDATES]) / scale
    point = two_sided_score(z, dof)
    tail = special.stdtr(dof, -np.abs(z))
    # Level shift: standardised sums of Gaussian-equivalent z over the last 2..14 days, with the
    # variance of the sums corrected for the lag-1 autocorrelation of the residuals (rho_shift).
    pit = special.stdtr(dof, z)
    sparse = (intermittent & nonneg)[:, aidx]
    # A whole-number series is never more surprising than a Poisson count around the expected value
    # (the least dispersed count law): this bounds the Gaussian tails of low counts.
    whole = (counts & nonneg)[:, aidx] & ~sparse & np.isfinite(yz) & (exp_z > 0)
    if whole.any():
        tail[whole], pit[whole] = _poisson_floor(yz[whole], exp_z[whole], tail[whole], pit[whole])
        point = np.where(whole, 1.0 - np.fmin(1.0, 2.0 * tail), point)
        z = np.where(whole, special.ndtri(np.clip(pit, 1e-300, 1 - 1e-16)), z)
    # A zero of a non-negative series is at least as likely as unexplained zeros were in the same
    # position of the week over the long window (stock-outs, closures): the model's tail is mixed
    # with that rate.
    with np.errstate(invalid="ignore"):
        zero_cells = (yz == 0) & nonneg[:, aidx] & ~sparse
    zero_rows = np.flatnonzero(zero_cells.any(axis=1))
    if len(zero_rows):
        rate = _zero_rate(hist[zero_rows], acols, aidx, z_cols, counts[zero_rows], cad)
        on = zero_cells[zero_rows]
        z_tail = rate + (1.0 - rate) * tail[zero_rows]
        z_pit = 0.5 * rate + (1.0 - rate) * pit[zero_rows]
        for arr, new in ((point, 1.0 - np.fmin(1.0, 2.0 * z_tail)), (tail, z_tail), (pit, z_pit)):
            arr[zero_rows] = np.where(on, new, arr[zero_rows])
        z[zero_rows] = np.where(on, special.ndtri(np.clip(z_pit, 1e-300, 1 - 1e-16)), z[zero_rows])
    # Sparse non-negative series (mostly zeros): tail probabilities of a compound count model of how
    # often the series is non-zero and how large its non-zero values are (see counts.py).
    sparse_rows = np.flatnonzero(sparse.any(axis=1))
    compound = None
    if len(sparse_rows):
        compound = CompoundCounts.fit(hist[sparse_rows], acols, aidx, z_cols, counts[sparse_rows], cad)
        c_point, c_tail, c_pit = compound.score(yz[sparse_rows])
        on = sparse[sparse_rows]
        for arr, new in ((point, c_point), (tail, c_tail), (pit, c_pit)):
            arr[sparse_rows] = np.where(on, new, arr[sparse_rows])
        with np.errstate(invalid="ignore"):
            c_z = special.ndtri(np.clip(c_pit, 1e-300, 1 - 1e-16))
        z[sparse_rows] = np.where(on, c_z, z[sparse_rows])
    zg = np.clip(special.ndtri(np.clip(pit, 1e-300, 1 - 1e-16)), -_Z_CLIP, _Z_CLIP)
    zg = np.where(np.isnan(z) | evp[:, z_cols], np.nan, zg)
    k = len(out_cols)
    zo = len(z_cols) - k
    best, best_stat = _shift_scan(zg, rho_shift[:, zo:], zo, k, cad.scan)
    shift = shift_score(best_stat, cad.scan / 2.0)

    if cad.per_day > 1:
        # Several periods a day: scores are per day (a value this unusual at any of the day's
        # periods), so thresholds and severities keep their daily meaning.
        point = _per_day(point, cad)
        shift = _per_day(shift, cad)
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

    present = _rolling_count(~np.isnan(yp), out_cols, cad.missing)
    n_valid = n_hist[:, zo:]
    n_missing = cad.scale - n_valid
    # Probability that a period is missing, estimated from the scale window (Jeffreys prior).
    miss_score = _per_day(1.0 - (n_missing + 0.5) / (cad.scale + 1.0), cad)
    usual_reporter = present >= _MISSING_PRESENT_FRACTION * cad.missing
    score = np.where(missing, np.where(usual_reporter, miss_score, 0.0), score)
    kind = np.where(missing, np.where(usual_reporter, KIND_MISSING, KIND_NONE), kind).astype(np.int8)
    enough = (n_valid >= min_history) & (n_res[:, zo:] >= 7)
    is_anom = (enough & ~evt & ~missing & (score >= threshold)) | (missing & usual_reporter & ~evt)
    half = t_quantile(dof[:, zo:], threshold) * scale[:, zo:]
    exp_out = exp_z[:, zo:]
    lower, upper = _band(exp_out, half, tz[:, zo:])
    # A series without negative values never has a band reaching below zero.
    lower = np.where(nonneg[:, aidx][:, zo:], np.fmax(lower, 0.0), lower)
    on_out = sparse[:, zo:]
    if compound is not None:
        c_mean, c_lower, c_upper = compound.band(threshold, zo)
        on = on_out[sparse_rows]
        for arr, new in ((exp_out, c_mean), (lower, c_lower), (upper, c_upper)):
            arr[sparse_rows] = np.where(on, new, arr[sparse_rows])
    return MatrixScores(
        expected=exp_out,
        lower=lower,
        upper=upper,
        score=np.clip(np.nan_to_num(score, nan=0.0), 0.0, 1.0),
        is_anomaly=is_anom,
        kind=kind,
        shift_start=shift_start,
        tail=tail[:, zo:],
        count_model=on_out,
    )
