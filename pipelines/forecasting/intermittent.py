"""Intermittent demand: Syntetos-Boylan classification and the Croston, SBA and TSB methods."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.signal import lfilter

from pipelines.forecasting.models import ModelFn, ModelForecast, rmse

# Syntetos, Boylan & Croston (2005) cut-offs.
ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
ALPHAS = (0.05, 0.1, 0.2, 0.3)


def classify_demand(y: np.ndarray) -> str:
    """'smooth', 'erratic', 'intermittent' or 'lumpy' by ADI and CV^2 of the non-zero demands.

    ADI is the average number of periods between demands; CV^2 the squared coefficient of variation
    of the demand sizes. A series with a negative value or without any demand is 'smooth' (the
    classification only applies to non-negative demand).
    """
    if len(y) == 0 or np.min(y) < 0:
        return "smooth"
    sizes = y[y > 0]
    if sizes.size == 0:
        return "smooth"
    adi = len(y) / sizes.size
    cv2 = float(np.var(sizes) / np.mean(sizes) ** 2) if sizes.size > 1 else 0.0
    if adi < ADI_CUTOFF:
        return "erratic" if cv2 >= CV2_CUTOFF else "smooth"
    return "lumpy" if cv2 >= CV2_CUTOFF else "intermittent"


def _croston_path(y: np.ndarray, alpha: float) -> np.ndarray:
    """Croston rates z/p available after y[:t], t = 0..n (before the first demand: the initial rate).

    The size starts at the mean demand size and the interval at the mean interval over the whole
    history, len(y) / number of demands: the gap before the first demand and the one still running
    after the last count too. Starting the interval at 1 (or at the first demand's position) made
    one order in a long history a daily rate of that order's size.
    """
    nz = np.flatnonzero(y > 0)
    if nz.size == 0:
        return np.zeros(len(y) + 1)
    rates = np.empty(nz.size + 1)
    z, p = float(np.mean(y[nz])), len(y) / nz.size
    rates[0] = z / p
    previous = -1
    for k, index in enumerate(nz.tolist()):
        z += alpha * (float(y[index]) - z)
        p += alpha * (float(index - previous) - p)
        previous = index
        rates[k + 1] = z / p
    # rate after y[:t] = rate after the demands at indices < t
    seen = np.searchsorted(nz, np.arange(len(y) + 1) - 1, side="right")
    out: np.ndarray = rates[seen]
    return out


def _smooth(x: np.ndarray, alpha: float, start: float) -> np.ndarray:
    """Simple exponential smoothing levels after each value of `x`, from level `start`."""
    if x.size == 0:
        return np.empty(0)
    out: np.ndarray = lfilter([alpha], [1.0, alpha - 1.0], x, zi=[(1.0 - alpha) * start])[0]
    return out


def _tsb_path(y: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """TSB rates (demand probability x size) available after y[:t], t = 0..n.

    The probability is smoothed every period, the size at demands only; both start from their
    means over the whole history.
    """
    nz = y > 0
    prob0 = float(nz.mean()) if len(y) else 0.0
    size0 = float(y[nz].mean()) if nz.any() else 0.0
    prob = _smooth(nz.astype(np.float64), beta, prob0)
    sizes = np.concatenate([[size0], _smooth(y[nz].astype(np.float64), alpha, size0)])
    out = np.empty(len(y) + 1)
    out[0] = prob0 * size0
    out[1:] = prob * sizes[np.cumsum(nz)]
    return out


def _best_alpha(
    y: np.ndarray, path_fn: Callable[[np.ndarray, float], np.ndarray]
) -> tuple[float, np.ndarray]:
    """Smoothing parameter from `ALPHAS` with the lowest in-sample one-step MSE, and its path."""
    best: tuple[float, float, np.ndarray] | None = None
    for alpha in ALPHAS:
        path = path_fn(y, alpha)
        err = float(np.mean((y - path[:-1]) ** 2))
        if best is None or err < best[0]:
            best = (err, alpha, path)
    assert best is not None
    return best[1], best[2]


def build_croston(variant: str) -> ModelFn:
    """Croston ('croston'), Syntetos-Boylan Approximation ('sba') or TSB ('tsb').

    The smoothing parameter (shared by size and interval, or by size and probability for TSB) is
    chosen from a small grid by in-sample one-step MSE; SBA scales Croston by (1 - alpha / 2).
    TSB smooths the probability with at most the series' demand frequency (demands / periods):
    its memory is then at least one mean interval between demands, so one demand after a long
    silence does not turn into a high daily probability (with 0.3, an order yesterday after two
    idle years was forecast as 30% of that order every day).
    """

    def path(y: np.ndarray, alpha: float) -> np.ndarray:
        if variant == "tsb":
            frequency = float(np.count_nonzero(y > 0)) / len(y) if len(y) else 0.0
            return _tsb_path(y, alpha, min(alpha, frequency))
        rate = _croston_path(y, alpha)
        return rate * (1.0 - alpha / 2.0) if variant == "sba" else rate

    def fit(y: np.ndarray, horizon: int) -> ModelForecast:
        if len(y) == 0 or np.min(y) < 0:
            raise ValueError(f"{variant} needs a non-negative, non-empty series")
        alpha, fitted = _best_alpha(y, path)
        mean = np.full(horizon, fitted[-1])
        return ModelForecast(
            mean=mean,
            replay=lambda p, h: np.full(h, path(p, alpha)[-1]),
            level=mean.copy(),
            sigma1=rmse(y - fitted[:-1]),
        )

    return fit
