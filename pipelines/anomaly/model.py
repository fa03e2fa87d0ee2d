"""Numeric core of the metric scorer on a dense (series x day) matrix.

Model ``causal-robust-decomposition`` (every statistic of day ``t`` reads only days before ``t``):

* level ``B_t``: median of the last 28 days (4 of each weekday, so weekday-neutral);
* weekday offset ``O_t``: median over the last 8 same weekdays ``s`` of ``y_s - B_s``. Because ``B``
  trails by two weeks, the offset also absorbs that lag under a local linear trend;
* yearly correction ``Y_t``: median of last year's residuals ``y_s - B_s - O_s`` over the 29 days around
  ``t - 364`` (same weekday alignment), shrunk to 0 unless it is clearly non-zero;
* ``expected = B + O + Y`` (additive). A multiplicative variant ``B * O' * (1 + Y')`` uses medians of
  ratios ``y_s / B_s`` instead of differences, since weekday and yearly effects of most business series
  scale with the level;
* residual model, chosen per series at each weekly anchor from the last 168 days by the Box-Cox profile
  likelihood (``log scale - mean log h'(y)``): the additive expectation on the original scale, or the
  multiplicative one on a variance-stabilised scale ``h(y) - h(expected)`` with Anscombe's square root
  ``2 sqrt(y + 3/8)`` (Poisson-like counts) or ``log1p`` (multiplicative, right-skewed noise);
  non-negative series only. Bands are ``h^-1(h(expected) -/+ half-width)``, so they are asymmetric;
* residual scale: the larger of IQR / 1.349 and the 5-95% range / 3.29 of the chosen residuals of the
  last 56 days (both estimate a Gaussian sigma; the second guards against heavy tails), floored at one
  unit for count series (so ordinary zeros and ones never alarm). Intermittent count series (mostly
  zeros) are scored with a predictive negative binomial of the last 56 days instead (see
  ``_CountModel``); other intermittent series treat a value up to the recent maximum as ordinary. The model choice, the scale
  and the yearly term move slowly and are computed once a week, at a fixed weekday (calendar-anchored,
  so a run over any range of days gives the same values);
* point score: one minus the two-sided Student-t tail probability of ``z = (y - expected) / scale``,
  with degrees of freedom from the number of residuals (0.37 per residual, the efficiency of IQR,
  times Bartlett's ``(1 - rho^2) / (1 + rho^2)`` for lag-1 autocorrelated residuals), so short or
  autocorrelated histories get wide bands;
* level shift: a scan over the last 2..14 days of standardised sums of z (variance corrected for the
  lag-1 autocorrelation of the residuals of the 56 days before the weekly anchor), with Siegmund's
  tail approximation for the
  maximum over window lengths; the start of the best window is reported as "since".

Known-event days are left out of the history. Missing days are flagged when the series reported on at
least 90% of the previous 28 days.
"""

from __future__ import annotations

from collections.abc import Callable
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
_SELECT_DAYS = 168
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
    # shift scan + model-selection window + weekly anchors of the scale and yearly terms + yearly
    # window + weekday offsets + level window
    _SCAN_DAYS + _SELECT_DAYS + 1 + 2 * 7 + _YEAR + _YEAR_HALF_WIDTH + 7 * _WEEKS + _LEVEL_DAYS
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
) -> np.ndarray:
    """Negative Box-Cox profile log-likelihood per residual, ``log(scale) - mean(log h'(y))``.

    ``scale`` is the mean absolute deviation from the median (efficient and robust enough to compare
    models) of the residuals ``rh`` over the last ``_SELECT_DAYS`` days before each anchor column.
    """
    win = windows_at(rh, acols, 0, _SELECT_DAYS)
    n = np.count_nonzero(~np.isnan(win), axis=-1)
    centre = quantile_sorted(*sorted_count(win), 0.5)
    mad = np.nan_to_num(np.abs(win - centre[..., None])).sum(axis=-1) / np.maximum(n, 1)
    if log_dh is None:
        jac = np.zeros_like(mad)
    else:
        used = np.where(np.isnan(rh), 0.0, log_dh(np.nan_to_num(hist_pos)))
        jac = windows_at(used, acols, 0, _SELECT_DAYS).sum(axis=-1) / np.maximum(n, 1)
    with np.errstate(divide="ignore"):
        return np.where(n > 0, np.log(mad) - jac, np.nan)


@dataclass(frozen=True)
class _CountModel:
    """Predictive negative binomial of a count, fitted at weekly anchors to the last 56 days.

    Mean ``(S + 1/2) / n`` (sum ``S`` of ``n`` days; the Poisson-gamma predictive with Jeffreys'
    prior) and variance ``max(sample variance, mean) * (1 + 1/n)`` (over-dispersion, plus the
    uncertainty of the mean). With no over-dispersion this is exactly the Poisson-gamma predictive
    ``NB(S + 1/2, n / (n + 1))``, so an all-zero history still allows an occasional unit.
    Arrays are (series, z columns).
    """

    r: np.ndarray
    p: np.ndarray
    mean: np.ndarray

    @classmethod
    def fit(cls, hist: np.ndarray, acols: np.ndarray, aidx: np.ndarray) -> _CountModel:
        win = windows_at(hist, acols, 0, _SCALE_DAYS)
        n = np.count_nonzero(~np.isnan(win), axis=-1)
        total = np.nansum(win, axis=-1)
        nn = np.maximum(n, 1)
        sample_mean = total / nn
        ss = np.nansum((win - sample_mean[..., None]) ** 2, axis=-1)
        mean = (total + 0.5) / nn
        var = np.fmax(ss / np.maximum(n - 1, 1), mean) * (1.0 + 1.0 / nn)
        r = mean * mean / (var - mean)
        p = mean / var
        return cls(r=r[:, aidx], p=p[:, aidx], mean=mean[:, aidx])

    def score(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Two-sided tail score and mid-p probability integral transform of counts ``y``."""
        with np.errstate(invalid="ignore"):
            x = np.where(np.isnan(y), 0.0, np.round(np.fmax(y, 0.0))).astype(np.int64)
            xs = np.maximum(x, 1).astype(np.float64)
            # Negative binomial tails via the regularised incomplete beta function (r need not be an
            # integer): P(Y <= k) = I_p(r, k + 1) and P(Y >= k) = I_(1-p)(k, r) for k >= 1.
            upper = np.where(x <= 0, 1.0, special.betainc(xs, self.r, 1.0 - self.p))  # P(Y >= x)
            lower = special.betainc(self.r, x + 1.0, self.p)  # P(Y <= x)
            below = np.where(x <= 0, 0.0, special.betainc(self.r, xs, self.p))  # P(Y <= x - 1)
        point = 1.0 - np.minimum(1.0, 2.0 * np.minimum(upper, lower))
        pit = 0.5 * (below + lower)
        nan = np.isnan(y)
        return np.where(nan, np.nan, point), np.where(nan, np.nan, pit)

    def band(self, threshold: float, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and the central ``threshold`` interval of the counts, for columns from ``first`` on."""
        from scipy import stats

        r, p = self.r[:, first:], self.p[:, first:]
        tail = (1.0 - threshold) / 2.0
        with np.errstate(invalid="ignore"):
            lower = stats.nbinom.ppf(tail, r, p)
            upper = stats.nbinom.ppf(1.0 - tail, r, p)
        return self.mean[:, first:], lower, upper


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


def _anchors(cols: np.ndarray, day_of_col0: int) -> np.ndarray:
    """Weekly anchor of each column: the latest earlier column falling on a Thursday.

    Slow-moving statistics (residual scale, yearly correction) are computed once per week at the
    anchor; being tied to the calendar, they are the same whatever range of days is scored.
    """
    prev = cols - 1
    return prev - (day_of_col0 + prev) % 7


def _expected_at(
    hist: np.ndarray, cols: np.ndarray, pad: int, day_of_col0: int
) -> tuple[np.ndarray, np.ndarray]:
    """Expected values of padded history ``hist`` at padded columns ``cols``: additive ``B + O + Y``
    and multiplicative ``B * O' * (1 + Y')``."""
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
    additive = base[:, cols] + yearly[:, yidx.ravel()]

    # Multiplicative variant: the same level times weekday and yearly ratios. The level (a median) is
    # the same on any monotone scale; weekday effects of many business series scale with the level.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(level > 0, hist / level, np.nan)
    factor, n_fac = _median_at(ratio, base_cols, 7, _WEEKS, 7)
    base_m = np.full(hist.shape, np.nan)
    base_m[:, base_cols] = level[:, base_cols] * np.where((n_fac >= 2) & np.isfinite(factor), factor, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel0 = np.where(base_m > 0, hist / base_m, np.nan)
    win = windows_at(rel0, ycols, _YEAR - _YEAR_HALF_WIDTH - 1, 2 * _YEAR_HALF_WIDTH + 1)
    s, c = sorted_count(win, in_place=True)
    yearly_m = quantile_sorted(s, c, 0.5) - 1.0
    sd = (quantile_sorted(s, c, 0.75) - quantile_sorted(s, c, 0.25)) / _IQR_TO_SD
    se = _YEARLY_SHRINK_SE * 1.2533 * sd / np.sqrt(np.maximum(c, 1))
    yearly_m = np.sign(yearly_m) * np.maximum(np.abs(yearly_m) - se, 0.0)
    yearly_m = np.where((c >= _YEARLY_MIN_COUNT) & np.isfinite(yearly_m), yearly_m, 0.0)
    multiplicative = base_m[:, cols] * (1.0 + yearly_m[:, yidx.ravel()])
    return additive, multiplicative


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
    z_cols = _span(max(start + pad - _SCAN_DAYS + 1, pad), n_days + pad)
    # The first z column's weekly anchor is up to 7 days earlier and reads _SELECT_DAYS residuals.
    exp_cols = _span(max(z_cols[0] - 7 - _SELECT_DAYS, pad) if len(z_cols) else pad, n_days + pad)

    expected = np.full(yp.shape, np.nan)
    expected_m = np.full(yp.shape, np.nan)
    if len(exp_cols):
        expected[:, exp_cols], expected_m[:, exp_cols] = _expected_at(hist, exp_cols, pad, day0 - pad)
    resid = hist - expected

    # Residuals are measured on a variance-stabilised scale h(y) - h(expected), with the model chosen
    # per series at each weekly anchor (see _anchors): the additive decomposition on the original
    # scale, or the multiplicative one with Anscombe's square root (Poisson-like counts) or log1p
    # (multiplicative noise), whichever maximises the Box-Cox profile likelihood over the last 168
    # days (see _selection_criterion). The choice uses a longer window than the scale (56 days) so it
    # is stable and does not favour whichever model happens to underestimate the recent scale.
    # Residual scale: two quantile-based Gaussian sigma estimates (IQR / 1.349 and the 5-95% range /
    # 3.29) of the chosen residuals; the larger one guards against heavy tails.
    acols, aidx = np.unique(_anchors(z_cols, day0 - pad), return_inverse=True)
    aidx = aidx.ravel()
    n_hist = _rolling_count(~np.isnan(hist), acols + 1, _SCALE_DAYS)
    n_int = _rolling_count(hist == np.round(hist), acols + 1, _SCALE_DAYS)
    n_zero = _rolling_count(hist == 0, acols + 1, _SCALE_DAYS)
    n_neg = _rolling_count(hist < 0, acols + 1, _SELECT_DAYS)
    counts = (n_hist > 0) & (n_int == n_hist)
    intermittent = n_zero >= _INTERMITTENT_ZERO_FRACTION * np.maximum(n_hist, 1)
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
        win = windows_at(rh, acols, 0, _SCALE_DAYS)
        s, n_res = sorted_count(win)
        q = {pr: quantile_sorted(s, n_res, pr) for pr in (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)}
        rhos.append(_lag1_autocorrelation(win, q[0.5]))
        # Uncentred: a persistent offset of the residuals counts as correlation in the shift scan, so
        # a slowly drifting series does not read as a level shift.
        rhos_shift.append(_lag1_autocorrelation(win, np.zeros_like(q[0.5])))
        sc = np.fmax((q[0.75] - q[0.25]) / _IQR_TO_SD, (q[0.95] - q[0.05]) / _Q90_RANGE_TO_SD)
        c = _selection_criterion(rh, hist_pos, acols, log_dh)
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
    # Level shift: standardised sums of Gaussian-equivalent z over the last 2..14 days, with the
    # variance of the sums corrected for the lag-1 autocorrelation of the residuals (rho_shift).
    pit = special.stdtr(dof, z)
    # Intermittent count series (mostly zeros, whole numbers): tail probabilities of a count model.
    nb = (counts & intermittent)[:, aidx]
    count_model = _CountModel.fit(hist, acols, aidx) if nb.any() else None
    if count_model is not None:
        c_point, c_pit = count_model.score(yz)
        point = np.where(nb, c_point, point)
        pit = np.where(nb, c_pit, pit)
    zg = np.clip(special.ndtri(np.clip(pit, 1e-300, 1 - 1e-16)), -_Z_CLIP, _Z_CLIP)
    zg = np.where(np.isnan(z) | evp[:, z_cols], np.nan, zg)
    k = len(out_cols)
    zo = len(z_cols) - k
    zpad = np.concatenate([np.full((n_series, _SCAN_DAYS + 1), np.nan), zg], axis=1)
    off = _SCAN_DAYS + 1 + zo
    rho = rho_shift[:, zo:]
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
    exp_out = exp_z[:, zo:]
    lower, upper = _band(exp_out, half, tz[:, zo:])
    if count_model is not None:
        nb_out = nb[:, zo:]
        c_mean, c_lower, c_upper = count_model.band(threshold, zo)
        exp_out = np.where(nb_out, c_mean, exp_out)
        lower = np.where(nb_out, c_lower, lower)
        upper = np.where(nb_out, c_upper, upper)
    return MatrixScores(
        expected=exp_out,
        lower=lower,
        upper=upper,
        score=np.clip(np.nan_to_num(score, nan=0.0), 0.0, 1.0),
        is_anomaly=is_anom,
        kind=kind,
        shift_start=shift_start,
    )
