"""Levenberg-Marquardt nonlinear least squares for a handful of parameters, bit-reproducible.

The ARIMA fits used scipy's `leastsq` (MINPACK). In scipy 1.17 its C translation reads one value
past the end of the Jacobian whenever `qrfac` recomputes a column norm while pivoting (nearly
collinear columns, e.g. an ARMA(2, 2) with nearly cancelling roots); scipy 1.18 fixed it
(scipy PR #24323). The value read is whatever the heap holds after that array, so the same series
got slightly different parameters in two processes, or twice in one process, and now and then a
different optimum (valgrind: "Invalid read of size 8 ... 0 bytes after a block", in
enorm <- qrfac <- LMDIF). This solver does the same job with numpy's own sum-of-products loops
(not BLAS, whose summation order may depend on threads) and a direct solve of an n x n system,
so the same inputs always give the same bits.
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
    # numpy's own sum-of-products loop (not BLAS): a fixed order for a given length
    return float(np.einsum("i,i->", a, b))


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
    """Solution of a small linear system; None when singular.

    One and two unknowns (most ARMA orders) in closed form, larger systems by LU.
    """
    n = len(rhs)
    if n == 1:
        a, b = float(matrix[0, 0]), float(rhs[0])
        return np.array([b / a]) if a != 0.0 and math.isfinite(b / a) else None
    if n == 2:
        (a, b), (c, d) = matrix.tolist()
        e, f = rhs.tolist()
        det = a * d - b * c
        if det == 0.0 or not math.isfinite(det):
            return None
        out = np.array([(e * d - b * f) / det, (a * f - e * c) / det])
    else:
        try:
            out = np.linalg.solve(matrix, rhs)
        except np.linalg.LinAlgError:
            return None
    return out if np.all(np.isfinite(out)) else None


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
        # numpy's own sum-of-products loops (not BLAS): a fixed order of the terms
        gram = np.einsum("ik,jk->ij", jacobian, jacobian)
        grad = -np.einsum("ik,k->i", jacobian, r)
        scale = np.maximum(np.diagonal(gram), _TINY)
        accepted: tuple[np.ndarray, np.ndarray, float, np.ndarray] | None = None
        while accepted is None and evals < budget and lam <= _LAMBDA_MAX:
            step = _solve(gram + np.diag(lam * scale), grad)
            if step is None:
                lam *= 4.0
                continue
            trial = x + step
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
        weights = scale.tolist()
        step_norm = math.sqrt(sum(w * v * v for w, v in zip(weights, step.tolist(), strict=True)))
        x_norm = math.sqrt(sum(w * v * v for w, v in zip(weights, x.tolist(), strict=True)))
        if reduction <= ftol or step_norm <= xtol * (x_norm + xtol):
            break
    return x
