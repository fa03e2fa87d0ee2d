"""ARIMA(p, d, q) with drift, estimated by conditional sum of squares (CSS).

statsmodels' state-space ARIMA costs 0.05-0.4 s per fit (exact likelihood, Kalman filter), which
alone would exceed the stage's throughput budget; CSS with the residual recursion done by
`scipy.signal.lfilter` gives essentially the same forecasts on the series lengths used here in a
few milliseconds. Orders come from a small fixed set, d from a KPSS test (as auto.arima does),
and the order with the lowest AIC wins.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import leastsq
from scipy.signal import lfilter
from statsmodels.tsa.stattools import kpss

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


def _to_coefs(x: np.ndarray) -> np.ndarray:
    """Unconstrained values -> coefficients of a stationary polynomial (Jones, 1980).

    Partial autocorrelations BOUND * tanh(x) are turned into AR coefficients by the Durbin-Levinson
    recursion, so every estimate is stationary (for AR) or invertible (for MA, sign-flipped).
    """
    pacf = BOUND * np.tanh(x)
    coefs = pacf[:1].copy()
    for r in pacf[1:]:
        coefs = np.append(coefs - r * coefs[::-1], r)
    return coefs


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

    def resid(x: np.ndarray) -> np.ndarray:
        return _residuals(z, _to_coefs(x[:p]), -_to_coefs(x[p:]))[burn:]

    # MINPACK's own finite differences: far less Python overhead than least_squares
    with warnings.catch_warnings():  # hitting maxfev still leaves a usable estimate
        warnings.simplefilter("ignore")
        x, *_ = leastsq(resid, np.full(p + q, 0.1), xtol=1e-6, ftol=1e-8, maxfev=200 * (p + q + 1))
    x = np.atleast_1d(x)
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
