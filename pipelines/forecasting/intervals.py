"""Prediction intervals calibrated on rolling-origin backtest errors (split-conformal style).

Each series supplies a scale per horizon step (`sigma`) and the backtest errors of its chosen
forecast. The normalised absolute errors |e| / sigma, pooled over the series forecast together and
over neighbouring horizon steps, give a multiplier per level and step; a Gaussian prior keeps the
multiplier sensible when few errors exist.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

# Pseudo-count of the Gaussian prior on each multiplier (in normalised errors).
PRIOR_WEIGHT = 30.0


def fit_multipliers(
    scores: list[np.ndarray], horizon: int, levels: tuple[float, ...]
) -> dict[float, np.ndarray]:
    """Multiplier per level and horizon step from normalised backtest errors.

    Args:
        scores: per series an array (windows, horizon) of |error| / sigma (NaN where unknown).
        horizon: forecast horizon.
        levels: interval levels in percent.

    Returns:
        level -> array (horizon,) of multipliers (the scales already grow with the step).
    """
    stacked = np.vstack([s for s in scores if s.size]) if any(s.size for s in scores) else None
    out: dict[float, np.ndarray] = {}
    for level in levels:
        q = level / 100.0
        z = float(stats.norm.ppf(0.5 + q / 2.0))
        mult = np.full(horizon, z)
        if stacked is not None:
            for k in range(horizon):
                lo, hi = max(0, k - 1), min(horizon, k + 2)
                pool = stacked[:, lo:hi].ravel()
                pool = pool[np.isfinite(pool)]
                n = pool.size
                if n:
                    # conformal quantile with the finite-sample correction, then shrink to z
                    emp = float(np.quantile(pool, min(1.0, q * (n + 1) / n)))
                    mult[k] = (n * emp + PRIOR_WEIGHT * z) / (n + PRIOR_WEIGHT)
        out[level] = mult
    return out
