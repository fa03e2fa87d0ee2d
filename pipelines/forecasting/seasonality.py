"""Seasonal adjustment: test, estimate and extrapolate one or several seasonal patterns.

Short periods (<= `FOURIER_ABOVE` steps, e.g. 7 days, 24 hours, 52 weeks) use classical
decomposition indices (centred moving average, per-phase averages over the recent seasons), the
method of the M4 benchmarks; long or non-integer periods (365.25 days) use a Fourier regression,
which needs far fewer parameters than a 365-value profile. Several periods are estimated by
backfitting, as in MSTL. Models are then fitted on the seasonally adjusted series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FOURIER_ABOVE = 60.0
FOURIER_TERMS = 6
RECENT_SEASONS = 6
BACKFIT_PASSES = 2


@dataclass(frozen=True)
class Seasonality:
    """Seasonal component of a series and its continuation.

    Attributes:
        kind: "none", "additive" or "multiplicative".
        insample: component over the history (0 / 1 when none).
        future: continuation over the horizon.
    """

    kind: str
    insample: np.ndarray
    future: np.ndarray

    def adjust(self, y: np.ndarray) -> np.ndarray:
        """Remove the component from `y` (same length as the history)."""
        if self.kind == "multiplicative":
            return y / self.insample
        return y - self.insample

    def restore(self, adjusted_forecast: np.ndarray) -> np.ndarray:
        """Put the component back on a forecast of the adjusted series."""
        if self.kind == "multiplicative":
            return adjusted_forecast * self.future
        return adjusted_forecast + self.future


def is_seasonal(y: np.ndarray, period: float) -> bool:
    """ACF test at the seasonal lag (90% one-sided, as in the M4 benchmarks)."""
    lag = round(period)
    n = len(y)
    if lag < 2 or n < 2 * lag + 1:
        return False
    x = y - y.mean()
    denom = float(np.dot(x, x))
    if denom <= 0:
        return False
    acf = np.array([np.dot(x[: n - k], x[k:]) / denom for k in range(1, lag + 1)])
    limit = 1.645 * np.sqrt((1.0 + 2.0 * np.sum(acf[:-1] ** 2)) / n)
    return bool(abs(acf[-1]) > limit)


def _centred_ma(y: np.ndarray, period: int) -> np.ndarray:
    """Centred moving average of length `period` (2 x period for even periods); NaN at the ends."""
    odd = np.full(period, 1.0 / period)
    kernel = odd if period % 2 else np.r_[0.5, np.ones(period - 1), 0.5] / period
    out = np.full(len(y), np.nan)
    half = len(kernel) // 2
    out[half : len(y) - half] = np.convolve(y, kernel, mode="valid")
    return out


def _phase_profile(ratio: np.ndarray, period: int) -> np.ndarray:
    """Mean of `ratio` per phase over the last RECENT_SEASONS seasons; phase 0 = index 0."""
    keep = min(len(ratio), RECENT_SEASONS * period)
    start = len(ratio) - keep
    prof = np.zeros(period)
    for ph in range(period):
        first = start + ((ph - start) % period)
        vals = ratio[first::period]
        vals = vals[np.isfinite(vals)]
        prof[ph] = vals.mean() if vals.size else np.nan
    return prof


def _classical(
    r: np.ndarray, period: int, multiplicative: bool, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    trend = _centred_ma(r, period)
    ratio = r / trend if multiplicative else r - trend
    prof = _phase_profile(ratio, period)
    base = 1.0 if multiplicative else 0.0
    prof = np.where(np.isfinite(prof), prof, base)
    prof = prof / prof.mean() if multiplicative else prof - prof.mean()
    idx = np.arange(len(r) + horizon) % period
    full = prof[idx]
    return full[: len(r)], full[len(r) :]


def _fourier(r: np.ndarray, period: float, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(r)
    t = np.arange(n + horizon, dtype=np.float64)
    k = np.arange(1, min(FOURIER_TERMS, int(period // 2)) + 1)
    ang = 2.0 * np.pi * np.outer(t, k) / period
    basis = np.hstack([np.sin(ang), np.cos(ang)])
    design = np.column_stack([np.ones(n), t[:n] / n, basis[:n]])
    coef, *_ = np.linalg.lstsq(design, r, rcond=None)
    full = basis @ coef[2:]
    return full[:n], full[n:]


def fit_seasonality(y: np.ndarray, periods: tuple[float, ...], horizon: int) -> Seasonality:
    """Test each period and estimate the seasonal component of `y` (finite array).

    A period is kept when there are at least two full seasons and the ACF test finds it.
    One short period on a positive series is multiplicative, anything else additive.
    """
    n = len(y)
    kept = tuple(p for p in sorted(periods) if p >= 2 and n >= 2 * p and is_seasonal(y, p))
    if not kept:
        return Seasonality("none", np.zeros(n), np.zeros(horizon))
    if len(kept) == 1 and kept[0] <= FOURIER_ABOVE and float(kept[0]).is_integer() and y.min() > 0:
        ins, fut = _classical(y, int(kept[0]), True, horizon)
        return Seasonality("multiplicative", ins, fut)
    comps_in = {p: np.zeros(n) for p in kept}
    comps_fut = {p: np.zeros(horizon) for p in kept}
    for _ in range(BACKFIT_PASSES if len(kept) > 1 else 1):
        for p in kept:
            r = y - sum(comps_in[q] for q in kept if q != p)
            if p <= FOURIER_ABOVE and float(p).is_integer():
                comps_in[p], comps_fut[p] = _classical(r, int(p), False, horizon)
            else:
                comps_in[p], comps_fut[p] = _fourier(r, p, horizon)
    insample = np.sum([comps_in[p] for p in kept], axis=0)
    future = np.sum([comps_fut[p] for p in kept], axis=0)
    return Seasonality("additive", insample, future)
