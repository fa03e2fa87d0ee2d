"""ARIMA(p, d, q) with drift, estimated by conditional sum of squares (CSS).

statsmodels' state-space ARIMA costs 0.05-0.4 s per fit (exact likelihood, Kalman filter), which
alone would exceed the stage's throughput budget; CSS with the residual recursion done by
`scipy.signal.lfilter` gives essentially the same forecasts on the series lengths used here in a
few milliseconds. Orders come from a small fixed set, d from a KPSS test (as auto.arima does),
and the order with the lowest AIC wins. The sum of squares is minimised by our own
Levenberg-Marquardt (`least_squares`), not scipy's `leastsq`, whose results were not reproducible.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.signal import lfilter
from statsmodels.tsa.stattools import kpss

from pipelines.forecasting.least_squares import fit_least_squares
from pipelines.forecasting.models import ModelForecast, rmse

ORDERS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (2, 2))
BOUND = 0.98


def choose_differencing(y: np.ndarray) -> int:
    """1 when the KPSS test rejects level stationarity at 5% (or the series is short), else 0."""
    if len(y) < 20 or np.ptp(y) == 0:
        return 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _stat, pvalue, *_ = kpss(y, regression="c", nlags="auto")
    return int(pvalue < 0.05)


def _coefs_and_derivatives(values: list[float]) -> tuple[list[float], list[list[float]]]:
    """Unconstrained values -> coefficients of a stationary polynomial (Jones, 1980), and the
    derivatives d coef_i / d x_k.

    Partial autocorrelations BOUND * tanh(x) are turned into AR coefficients by the Durbin-Levinson
    recursion, so every estimate is stationary (for AR) or invertible (for MA, sign-flipped).
    Python floats: these vectors have at most a few elements, where numpy's overhead dominates.
    """
    coefs: list[float] = []
    grads: list[list[float]] = []  # grads[i][k] = d coefs[i] / d x[k]
    for k, value in enumerate(values):
        t = math.tanh(value)
        r = BOUND * t
        dr = [0.0] * len(values)
        dr[k] = BOUND * (1.0 - t * t)
        coefs, grads = (
            [c - r * b for c, b in zip(coefs, reversed(coefs), strict=True)] + [r],
            [
                [gc - dr_k * b - r * gb for gc, dr_k, gb in zip(g_c, dr, g_b, strict=True)]
                for g_c, b, g_b in zip(grads, reversed(coefs), reversed(grads), strict=True)
            ]
            + [dr],
        )
    return coefs, grads


def _pacf_to_coefs(values: list[float]) -> list[float]:
    """The coefficients of `_coefs_and_derivatives` without the derivatives (the fast path)."""
    coefs: list[float] = []
    for value in values:
        r = BOUND * math.tanh(value)
        coefs = [c - r * b for c, b in zip(coefs, coefs[::-1], strict=True)] + [r]
    return coefs


def _to_coefs(x: np.ndarray) -> np.ndarray:
    """Coefficients of the stationary polynomial for unconstrained `x` (see above)."""
    return np.array(_pacf_to_coefs(x.tolist()), dtype=np.float64)


def _residuals(z: np.ndarray, ar: np.ndarray, ma: np.ndarray) -> np.ndarray:
    """e_t from (1 - ar(L)) z_t = (1 + ma(L)) e_t with zero pre-sample values."""
    out: np.ndarray = lfilter(np.append(1.0, -ar), np.append(1.0, ma), z)
    return out


def _arma_forecast(z: np.ndarray, e: np.ndarray, ar: np.ndarray, ma: np.ndarray, h: int) -> np.ndarray:
    p, q = len(ar), len(ma)
    hist_z = list(z[-p:]) if p else []
    hist_e = list(e[-q:]) if q else []
    out = np.empty(h)
    for k in range(h):
        val = sum(ar[i] * hist_z[-1 - i] for i in range(p)) + sum(ma[j] * hist_e[-1 - j] for j in range(q))
        out[k] = val
        if p:
            hist_z.append(val)
        if q:
            hist_e.append(0.0)
    return out


def _fit_order(z: np.ndarray, p: int, q: int) -> tuple[np.ndarray, np.ndarray, float]:
    """CSS estimate of ARMA(p, q) on the demeaned (differenced) series; returns ar, ma, aic."""
    burn = max(p, q)
    n = len(z) - burn
    cache: dict[str, tuple[list[float], np.ndarray]] = {}  # the last x and its residuals

    def resid(x: np.ndarray) -> np.ndarray:
        values = x.tolist()
        ar, ma = _pacf_to_coefs(values[:p]), _pacf_to_coefs(values[p:])
        e: np.ndarray = lfilter([1.0, *(-a for a in ar)], [1.0, *(-m for m in ma)], z)
        cache["last"] = (values, e)
        return e[burn:]

    def jac(x: np.ndarray, _r: np.ndarray) -> np.ndarray:
        """d e_t / d x: e = A(L) z / B(L), so d e_t / d ar_i = -(z / B)_(t-i) and
        d e_t / d ma_j = -(e / B)_(t-j); then the chain rule through `_coefs_and_derivatives`."""
        values = x.tolist()
        if "last" not in cache or cache["last"][0] != values:
            resid(x)  # normally kept from the step just accepted
        e = cache["last"][1]
        _ar, d_ar = _coefs_and_derivatives(values[:p])
        ma_pos, d_ma_pos = _coefs_and_derivatives(values[p:])
        denom = [1.0, *(-c for c in ma_pos)]
        out = np.empty((p + q, n))
        row = 0
        # ma = -ma_pos, hence the sign of the moving-average block
        for lags, source, grads, sign in ((p, z, d_ar, -1.0), (q, e, d_ma_pos, 1.0)):
            if not lags:
                continue
            filtered = lfilter([1.0], denom, source)
            shifted = [filtered[burn - i - 1 : len(z) - i - 1] for i in range(lags)]
            for k in range(lags):
                total = (sign * grads[0][k]) * shifted[0]
                for i in range(1, lags):
                    total = total + (sign * grads[i][k]) * shifted[i]
                out[row + k] = total
            row += lags
        return out

    # hitting max_evals still leaves a usable estimate
    x = fit_least_squares(
        resid, np.full(p + q, 0.1), jac=jac, xtol=1e-6, ftol=1e-8, max_evals=200 * (p + q + 1)
    )
    e = resid(x)
    n_eff = len(z) - burn
    sse = max(float(np.dot(e, e)), 1e-300)
    aic = n_eff * np.log(sse / n_eff) + 2.0 * (p + q + 2)
    return _to_coefs(x[:p]), -_to_coefs(x[p:]), float(aic)


def _forecast(
    y: np.ndarray, d: int, mu: float, ar: np.ndarray, ma: np.ndarray, h: int
) -> tuple[np.ndarray, np.ndarray]:
    z = (np.diff(y) if d else y) - mu
    e = _residuals(z, ar, ma)
    zf = _arma_forecast(z, e, ar, ma, h) + mu
    return (y[-1] + np.cumsum(zf) if d else zf), e


def fit_arima(y: np.ndarray, horizon: int) -> ModelForecast:
    """ARIMA(p, d, q) with drift (the mean of the differenced series), order by AIC over `ORDERS`."""
    d = choose_differencing(y)
    z = np.diff(y) if d else y
    if len(z) < 8:
        raise ValueError(f"ARIMA needs at least 9 observations, got {len(y)}")
    mu = float(z.mean())
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for p, q in ORDERS:
        if len(z) < 4 * (p + q + 2):
            continue
        ar, ma, aic = _fit_order(z - mu, p, q)
        if np.isfinite(aic) and (best is None or aic < best[0]):
            best = (aic, ar, ma)
    if best is None:
        raise ValueError("no ARIMA order could be estimated")
    _, ar, ma = best
    mean, e = _forecast(y, d, mu, ar, ma, horizon)
    if not np.all(np.isfinite(mean)):
        raise FloatingPointError("ARIMA forecast is not finite")
    return ModelForecast(
        mean=mean,
        replay=lambda pre, h: _forecast(pre, d, float(np.mean(np.diff(pre) if d else pre)), ar, ma, h)[0],
        sigma1=rmse(e[max(len(ar), len(ma)) :]),
    )
