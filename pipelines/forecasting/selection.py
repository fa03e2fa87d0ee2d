"""Per-series model selection and combination by rolling-origin backtests.

`fit_predict_series` is the unit of work sent to worker processes: it prepares one series, backtests
the candidate models on the series' own recent history, keeps the best model or an equal-weight
combination of the best few, refits them on the full history and returns the forecast with the
information needed to calibrate intervals and explain the choice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from pipelines.forecasting.models import (
    ModelFn,
    ModelForecast,
    predict_mean,
    predict_naive,
    predict_seasonal_naive,
)
from pipelines.forecasting.options import ForecastOptions

logger = logging.getLogger(__name__)

MODELS: dict[str, ModelFn] = {
    "seasonal_naive": predict_seasonal_naive,
    "naive": predict_naive,
}
FALLBACK_CHAIN: tuple[str, ...] = ("seasonal_naive", "naive", "mean")


@dataclass
class SeriesResult:
    """Forecast of one series plus what interval calibration and explanation need."""

    mean: np.ndarray
    sigma: np.ndarray
    scores: np.ndarray
    model: str
    weights: dict[str, float]
    backtest_error: float
    fallback: bool = False
    fallback_reason: str | None = None
    nonnegative: bool = False
    components: dict[str, np.ndarray] = field(default_factory=dict)


def build_clean_series(y: np.ndarray, max_history: int) -> np.ndarray:
    """Drop leading NaN, keep the last `max_history` points and fill gaps by interpolation."""
    finite = np.flatnonzero(np.isfinite(y))
    if finite.size == 0:
        return np.empty(0)
    y = y[finite[0] :][-max_history:]
    mask = np.isfinite(y)
    if mask.all():
        return y.astype(np.float64, copy=True)
    idx = np.arange(len(y))
    # interpolation inside, last observed value carried forward at the end
    return np.interp(idx, idx[mask], y[mask]).astype(np.float64)


def season_period(season_lengths: tuple[float, ...], n: int) -> int:
    """Longest integer seasonal period with at least two full seasons of data (0 if none)."""
    usable = [round(p) for p in season_lengths if p >= 2 and n >= 2 * round(p)]
    return max(usable) if usable else 0


def _scale(y: np.ndarray) -> float:
    """MASE scale: mean absolute one-step difference (1.0 when the series is constant)."""
    if len(y) < 2:
        return 1.0
    s = float(np.mean(np.abs(np.diff(y))))
    return s if s > 0 else 1.0


def _fit(name: str, y: np.ndarray, horizon: int, period: int) -> ModelForecast:
    fc = MODELS[name](y, horizon, period) if name in MODELS else predict_mean(y, horizon, period)
    if fc.mean.shape != (horizon,) or not np.all(np.isfinite(fc.mean)):
        raise FloatingPointError(f"{name} produced a non-finite or mis-shaped forecast")
    return fc


def _backtest(
    names: list[str], y: np.ndarray, horizon: int, period: int, windows: int
) -> dict[str, np.ndarray]:
    """Errors (windows, horizon) per model; a model that fails gets NaN errors."""
    n = len(y)
    origins = [n - horizon * w for w in range(windows, 0, -1)]
    origins = [o for o in origins if o >= max(3, 2 * period if period else 3)]
    errors: dict[str, np.ndarray] = {}
    for name in names:
        err = np.full((len(origins), horizon), np.nan)
        for i, origin in enumerate(origins):
            try:
                err[i] = y[origin : origin + horizon] - _fit(name, y[:origin], horizon, period).mean
            except Exception:  # a failing model is only disqualified
                logger.debug("backtest of %s failed at origin %d", name, origin, exc_info=True)
        errors[name] = err
    return errors


def fit_predict_series(y_raw: np.ndarray, horizon: int, options: ForecastOptions) -> SeriesResult:
    """Forecast one series (NaN = missing/censored) `horizon` steps ahead."""
    y = build_clean_series(y_raw, options.max_history)
    nonneg = (
        bool(options.nonnegative) if options.nonnegative is not None else bool(y.size and np.nanmin(y) >= 0)
    )
    nan_h = np.full(horizon, np.nan)
    if y.size == 0:
        return SeriesResult(
            mean=np.zeros(horizon),
            sigma=np.zeros(horizon),
            scores=np.empty((0, horizon)),
            model="zero",
            weights={"zero": 1.0},
            backtest_error=np.nan,
            fallback=True,
            fallback_reason="no observed (non-missing, non-censored) value; forecasting 0",
            nonnegative=nonneg,
        )
    period = season_period(options.season_lengths, len(y))
    names = list(MODELS)
    errors = _backtest(names, y, horizon, period, options.backtest_windows)
    scale = _scale(y)
    mase = {k: float(np.nanmean(np.abs(v))) / scale for k, v in errors.items() if np.isfinite(v).any()}
    ranked = sorted(mase, key=lambda k: (mase[k], names.index(k))) or names
    chosen = ranked[0]
    reasons: list[str] = []
    fc: ModelForecast | None = None
    for name in [chosen, *[m for m in FALLBACK_CHAIN if m != chosen]]:
        try:
            fc = _fit(name, y, horizon, period)
            break
        except Exception as err:  # fall back to a simpler model
            reasons.append(f"{name} failed: {type(err).__name__}: {err}")
            logger.debug("final fit of %s failed", name, exc_info=True)
    if fc is None:  # pragma: no cover - predict_mean cannot fail on finite data
        raise RuntimeError("every fallback model failed")
    used = name
    sigma1 = fc.sigma1 if np.isfinite(fc.sigma1) else float(np.std(y))
    sigma = np.sqrt(np.arange(1, horizon + 1)) * max(sigma1, 0.0)
    used_errors = errors.get(used, np.empty((0, horizon)))
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(sigma > 0, np.abs(used_errors) / sigma, np.nan)
    comps = {
        "level": fc.level if fc.level is not None else nan_h,
        "trend": fc.trend if fc.trend is not None else nan_h,
        "seasonal": fc.seasonal if fc.seasonal is not None else nan_h,
    }
    return SeriesResult(
        mean=fc.mean,
        sigma=sigma,
        scores=scores,
        model=used,
        weights={used: 1.0},
        backtest_error=mase.get(used, np.nan),
        fallback=bool(reasons),
        fallback_reason="; ".join(reasons) or None,
        nonnegative=nonneg,
        components=comps,
    )
