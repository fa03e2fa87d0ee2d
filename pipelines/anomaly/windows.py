"""Vectorised trailing-window helpers on (series x day) matrices.

Every statistic at column ``t`` is a function of a fixed set of earlier cells only, computed the same
way whatever the matrix' first column is. That makes the scorer causal and makes an incremental run
on a trailing window give bit-identical results to a full run.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def lagged_windows(x: np.ndarray, start: int, stop: int, first_lag: int, n: int, step: int = 1) -> np.ndarray:
    """Return, for each column ``t`` in ``[start, stop)``, the cells ``t - first_lag - step * j``.

    Args:
        x: (series, days) matrix.
        start, stop: output columns.
        first_lag: lag of the most recent cell (0 = the column itself).
        n: number of cells per window.
        step: distance in days between cells (7 = same weekday).

    Returns:
        A (series, stop - start, n) array; cells before column 0 are NaN. Order within a window is
        oldest first.
    """
    span = step * (n - 1) + 1
    pad = max(0, first_lag + span - 1 - start)
    if pad:
        x = np.concatenate([np.full((x.shape[0], pad), np.nan), x], axis=1)
    sw = sliding_window_view(x, span, axis=1)
    lo = start + pad - first_lag - span + 1
    hi = stop + pad - first_lag - span + 1
    return sw[:, lo:hi, ::step]


def sorted_count(win: np.ndarray, in_place: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sort windows along the last axis (NaN last) and count their non-NaN cells.

    With ``in_place`` the array is sorted where it is (it must own its data, e.g. a fancy-index copy).
    """
    if in_place:
        win.sort(axis=-1)
        s = win
    else:
        s = np.sort(win, axis=-1)
    return s, np.count_nonzero(~np.isnan(s), axis=-1)


def quantile_sorted(s: np.ndarray, count: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolated quantile ``q`` of sorted windows with ``count`` valid cells (NaN if none)."""
    pos = q * np.maximum(count - 1, 0)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    frac = pos - lo
    a = np.take_along_axis(s, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(s, hi[..., None], axis=-1)[..., 0]
    out = a + frac * (b - a)
    out[count == 0] = np.nan
    return out


def median_window(win: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware median of each window and its number of valid cells."""
    s, c = sorted_count(win)
    return quantile_sorted(s, c, 0.5), c


def windows_at(x: np.ndarray, cols: np.ndarray, first_lag: int, n: int, step: int = 1) -> np.ndarray:
    """Like :func:`lagged_windows` for an arbitrary array of target columns.

    ``x`` must be left-padded so that ``cols - first_lag - step * (n - 1) >= 0`` for every column.

    Returns:
        A (series, len(cols), n) array, oldest cell first.
    """
    span = step * (n - 1) + 1
    sw = sliding_window_view(x, span, axis=1)
    return sw[:, cols - first_lag - span + 1, ::step]


def mad_sorted(win: np.ndarray, center: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median absolute deviation of each window around ``center``."""
    dev = np.sort(np.abs(win - center[..., None]), axis=-1)
    return quantile_sorted(dev, count, 0.5)
