"""Forecast reconciliation: MinT (minimum trace) with a shrunk residual covariance, in numpy.

Notation of Wickramasuriya, Athanasopoulos & Hyndman (2019), "Optimal forecast reconciliation for
hierarchical and grouped time series through trace minimization", JASA 114(526).  The n series are
ordered aggregates first (n_a of them), then the bottom series (n_b): y = S b with S = [A; I], and
the coherent forecasts are those with U'y = 0, U' = [I_{n_a}, -A].  For a base forecast yhat with
error covariance W_h, MinT is the projection

    ytilde = yhat - W_h U (U' W_h U)^{-1} U' yhat                      (their eq. 9 / Lemma 1)

equal to S (S' W_h^{-1} S)^{-1} S' W_h^{-1} yhat, and the reconciled errors have covariance

    Var(ytilde) = W_h - W_h U (U' W_h U)^{-1} U' W_h                   (= S P W_h P' S').

Only an n_a x n_a system is solved, and U is sparse (each aggregate row of A lists its bottom
series), so the cost grows with the aggregates, not with n^2 bottom pairs.

W_h is the shrinkage estimator of their section 3.3 (Schäfer & Strimmer 2005) written as a
correlation matrix scaled by each base forecast's own standard deviation at step h:

    W_h = diag(s_h) [lambda I + (1 - lambda) R] diag(s_h)

R is the sample correlation of the series' standardised in-sample residuals (a T x n matrix Z,
R = Z'Z / T), lambda the Schäfer-Strimmer intensity estimated from the same Z.  R is never formed:
W_h U = lambda s_h^2 U + (1 - lambda) Y'(Y U) with Y = Z diag(s_h) / sqrt(T) is a low-rank
product, so memory stays O(n T + n n_a).  Where even that is too costly (`max_dense` cells),
lambda = 1 (MinT-diagonal, the "WLS with variance scaling" of the paper) and everything is sparse;
without residuals (the nightly default, see `pipelines.forecasting.hierarchy`) likewise.

Intervals: `build_bounds` makes them Gaussian on the reconciled scale, ytilde +- z_L *
sqrt(diag Var(ytilde)), with s_h from the base forecasts' own calibrated bands at level L
(half-width / z_L).  On the demo they cover far less than nominal at the aggregate levels (32-61 %
for 80 % bands; BENCHMARKS.md "Forecast hierarchy"): with thousands of series and a year of
residuals the correlations are shrunk hard towards 0 (or left out: MinT-diagonal), so the summed
bottom forecasts look more certain than they are and Var(ytilde) is too small.  `contain_bounds` (the default of
`pipelines.forecasting.hierarchy`) keeps instead each node's own base band, calibrated on its own
backtests by the forecaster (split-conformal), widened where needed to contain the reconciled
forecast: it covers within about 2 points of nominal at every level on the demo.
Non-negativity: reconciled bottom forecasts below 0 are set to 0 and every aggregate is summed
again from the bottom (bottom-up), so the result stays coherent exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import stats

# Above this many cells of the dense n x n_a matrix W_h U, use MinT-diagonal (sparse) instead.
MAX_DENSE = 40_000_000

Solve = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Reconciled:
    """Reconciled means (n, H), standard deviations per level (n, H) and how they were made."""

    mean: np.ndarray
    sd: dict[float, np.ndarray]
    method: str
    shrinkage: float


def summing_constraints(aggregation: sp.csr_matrix) -> sp.csr_matrix:
    """U (n x n_a) with U' = [I, -A] for an aggregation matrix A (n_a x n_b of 0/1)."""
    n_a = aggregation.shape[0]
    return sp.vstack([sp.identity(n_a, format="csr"), -aggregation.T.tocsr()], format="csr")


def shrinkage_intensity(z: np.ndarray) -> float:
    """Schäfer-Strimmer lambda for the correlation matrix of standardised residuals `z` (T x n).

    lambda = sum_{i != j} Var(r_ij) / sum_{i != j} r_ij^2, with r_ij = mean_t z_ti z_tj and
    Var(r_ij) = sum_t (z_ti z_tj - r_ij)^2 / (T (T - 1)) (as in the paper's section 3.3), computed through T x T products, never
    the n x n matrix: sum_{i,j} r_ij^2 = ||Z Z'||_F^2 / T^2 and sum_{i,j} sum_t (z_ti z_tj)^2 =
    sum_t (sum_i z_ti^2)^2.
    """
    t, n = z.shape
    if t < 3 or n < 2:
        return 1.0
    z2 = z * z
    gram = z @ z.T  # T x T
    sum_r2_all = float(np.sum(gram * gram)) / t**2
    sum_r2_diag = float(np.sum((z2.sum(axis=0) / t) ** 2))
    sum_w2_all = float(np.sum(z2.sum(axis=1) ** 2))
    sum_w2_diag = float(np.sum((z2 * z2).sum(axis=0)))
    # sum_t (w_tij - r_ij)^2 = sum_t w_tij^2 - T r_ij^2, summed over i != j
    spread = (sum_w2_all - sum_w2_diag) - t * (sum_r2_all - sum_r2_diag)
    off = sum_r2_all - sum_r2_diag
    if off <= 0:
        return 1.0
    lam = spread / (t * (t - 1)) / off
    return float(min(1.0, max(0.0, lam)))


def reconcile_mint(
    base: np.ndarray,
    scales: dict[float, np.ndarray],
    aggregation: sp.csr_matrix,
    residuals: np.ndarray | None,
    *,
    nonnegative: bool = True,
    variances: bool = True,
    max_dense: int = MAX_DENSE,
    shrinkage: float | None = None,
) -> Reconciled:
    """Reconcile base forecasts `base` (n x H, aggregates first) of the hierarchy `aggregation`.

    `scales[L]` (n x H) is each base forecast's standard deviation implied by its level-L band;
    the means use the first level's, averaged over the horizon (one W for every step). With
    `variances` (Gaussian bands), each level's and step's give diag(W_h - W_h U (U'W_h U)^-1 U'W_h),
    MinT's variance for that step's W_h; without, `sd` is empty. `residuals` (T x n,
    standardised, columns with no variation all 0) give the correlations; None or too big
    (`max_dense`): MinT-diagonal. `shrinkage` fixes lambda instead of estimating it.
    """
    n_a, n_b = aggregation.shape
    n, horizon = base.shape
    if n != n_a + n_b:
        raise ValueError(f"reconcile_mint: base has {n} series, the hierarchy {n_a} + {n_b}")
    u = summing_constraints(aggregation)
    dense = residuals is not None and n * n_a <= max_dense and residuals.shape[0] >= 3
    lam = shrinkage_intensity(residuals) if dense and residuals is not None else 1.0
    if shrinkage is not None and dense:  # a fixed intensity (experiments), not the estimated one
        lam = shrinkage
    dense = dense and lam < 1.0
    levels = list(scales)
    # the means: one W for every step (W_h = k_h W_1, the paper's assumption), its spreads each
    # series' mean base spread over the horizon (a step with no spread, a closed day, says nothing)
    s = _floored(np.nanmean(scales[levels[0]], axis=1) if horizon else np.ones(n))
    wu, solve = _dense_step(s, u, residuals, lam) if dense and residuals is not None else _diagonal_step(s, u)
    gap = u.T @ base  # U'yhat: how far the base forecasts are from coherent, per step
    mean = base - np.asarray(wu @ solve(np.asarray(gap))).reshape(base.shape)
    sd: dict[float, np.ndarray] = {}
    for lv in levels if variances else []:
        sd[lv] = np.empty_like(base, dtype=float)
        for h in range(horizon):
            s_h = _floored(scales[lv][:, h])
            wu_h, solve_h = (
                _dense_step(s_h, u, residuals, lam)
                if dense and residuals is not None
                else _diagonal_step(s_h, u)
            )
            sd[lv][:, h] = np.sqrt(np.maximum(s_h * s_h - _quad_diag(wu_h, solve_h), 0.0))
    if nonnegative:
        bottom = np.maximum(mean[n_a:], 0.0)
        mean = np.vstack([aggregation @ bottom, bottom])
    method = f"mint_shrink(lambda={lam:.3f})" if dense else "mint_diagonal"
    return Reconciled(mean=mean, sd=sd, method=method, shrinkage=lam)


def build_bounds(rec: Reconciled, *, nonnegative: bool = True) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Gaussian bounds per level around the reconciled means, ordered around them."""
    out = {}
    for lv, sd in rec.sd.items():
        z = float(stats.norm.ppf(0.5 + lv / 200.0))
        lo, hi = rec.mean - z * sd, rec.mean + z * sd
        if nonnegative:
            lo = np.maximum(lo, 0.0)
        out[lv] = (np.minimum(lo, rec.mean), np.maximum(hi, rec.mean))
    return out


def contain_bounds(
    mean: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, in_place: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A node's own base band (calibrated on its own backtests), widened where needed to contain
    its reconciled forecast (`in_place`: in `lo` and `hi` themselves, no new arrays)."""
    if in_place:
        return np.minimum(lo, mean, out=lo), np.maximum(hi, mean, out=hi)
    return np.minimum(lo, mean), np.maximum(hi, mean)


def _floored(s: np.ndarray) -> np.ndarray:
    # a series forecast as exactly 0 (closed day) has no spread; a tiny one keeps U'WU invertible
    s = np.where(np.isfinite(s), s, 0.0)
    return np.maximum(s, 1e-6 * max(1.0, float(s.max(initial=0.0))))


def _dense_step(s: np.ndarray, u: sp.csr_matrix, z: np.ndarray, lam: float) -> tuple[np.ndarray, Solve]:
    y = z * (s / np.sqrt(z.shape[0]))  # T x n
    yu = np.asarray((u.T @ y.T).T)  # T x n_a
    wu = lam * np.asarray(u.multiply((s * s)[:, None]).todense()) + (1.0 - lam) * (y.T @ yu)
    m = np.asarray(u.T @ wu)
    m = (m + m.T) / 2.0
    factor = sla.cho_factor(m)
    return wu, lambda rhs: sla.cho_solve(factor, rhs)


def _diagonal_step(s: np.ndarray, u: sp.csr_matrix) -> tuple[sp.csr_matrix, Solve]:
    wu = u.multiply((s * s)[:, None]).tocsr()
    m = (u.T @ wu).tocsc()
    lu = spla.splu(m)
    return wu, lu.solve


def _quad_diag(wu: np.ndarray | sp.csr_matrix, solve: Solve, block: int = 2048) -> np.ndarray:
    """diag(WU M^{-1} U'W) = row i: wu_i' M^{-1} wu_i, in blocks of rows (never n x n)."""
    n = wu.shape[0]
    out = np.empty(n)
    for start in range(0, n, block):
        rows = wu[start : start + block]
        part = rows.toarray() if isinstance(rows, sp.spmatrix | sp.sparray) else np.asarray(rows)
        x = solve(part.T)
        out[start : start + block] = np.einsum("ij,ji->i", part, x)
    return out


class ShardedMinT:
    """MinT-diagonal of a hierarchy gathered one shard of bottom series at a time, never the whole.

    The aggregates split in two: a few `top` nodes (the total, categories, category x warehouse:
    their number does not grow with the products) and one `block` node per SKU, each summing
    the bottom series of its SKU only, all in one shard.  With U' = [I, -A] and a diagonal W,
    M = U'WU = W_a + A W_b A' then has a diagonal block-node part D = W_K + A_K W_b A_K', so
    the block nodes are eliminated shard by shard (Schur complement):

        (M_TT - M_TK D^-1 M_KT) x_T = g_T - M_TK D^-1 g_K,   x_K = D^-1 (g_K - M_KT x_T)

    with g = U'yhat, M_TT = W_T + A_T W_b A_T', M_TK = A_T W_b A_K' (each summed over the
    shards), and the reconciled bottom forecasts are yhat_b + W_b (A_T' x_T + A_K' x_K), what
    `reconcile_mint` gives (the aggregates are summed again from the bottom, as there).

    `add` every shard once, then `solve`, then `bottom` each shard again with the same figures.
    """

    def __init__(self, top_base: np.ndarray, top_w: np.ndarray) -> None:
        self._top_base = np.asarray(top_base, dtype=float)
        t, horizon = self._top_base.shape
        self._m = np.diag(np.asarray(top_w, dtype=float))
        self._top_sums = np.zeros((t, horizon))  # A_T yhat_b
        self._rhs = np.zeros((t, horizon))  # - sum M_TK D^-1 g_K
        self._x: np.ndarray | None = None

    @staticmethod
    def _shard(
        a_top: sp.csr_matrix,
        a_block: sp.csr_matrix,
        bottom: tuple[np.ndarray, np.ndarray],
        block: tuple[np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """M_TK, D's diagonal and g_K of one shard."""
        (y_b, w_b), (y_k, w_k) = bottom, block
        m_tk = np.asarray((a_top.multiply(w_b[None, :]) @ a_block.T).todense())
        d = w_k + np.asarray(a_block @ w_b).ravel()
        return m_tk, d, y_k - np.asarray(a_block @ y_b)

    def add(
        self,
        a_top: sp.csr_matrix,
        a_block: sp.csr_matrix,
        bottom: tuple[np.ndarray, np.ndarray],
        block: tuple[np.ndarray, np.ndarray],
    ) -> None:
        """One shard: `a_top` (T x n_s) and `a_block` (K_s x n_s) its aggregation, `bottom` and
        `block` the (base forecasts (rows x H), W's diagonal) of its bottom and block nodes."""
        if self._x is not None:
            raise ValueError("ShardedMinT: every shard is added before solve()")
        (y_b, w_b) = bottom
        m_tk, d, g_k = self._shard(a_top, a_block, bottom, block)
        self._m += np.asarray((a_top.multiply(w_b[None, :]) @ a_top.T).todense()) - (m_tk / d) @ m_tk.T
        self._top_sums += np.asarray(a_top @ y_b)
        self._rhs -= m_tk @ (g_k / d[:, None])

    def solve(self) -> None:
        """x_T from every shard's figures."""
        m = (self._m + self._m.T) / 2.0
        rhs = self._top_base - self._top_sums + self._rhs
        self._x = sla.solve(m, rhs, assume_a="pos") if len(m) else np.zeros_like(rhs)

    def bottom(
        self,
        a_top: sp.csr_matrix,
        a_block: sp.csr_matrix,
        bottom: tuple[np.ndarray, np.ndarray],
        block: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """The shard's reconciled bottom forecasts (n_s x H, before clipping at 0), from the same
        arguments as its `add`."""
        if self._x is None:
            raise ValueError("ShardedMinT: solve() before bottom()")
        (y_b, w_b) = bottom
        m_tk, d, g_k = self._shard(a_top, a_block, bottom, block)
        x_k = (g_k - m_tk.T @ self._x) / d[:, None]
        return y_b + w_b[:, None] * (np.asarray(a_top.T @ self._x) + np.asarray(a_block.T @ x_k))
