"""Levenberg-Marquardt nonlinear least squares for a handful of parameters, bit-reproducible.

The ARIMA fits used scipy's `leastsq` (MINPACK). In scipy 1.17 its C translation reads one value
past the end of the Jacobian whenever `qrfac` recomputes a column norm while pivoting (nearly
collinear columns, e.g. an ARMA(2, 2) with nearly cancelling roots); scipy 1.18 fixed it
(scipy PR #24323). The value read is whatever the heap holds after that array, so the same series
got slightly different parameters in two processes, or twice in one process, and now and then a
different optimum (valgrind: "Invalid read of size 8 ... 0 bytes after a block", in
enorm <- qrfac <- LMDIF). This solver does the same job with element-wise numpy operations,
pairwise sums and a small elimination in Python, so the same inputs always give the same bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Residuals = Callable[[np.ndarray], np.ndarray]
Jacobian = Callable[[np.ndarray, np.ndarray], np.ndarray]

_SQRT_EPS = math.sqrt(float(np.finfo(np.float64).eps))
_TINY = 1e-300
_LAMBDA0, _LAMBDA_MIN, _LAMBDA_MAX = 1e-3, 1e-12, 1e16


def _sum_products(a: np.ndarray, b: np.ndarray) -> float:
    # numpy's pairwise sum: a fixed order for a given length, unlike a BLAS dot product
    return float(np.sum(a * b))


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting on a small system; None when singular."""
    n = len(rhs)
    rows = [[*row, value] for row, value in zip(matrix, rhs, strict=True)]
    for col in range(n):
        pivot = col
        for i in range(col + 1, n):
            if abs(rows[i][col]) > abs(rows[pivot][col]):
                pivot = i
        if not abs(rows[pivot][col]) > _TINY:
            return None
        rows[col], rows[pivot] = rows[pivot], rows[col]
        top = rows[col]
        for i in range(col + 1, n):
            row = rows[i]
            factor = row[col] / top[col]
            if factor != 0.0:
                for k in range(col + 1, n + 1):
                    row[k] -= factor * top[k]
    out = [0.0] * n
    for i in range(n - 1, -1, -1):
        row = rows[i]
        acc = row[n]
        for k in range(i + 1, n):
            acc -= row[k] * out[k]
        out[i] = acc / row[i]
    return out


def _jacobian(fun: Residuals, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Forward differences, one row per parameter (step sqrt(eps) * |x_j|, as MINPACK)."""
    jac = np.empty((x.size, r.size))
    for j in range(x.size):
        shifted = x.copy()
        shifted[j] += _SQRT_EPS * abs(float(x[j])) or _SQRT_EPS
        jac[j] = (fun(shifted) - r) / (shifted[j] - x[j])
    return jac


def fit_least_squares(
    fun: Residuals,
    x0: np.ndarray,
    *,
    jac: Jacobian | None = None,
    xtol: float = 1e-6,
    ftol: float = 1e-8,
    max_evals: int | None = None,
) -> np.ndarray:
    """Parameters minimising sum(fun(x) ** 2), from `x0`, by Levenberg-Marquardt.

    Marquardt's scaling (the damping is proportional to the diagonal of J'J). `jac(x, fun(x))`
    returns the Jacobian with one row per parameter; without it, forward differences (which
    count as evaluations of `fun`). Stops when an accepted step reduces the sum of squares by a
    relative `ftol` or less, when the scaled step is at most `xtol` relative to the scaled
    parameters, when no step reduces the sum of squares, or after `max_evals` evaluations of
    `fun` (default 200 * (n + 1), as `scipy.optimize.leastsq`). Returns the best point found; a
    non-finite sum of squares at `x0` returns `x0`.
    """
    x = np.array(x0, dtype=np.float64).ravel()
    n = x.size
    budget = max_evals if max_evals is not None else 200 * (n + 1)
    r = np.asarray(fun(x), dtype=np.float64)
    evals = 1
    ssq = _sum_products(r, r)
    lam = _LAMBDA0
    while np.isfinite(ssq) and ssq > 0.0 and evals + n < budget:
        if jac is None:
            jacobian = _jacobian(fun, x, r)
            evals += n
        else:
            jacobian = np.asarray(jac(x, r), dtype=np.float64)
        # pairwise sums along the last axis: a fixed order for a given length, unlike BLAS
        gram = (jacobian[:, None, :] * jacobian[None, :, :]).sum(axis=2).tolist()
        grad = (-(jacobian * r[None, :]).sum(axis=1)).tolist()
        scale = [max(gram[a][a], _TINY) for a in range(n)]
        accepted: tuple[np.ndarray, np.ndarray, float, list[float]] | None = None
        while accepted is None and evals < budget and lam <= _LAMBDA_MAX:
            damped = [[gram[a][b] + (lam * scale[a] if a == b else 0.0) for b in range(n)] for a in range(n)]
            step = _solve(damped, grad)
            if step is None:
                lam *= 4.0
                continue
            trial = x + np.array(step)
            r_trial = np.asarray(fun(trial), dtype=np.float64)
            evals += 1
            ssq_trial = _sum_products(r_trial, r_trial)
            if np.isfinite(ssq_trial) and ssq_trial < ssq:
                accepted = (trial, r_trial, ssq_trial, step)
            else:
                lam *= 4.0
        if accepted is None:
            break
        trial, r_trial, ssq_trial, step = accepted
        reduction = (ssq - ssq_trial) / ssq
        x, r, ssq = trial, r_trial, ssq_trial
        lam = max(lam / 3.0, _LAMBDA_MIN)
        step_norm = math.sqrt(sum(scale[a] * step[a] ** 2 for a in range(n)))
        x_norm = math.sqrt(sum(scale[a] * float(x[a]) ** 2 for a in range(n)))
        if reduction <= ftol or step_norm <= xtol * (x_norm + xtol):
            break
    return x
