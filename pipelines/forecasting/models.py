"""Point-forecast models on one regular, gap-free, seasonally adjusted series.

Every model is a pure function `(y, horizon) -> ModelForecast` on a finite float array. Besides the
forecast, a model returns `replay`: forecasts from a prefix of `y` with the parameters already
estimated, which makes rolling-origin backtests cheap (one estimation per model and series, as in
the "non-updating" backtests of Tashman, 2000). Models raise on failure; the caller falls back.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

NAN = float("nan")
Replay = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class ModelForecast:
    """Forecast of one model for one series.

    Attributes:
        mean: point forecasts, shape (horizon,).
        replay: forecasts `h` steps from a prefix of the series with the fitted parameters.
        level, trend: components over the horizon (None when the model has none).
        sigma1: standard deviation of the in-sample one-step errors (NaN when unknown).
    """

    mean: np.ndarray
    replay: Replay
    level: np.ndarray | None = None
    trend: np.ndarray | None = None
    sigma1: float = NAN


ModelFn = Callable[[np.ndarray, int], ModelForecast]
FamilyFn = Callable[[np.ndarray, int], dict[str, ModelForecast]]


def rmse(errors: np.ndarray) -> float:
    """Root mean square of the finite values (NaN when there are none)."""
    errors = errors[np.isfinite(errors)]
    return float(np.sqrt(np.mean(errors**2))) if errors.size else NAN


def _flat(value: float, horizon: int) -> np.ndarray:
    return np.full(horizon, float(value))


def single(name: str, fn: ModelFn) -> FamilyFn:
    """Wrap a one-model fit function as a family returning {name: forecast}."""

    def fit(y: np.ndarray, horizon: int) -> dict[str, ModelForecast]:
        return {name: fn(y, horizon)}

    return fit


def fit_naive(y: np.ndarray, horizon: int) -> ModelForecast:
    """Random walk: the last value repeated."""
    mean = _flat(y[-1], horizon)
    return ModelForecast(
        mean=mean,
        replay=lambda p, h: _flat(p[-1], h),
        level=mean.copy(),
        sigma1=rmse(np.diff(y)),
    )


def build_seasonal_naive(period: int) -> ModelFn:
    """Seasonal naive for `period`: the last observed season repeated (naive if too short)."""

    def _predict(p: np.ndarray, h: int) -> np.ndarray:
        if period < 2 or len(p) < period:
            return _flat(p[-1], h)
        return np.resize(p[-period:], h).astype(np.float64)

    def fit_seasonal_naive(y: np.ndarray, horizon: int) -> ModelForecast:
        if period < 2 or len(y) <= period:
            return fit_naive(y, horizon)
        return ModelForecast(
            mean=_predict(y, horizon),
            replay=_predict,
            sigma1=rmse(y[period:] - y[:-period]),
        )

    return fit_seasonal_naive


def _ses_level(y: np.ndarray, alpha: float, level0: float) -> np.ndarray:
    """Levels l_1..l_n of simple exponential smoothing (vectorised recursion)."""
    out: np.ndarray = lfilter([alpha], [1.0, alpha - 1.0], y, zi=[(1.0 - alpha) * level0])[0]
    return out


def _ets(y: np.ndarray, trend: bool) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ETSModel(y, error="add", trend="add" if trend else None, damped_trend=trend)
        return model.fit(disp=False, maxiter=200)


def _ets_replay(y: np.ndarray, params: np.ndarray, has_trend: bool, h: int) -> np.ndarray:
    """Forecast of a fitted additive-error ETS (A,N,N or A,Ad,N) from `y` with fixed parameters.

    The same recursions as statsmodels' ETSModel (innovations form), run directly: calling
    `ETSModel(...).smooth(params)` costs ~5 ms per call, mostly set-up, and backtests replay it at
    every origin. Parameter order is statsmodels': alpha, [beta, phi,] l0, [b0].
    """
    if not has_trend:
        alpha, level0 = float(params[0]), float(params[1])
        return _flat(_ses_level(y, alpha, level0)[-1], h)
    alpha, beta, phi, level, slope = (float(v) for v in params[:5])
    for value in y.tolist():
        error = value - level - phi * slope
        level, slope = level + phi * slope + alpha * error, phi * slope + beta * error
    return level + slope * np.cumsum(phi ** np.arange(1, h + 1))


def _ets_forecast(fit: object, horizon: int) -> ModelForecast:
    has_trend = fit.model.trend is not None  # type: ignore[attr-defined]
    params = fit.params  # type: ignore[attr-defined]
    mean = np.asarray(fit.forecast(horizon), dtype=np.float64)  # type: ignore[attr-defined]
    level = _flat(float(np.asarray(fit.level)[-1]), horizon)  # type: ignore[attr-defined]

    return ModelForecast(
        mean=mean,
        replay=lambda p, h: _ets_replay(p, np.asarray(params, dtype=np.float64), has_trend, h),
        level=level,
        trend=mean - level if has_trend else None,
        sigma1=rmse(np.asarray(fit.resid)),  # type: ignore[attr-defined]
    )


def fit_ets_theta(y: np.ndarray, horizon: int) -> dict[str, ModelForecast]:
    """statsmodels ETS (AICc choice) and the Theta method, sharing one SES fit.

    ETS: additive errors, no trend (A,N,N) or damped additive trend (A,Ad,N), chosen by AICc;
    seasonality is removed beforehand (see `seasonality`); the damped trend needs >= 10 points.
    Theta: see `build_theta`, from the A,N,N fit.
    """
    ses = _ets(y, trend=False)
    fits = [ses, _ets(y, trend=True)] if len(y) >= 10 else [ses]
    best = min(fits, key=lambda r: r.aicc if np.isfinite(r.aicc) else np.inf)  # type: ignore[attr-defined]
    return {"ets": _ets_forecast(best, horizon), "theta": build_theta(y, ses, horizon)}


def _theta_forecast(y: np.ndarray, alpha: float, level0: float, h: int) -> np.ndarray:
    """SES level plus half the OLS slope with the SES-dependent offset (theta = 2)."""
    n = len(y)
    level = _ses_level(y, alpha, level0)[-1]
    slope = float(np.polyfit(np.arange(n), y, 1)[0]) if n > 1 else 0.0
    steps = np.arange(h) + 1.0 / alpha - ((1.0 - alpha) ** n) / alpha
    return level + 0.5 * slope * steps


def build_theta(y: np.ndarray, ses: object, horizon: int) -> ModelForecast:
    """Theta method (Assimakopoulos & Nikolopoulos, 2000) as SES with drift.

    Same estimator as statsmodels `ThetaModel(deseasonalize=False)`: SES smoothing parameter by
    maximum likelihood (`ses`, a statsmodels ETS A,N,N fit) and half the OLS slope as drift
    (Hyndman & Billah, 2003); computed directly so that it reuses the ETS fit.
    """
    alpha = float(np.clip(ses.params[0], 1e-4, 1.0))  # type: ignore[attr-defined]
    level0 = float(ses.params[-1])  # type: ignore[attr-defined]
    mean = _theta_forecast(y, alpha, level0, horizon)
    level = _flat(_ses_level(y, alpha, level0)[-1], horizon)
    return ModelForecast(
        mean=mean,
        replay=lambda p, h: _theta_forecast(p, alpha, level0, h),
        level=level,
        trend=mean - level,
        sigma1=rmse(np.asarray(ses.resid)),  # type: ignore[attr-defined]
    )
