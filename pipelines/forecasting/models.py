"""Point-forecast models on one regular, gap-free series.

Every model is a pure function `(y, horizon, period) -> ModelForecast`; `y` is a finite float array
(gaps already imputed), `period` the integer seasonal period used by seasonal models (0 when the
series is not treated as seasonal). Models raise on failure; the caller falls back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

NAN = float("nan")


@dataclass(frozen=True)
class ModelForecast:
    """Forecast of one model for one series.

    Attributes:
        mean: point forecasts, shape (horizon,).
        level, trend, seasonal: components over the horizon (None when the model has none).
        sigma1: standard deviation of the in-sample one-step errors (NaN when unknown).
    """

    mean: np.ndarray
    level: np.ndarray | None = None
    trend: np.ndarray | None = None
    seasonal: np.ndarray | None = None
    sigma1: float = NAN


ModelFn = Callable[[np.ndarray, int, int], ModelForecast]


def _rmse(errors: np.ndarray) -> float:
    errors = errors[np.isfinite(errors)]
    return float(np.sqrt(np.mean(errors**2))) if errors.size else NAN


def predict_naive(y: np.ndarray, horizon: int, period: int) -> ModelForecast:
    """Random walk: the last value repeated."""
    mean = np.full(horizon, y[-1], dtype=np.float64)
    return ModelForecast(mean=mean, level=mean.copy(), sigma1=_rmse(np.diff(y)))


def predict_seasonal_naive(y: np.ndarray, horizon: int, period: int) -> ModelForecast:
    """The last observed season repeated; plain naive when fewer than `period` points exist."""
    if period < 2 or len(y) < period:
        return predict_naive(y, horizon, period)
    last = y[-period:]
    mean = np.resize(last, horizon).astype(np.float64)
    return ModelForecast(mean=mean, sigma1=_rmse(y[period:] - y[:-period]))


def predict_mean(y: np.ndarray, horizon: int, period: int) -> ModelForecast:
    """Historical mean: the fallback of last resort (never fails on a non-empty series)."""
    mu = float(np.mean(y)) if len(y) else 0.0
    mean = np.full(horizon, mu)
    sigma = float(np.std(y)) if len(y) > 1 else NAN
    return ModelForecast(mean=mean, level=mean.copy(), sigma1=sigma)
