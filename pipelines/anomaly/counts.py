"""Compound count model of sparse non-negative series (mostly zeros): a few orders of varying size.

The value of a period is the total of ``N`` events (orders, deals, tickets): ``N`` is Poisson with a
rate ``lambda`` set by how often the series is non-zero in that position of the week (and of the day
for series sampled several times a day), and each event has a size drawn from the sizes of the
series' earlier non-zero periods. Both are fitted causally at each anchor (once a week for daily
series, at midnight otherwise) from the ``cadence.long`` periods before it (a year for daily series):

* frequency: the share of non-zero periods (Jeffreys' prior), per seasonal position as a ratio to
  the coarser rate (position of the day, then all periods) shrunk by a gamma prior worth
  :data:`PRIOR_EVENTS` events (see :func:`shrink_rate`); if the series was non-zero more often over
  the last ``cadence.scale`` periods (that rate shrunk the same way), every position is raised in
  proportion. ``lambda = -log(1 - p)``, so ``P(Y = 0) = 1 - p``;
* sizes (log-t): log sizes are Student-t around their median with a robust spread (the larger of
  IQR / 1.349 and the 5-95% range / 3.29, so one past outlier does not widen it) pooled with a prior
  worth :data:`SIZE_PRIOR_DOF` sizes of spread :data:`SIZE_PRIOR_SD`, so a single earlier size
  already gives a heavy-tailed predictive; the sum of ``n >= 2`` sizes is log-normal with the mean
  and variance of the sum (Fenton-Wilkinson), never below ``n P(S >= y)`` (one of them alone
  reaching ``y``, the heavy-tail limit). This is the size model of amounts;
* sizes of whole-number series: ``size - 1`` is also negative binomial with the mean and variance
  of the earlier sizes (less the largest 2.5%), the variance pooled with a prior of a
  :data:`SIZE_PRIOR_CV` coefficient of variation and raised by ``1 + 1/k`` for the uncertainty of
  the mean of ``k`` sizes; the sum of ``n`` such sizes is exactly ``n`` plus a negative binomial.
  The two are mixed as a Polya urn: weight ``k`` for the negative binomial fitted to the ``k`` sizes
  seen, ``SIZE_PRIOR_DOF`` for the log-t, so a few sizes say little about the shape of the tail and
  many Poisson-like sizes give the thin tail they show;
* a size reached at least twice before is never rarer than its rank among the earlier sizes (less the
  one that may have been an anomaly itself), so recurring large orders stay ordinary;
* ``P(Y >= y) = sum_n P(N = n) P(S_1 + ... + S_n >= y)``.

So an ordinary order (a usual size, at the usual frequency) has a tail probability of about the
frequency of orders, never an alarm, while a burst of many orders in a period, or a size far outside
the earlier ones, is. Arrays are (series, columns) for the rows and columns the caller selects.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy import special

from pipelines.anomaly.cadence import Cadence
from pipelines.anomaly.windows import quantile_sorted, sorted_count, windows_at

Cells = tuple[np.ndarray, ...]

#: Prior strength, in events, of the coarser rate behind each seasonal position's rate.
PRIOR_EVENTS = 4.0
#: Prior of the spread of sizes: worth this many sizes ...
SIZE_PRIOR_DOF = 2.0
#: ... with this standard deviation of log sizes (sizes within x0.6 to x1.6 of each other) ...
SIZE_PRIOR_SD = 0.5
#: ... or, for the negative binomial of whole-number sizes, this coefficient of variation.
SIZE_PRIOR_CV = 1.0
#: Events per period summed exactly; the probability of more is added to every upper tail.
_MAX_EVENTS = 16
_MAX_P = 1.0 - 1e-9
_IQR_TO_SD = 1.349
_Q90_RANGE_TO_SD = 3.2897
_QUANTILE_EFFICIENCY = 0.37
_TRIM = 0.025  # share of the largest earlier sizes left out of the moments of whole-number sizes
_SPARSE_ZERO_SHARE = 0.5
_OPEN_SHARE = 0.25


def sparse_at(hist: np.ndarray, acols: np.ndarray, cad: Cadence) -> np.ndarray:
    """(series, anchors) True where a series is sparse at an anchor.

    Sparse: at least half of the values are zero in the seasonal positions (weekday, or hour of the
    week) where the series sells, over the ``cad.long`` periods up to the anchor or over the last
    ``cad.scale`` of them. A position sells if its share of non-zero values is at least a quarter of
    the busiest position's, so a series that is busy whenever it is open (closed weekends, the
    nights of a business-hours series with a stray order) is not sparse.
    """
    cycle = cad.cycles[0]
    win = windows_at(hist, acols, 0, cad.long)
    out = np.zeros(win.shape[:2], dtype=bool)
    for span in (cad.long, cad.scale):
        if span % cycle or span // cycle < 2:
            continue
        part = win[..., cad.long - span :].reshape(*win.shape[:2], span // cycle, cycle)
        with np.errstate(invalid="ignore"):
            zeros = (part == 0).sum(axis=2)
            busy = (part > 0).sum(axis=2)
        share = busy / np.maximum(zeros + busy, 1)
        open_ = (busy > 0) & (share >= _OPEN_SHARE * share.max(axis=-1, keepdims=True))
        z = np.where(open_, zeros, 0).sum(axis=-1)
        v = z + np.where(open_, busy, 0).sum(axis=-1)
        out |= (v > 0) & (z >= _SPARSE_ZERO_SHARE * v)
        out |= (busy.sum(axis=-1) == 0) & (zeros.sum(axis=-1) > 0)  # nothing but zeros
    return out


@dataclass(frozen=True)
class CompoundCounts:
    """The fitted model at each scored column (arrays are (rows, columns))."""

    lam: np.ndarray  # Poisson rate of events
    n_sizes: np.ndarray  # earlier non-zero values behind the sizes
    mean_size: np.ndarray  # mean earlier non-zero value (NaN if none)
    discrete: np.ndarray  # whole-number series (bool): negative binomial sizes, else log-t sizes
    nb_r: np.ndarray  # size - 1 ~ NB(nb_r, nb_p) (whole-number series)
    nb_p: np.ndarray
    loc: np.ndarray  # log size ~ loc + scale * t(dof) (other series)
    scale: np.ndarray
    dof: np.ndarray
    windows: np.ndarray  # (rows, anchors, long) earlier values at each anchor, for size ranks
    second: np.ndarray  # (rows, anchors) second largest earlier size (0 if fewer than two)
    aidx: np.ndarray  # anchor index of each column

    @classmethod
    def fit(
        cls,
        hist: np.ndarray,
        acols: np.ndarray,
        aidx: np.ndarray,
        cols: np.ndarray,
        discrete: np.ndarray,
        cad: Cadence,
    ) -> CompoundCounts:
        """Fit at anchors ``acols`` (padded columns) from ``hist``; return it at columns ``cols``.

        Args:
            hist: (rows, padded periods) history, NaN = no value (events excluded).
            acols: anchor columns; the fit at an anchor reads ``cad.long`` periods up to it.
            aidx: anchor index of each of ``cols``.
            cols: scored padded columns.
            discrete: (rows, anchors) True for whole-number series.
            cad: cadence (windows and seasonal cycles).
        """
        win = np.array(windows_at(hist, acols, 0, cad.long))  # (rows, anchors, long), a copy
        valid = ~np.isnan(win)
        with np.errstate(invalid="ignore"):
            pos = win > 0
        n = valid.sum(axis=-1)
        k = pos.sum(axis=-1)
        n_recent = valid[..., -cad.scale :].sum(axis=-1)
        k_recent = pos[..., -cad.scale :].sum(axis=-1)
        p_pool = (k + 0.5) / (n + 1.0)
        boost = np.fmax(1.0, shrink_rate(k_recent, n_recent, p_pool) / p_pool)

        rows = np.arange(win.shape[0])[:, None]
        start = acols[aidx] - cad.long + 1  # first column of each scored column's window
        p = p_pool[:, aidx]
        for cycle in reversed(cad.cycles):
            shape = (*win.shape[:2], cad.long // cycle, cycle)
            kc = pos.reshape(shape).sum(axis=2)
            nc = valid.reshape(shape).sum(axis=2)
            where = (cols - start) % cycle
            p = shrink_rate(
                kc[rows, aidx[None, :], where[None, :]], nc[rows, aidx[None, :], where[None, :]], p
            )
        p = np.fmin(p * boost[:, aidx], _MAX_P)
        lam = -np.log1p(-p)

        sizes, cnt = sorted_count(np.where(pos, win, np.nan), in_place=True)  # ascending, NaN last
        sizes = sizes[..., : max(int(cnt.max(initial=0)), 2)]  # only the columns that hold a size
        second = np.take_along_axis(sizes, np.maximum(cnt - 2, 0)[..., None], axis=-1)[..., 0]
        second = np.where(cnt >= 2, second, 0.0)
        mean_size = np.where(k > 0, np.nansum(sizes, axis=-1) / np.maximum(k, 1), np.nan)
        nb_r, nb_p = _negative_binomial_sizes(sizes, cnt)
        loc, scale, dof = _log_t_sizes(sizes, cnt)
        return cls(
            lam=lam,
            n_sizes=k[:, aidx],
            mean_size=mean_size[:, aidx],
            discrete=discrete[:, aidx],
            nb_r=nb_r[:, aidx],
            nb_p=nb_p[:, aidx],
            loc=loc[:, aidx],
            scale=scale[:, aidx],
            dof=dof[:, aidx],
            windows=win,
            second=second,
            aidx=aidx,
        )

    def cells(self, sel: Cells) -> _Cells:
        """The model's parameters at cells ``sel``, as flat arrays."""
        return _Cells(
            lam=self.lam[sel],
            nb_r=self.nb_r[sel],
            nb_p=self.nb_p[sel],
            loc=self.loc[sel],
            scale=self.scale[sel],
            dof=self.dof[sel],
            k=self.n_sizes[sel],
            disc=self.discrete[sel],
        )

    def score(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Two-sided point score, one-sided tail probability and mid-p PIT of values ``y``.

        ``tail`` is ``P(Y >= y)`` for a value above the lower tail, ``P(Y <= y)`` otherwise (for a
        zero, ``P(Y = 0)``); the score is ``1 - min(1, 2 tail)`` as for the decomposition model.
        """
        shape = y.shape
        pit = np.full(shape, np.nan)
        tail = np.full(shape, np.nan)
        p0 = np.exp(-self.lam)
        with np.errstate(invalid="ignore"):
            zero = y <= 0
            positive = y > 0
        pit[zero] = 0.5 * p0[zero]
        tail[zero] = p0[zero]
        sel = np.nonzero(positive)
        if len(sel[0]):
            yv = y[sel]
            disc = self.discrete[sel]
            win = self.windows[sel[0], self.aidx[sel[1]]]
            nxt = np.where(disc, np.floor(yv) + 1.0, yv)
            with np.errstate(invalid="ignore"):
                rank = (win >= yv[:, None]).sum(axis=-1).astype(np.float64)
                rank_next = (win >= nxt[:, None]).sum(axis=-1).astype(np.float64)
            flat = self.cells(sel)
            upper = _upper_tail(yv, flat, rank, 0.0)
            above = _upper_tail(nxt, flat, rank_next, 0.0)
            at = np.where(disc, upper - above, 0.0)  # P(Y = y) for whole numbers
            pit[sel] = 1.0 - upper + 0.5 * at
            tail[sel] = np.fmin(upper, 1.0 - upper + at)
        point = 1.0 - np.fmin(1.0, 2.0 * tail)
        return point, tail, pit

    def band(self, threshold: float, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, and the band of values whose score stays below ``threshold``, at columns from
        ``first`` on: from 0 (a zero is never that rare for a sparse series) up to the largest value
        whose upper tail is above ``(1 - threshold) / 2`` (NaN while no earlier size is known: any
        size is then plausible)."""
        q = (1.0 - threshold) / 2.0
        shape = (self.lam.shape[0], self.lam.shape[1] - first)
        p = 1.0 - np.exp(-self.lam[:, first:])
        n_sizes = self.n_sizes[:, first:]
        expected = p * np.nan_to_num(self.mean_size[:, first:])
        upper = np.where((n_sizes == 0) | (p > q), np.nan, 0.0)
        sel = np.nonzero((n_sizes > 0) & (p > q))
        if len(sel[0]):
            full = (sel[0], sel[1] + first)
            # Cells with the same parameters have the same band; a sparse series keeps them for
            # weeks (no order enters or leaves its year of history), so solve each set once.
            columns = (self.lam, self.nb_r, self.nb_p, self.loc, self.scale, self.dof, self.n_sizes)
            params = np.stack(
                [*(c[full] for c in columns), self.discrete[full], self.mean_size[full]], axis=1
            )
            _, first_of, inverse = np.unique(
                np.nan_to_num(params), axis=0, return_index=True, return_inverse=True
            )
            value = self._band_upper((full[0][first_of], full[1][first_of]), q)[inverse.ravel()]
            # A size reached twice before stays inside the band while its rank keeps it above q.
            second = self.second[full[0], self.aidx[full[1]]]
            rank_ok = p[sel] / (n_sizes[sel] + 1.0) > q
            upper[sel] = np.where(rank_ok, np.fmax(value, second), value)
        return expected, np.zeros(shape), upper

    def _band_upper(self, cells: Cells, q: float) -> np.ndarray:
        """Largest value whose upper tail is above ``q`` (whole numbers for whole-number series).

        Terms of ``n`` events less likely than ``q / 100`` are left out (the band is for reading; the
        scores use every term). The search starts from the single-event value, a lower bound.
        """
        floor = q * 1e-2

        flat = self.cells(cells)

        def over(v: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return _upper_tail(v, flat.take(idx), None, floor) > q

        disc = self.discrete[cells]
        lam = self.lam[cells]
        # One event alone: P(Y >= v) >= P(N = 1) P(S >= v), and P(S >= v) is at least the smaller of
        # its two parts (negative binomial, log-t), so their smaller quantile is a lower bound.
        target = np.fmin(q / np.fmax(lam * np.exp(-lam), 1e-300), 0.5)
        with np.errstate(over="ignore"):
            lt = np.exp(
                np.fmin(
                    self.loc[cells] + self.scale[cells] * special.stdtrit(self.dof[cells], 1.0 - target),
                    700.0,
                )
            )
            nb = 2.0 + special.nbdtrik(1.0 - target, self.nb_r[cells], self.nb_p[cells])
        guess = np.where(disc, np.floor(np.fmin(lt, np.nan_to_num(nb, nan=1.0))), 0.999 * lt)
        lo = np.where(disc, 1.0, 1e-9)
        idx = np.arange(len(lo))
        good = (guess > lo) & over(np.fmax(guess, lo), idx)
        lo = np.where(good, guess, lo)
        hi = np.where(good, 2.0 * lo, np.fmax(np.ceil(4.0 * np.nan_to_num(self.mean_size[cells]) + 4.0), 2.0))
        todo = idx
        for _ in range(60):
            high = over(hi[todo], todo)
            lo[todo[high]] = hi[todo[high]]
            hi[todo[high]] *= 2.0
            todo = todo[high]
            if not len(todo):
                break
        # Whole numbers: integer bisection; otherwise bisection on the log scale (to 0.1%).
        todo = np.flatnonzero(np.where(disc, hi - lo > 1.0, np.log(hi / lo) > 1e-3))
        for _ in range(80):
            if not len(todo):
                break
            d = disc[todo]
            mid = np.where(d, np.floor(0.5 * (lo[todo] + hi[todo])), np.sqrt(lo[todo] * hi[todo]))
            up = over(mid, todo)
            lo[todo] = np.where(up, mid, lo[todo])
            hi[todo] = np.where(up, hi[todo], mid)
            keep = np.where(d, hi[todo] - lo[todo] > 1.0, np.log(hi[todo] / lo[todo]) > 1e-3)
            todo = todo[keep]
        return lo


@dataclass(frozen=True)
class _Cells:
    """Flat parameters of the model at a set of cells (see :class:`CompoundCounts`)."""

    lam: np.ndarray
    nb_r: np.ndarray
    nb_p: np.ndarray
    loc: np.ndarray
    scale: np.ndarray
    dof: np.ndarray
    k: np.ndarray
    disc: np.ndarray

    def take(self, idx: np.ndarray) -> _Cells:
        return _Cells(*(getattr(self, f.name)[idx] for f in fields(self)))


def _one_tail(v: np.ndarray, c: _Cells) -> np.ndarray:
    """``P(S >= v)`` for one event's size (1 while no size is known)."""
    with np.errstate(divide="ignore"):
        x = (np.log(np.fmax(v, 1e-300)) - c.loc) / c.scale
    out = special.stdtr(c.dof, -x)
    d = np.flatnonzero(c.disc)
    if len(d):
        j = np.ceil(v[d] - 1e-9) - 1.0  # size >= v  <=>  size - 1 >= ceil(v) - 1
        nb = np.where(j <= 0, 1.0, special.betainc(np.fmax(j, 1.0), c.nb_r[d], 1.0 - c.nb_p[d]))
        out[d] = _blend(nb, out[d], c.k[d])
    return np.where(c.k > 0, out, 1.0)


def _blend(nb: np.ndarray, lt: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Whole-number sizes: the fitted negative binomial for the ``k`` sizes seen, the log-t for
    ``SIZE_PRIOR_DOF`` more (a Polya-urn predictive: while few sizes are known, their shape is
    uncertain and the heavy-tailed log-t carries much of the weight)."""
    return (k * nb + SIZE_PRIOR_DOF * lt) / (k + SIZE_PRIOR_DOF)


def _sum_tail(n: int, y: np.ndarray, c: _Cells, one: np.ndarray) -> np.ndarray:
    """``P(S_1 + ... + S_n >= y)``; ``one`` is ``P(S >= y)``."""
    # Log-normal sum with the moments of n log-t sizes (Fenton-Wilkinson), never below the chance
    # that one of them alone reaches y.
    s2 = c.scale**2
    sn2 = np.log1p(np.expm1(np.fmin(s2, 50.0)) / n)
    mu = np.log(n) + c.loc + 0.5 * s2 - 0.5 * sn2
    with np.errstate(divide="ignore"):
        out = special.ndtr(-(np.log(np.fmax(y, 1e-300)) - mu) / np.sqrt(sn2))
    out = np.fmax(out, np.fmin(1.0, n * one))
    d = np.flatnonzero(c.disc)
    if len(d):
        # Whole numbers: n + NB(n r, p) >= y  <=>  NB >= ceil(y) - n.
        j = np.ceil(y[d] - 1e-9) - n
        nb = special.betainc(np.fmax(j, 1.0), n * c.nb_r[d], 1.0 - c.nb_p[d])
        out[d] = np.where(j <= 0, 1.0, _blend(nb, out[d], c.k[d]))
    return np.where(c.k > 0, out, 1.0)


def _upper_tail(y: np.ndarray, c: _Cells, rank: np.ndarray | None, floor: float) -> np.ndarray:
    """``P(Y >= y)`` for values ``y > 0``.

    ``rank``: earlier sizes >= y, if known (the rank floor of one event). Terms of ``n`` events less
    likely than ``floor`` are left out and the rest of the Poisson tail is added in full, so each
    cell's value depends on that cell alone.
    """
    one = _one_tail(y, c)
    if rank is not None:
        one = np.fmax(one, np.fmax(rank - 1.0, 0.0) / (c.k + 1.0))
    pmf = np.exp(-c.lam) * c.lam
    total = pmf * one
    cum = np.exp(-c.lam) + pmf
    for n in range(2, _MAX_EVENTS + 1):
        pmf = pmf * c.lam / n
        cum = cum + pmf
        idx = np.flatnonzero(pmf > floor)
        if len(idx):
            total[idx] += pmf[idx] * _sum_tail(n, y[idx], c.take(idx), one[idx])
    return np.fmin(1.0, total + np.fmax(0.0, 1.0 - cum))


def shrink_rate(k: np.ndarray, n: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Rate of a seasonal position: ``k`` events in ``n`` periods, shrunk towards ``base``.

    The position's ratio to ``base`` has a Gamma(a, a) prior with ``a = PRIOR_EVENTS`` (a weekday
    effect of about +-50%), so its posterior mean is ``(k + a) / (n * base + a)``: a position with no
    event yet keeps most of ``base`` while few events were expected there, and drops only once many
    were expected and none came (a closed weekend).
    """
    return base * (k + PRIOR_EVENTS) / (n * base + PRIOR_EVENTS)


def _negative_binomial_sizes(sizes: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``size - 1 ~ NB(r, p)`` from sorted sizes (ascending, NaN last) with ``cnt`` valid each."""
    keep = np.arange(sizes.shape[-1]) < (cnt - np.floor(_TRIM * cnt))[..., None]
    kt = keep.sum(axis=-1)
    d = np.where(keep, sizes - 1.0, 0.0)
    kk = np.maximum(kt, 1)
    m = d.sum(axis=-1) / kk
    ss = (np.where(keep, d - m[..., None], 0.0) ** 2).sum(axis=-1)
    prior = (SIZE_PRIOR_CV * (m + 1.0)) ** 2
    var = (SIZE_PRIOR_DOF * prior + ss) / (SIZE_PRIOR_DOF + np.maximum(kt - 1, 0)) * (1.0 + 1.0 / kk)
    m = np.fmax(m, 0.5 / (kk + 1.0))
    var = np.fmax(var, m * (1.0 + 1e-9))
    return m * m / (var - m), m / var


def _log_t_sizes(sizes: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Student-t of log sizes (location, scale, degrees of freedom) from sorted sizes."""
    logs = np.log(sizes)
    spread = np.fmax(
        (quantile_sorted(logs, cnt, 0.75) - quantile_sorted(logs, cnt, 0.25)) / _IQR_TO_SD,
        (quantile_sorted(logs, cnt, 0.95) - quantile_sorted(logs, cnt, 0.05)) / _Q90_RANGE_TO_SD,
    )
    km1 = np.maximum(cnt - 1, 0)
    var = (SIZE_PRIOR_DOF * SIZE_PRIOR_SD**2 + km1 * np.nan_to_num(spread) ** 2) / (SIZE_PRIOR_DOF + km1)
    scale = np.sqrt(var * (1.0 + 1.0 / np.maximum(cnt, 1)))
    # Quantile-based spreads carry about a third of the information of a variance (as in model.py).
    dof = SIZE_PRIOR_DOF + _QUANTILE_EFFICIENCY * km1
    return np.nan_to_num(quantile_sorted(logs, cnt, 0.5)), scale, dof.astype(np.float64)
