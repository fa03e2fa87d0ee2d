"""Known-future demand drivers (promotions, holidays): their effect per series.

A driver frame is long: `unique_id, ds` and any of `promotion` (share of the period on
promotion, in [0, 1]), `discount` (the promotion's depth, a share of the price in [0, 1]) and
`holiday` (share of the period that is a holiday, in [0, 1]); a period without a row has no
driver. It covers the history and the horizon: the ERP knows its promotions ahead.

The effect is multiplicative. Each promotion (a run of promoted periods) and each holiday of a
series' history is compared with the series' baseline around it (the local level of the
undisturbed periods, times the series' phase of the shortest cycle, e.g. the day of the week):
a series' episodes of one kind together give its log ratio of totals (a ratio of totals, not a
mean of log ratios, which small totals bias low), one observation of its log uplift. The panel's
uplift (an intercept and a slope in the depth, fitted by weighted least squares on the series)
is the prior; a series' own uplift is shrunk towards it by empirical Bayes (random effects,
variances by moments), so a series with a single promotion gets mostly the panel's uplift and
one with many gets mostly its own.

`fit_effects` returns, per series, the uplift of each history period (the history is divided by
it before the base models are fitted, so promoted periods do not distort the baseline) and of
each future period (the base forecast is multiplied by it), with the variance of the future log
uplift (it widens the intervals on promotion days) and an explanation.

The base models are fitted on the history without the drivers' effect, and selected and combined
on backtests that put the effect back: each backtest window's forecast is multiplied by the
window's uplift and compared with the history as it was, so a candidate is judged by the volume
of the promotions it would have had to plan for. Their intervals are calibrated on the same
errors brought back to the base scale; the uplift's own uncertainty enters the intervals through
the variance of its log (delta method). The uplift of a history period is fitted on the whole
history (as the weekly calendar is), so the backtests do not re-estimate it per window.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from pipelines.forecasting.errors import ForecastInputError
from pipelines.forecasting.selection import SeriesResult
from pipelines.forecasting.validation import SeriesInput

DRIVER_COLUMNS = ("promotion", "discount", "holiday")
Kind = Literal["promotion", "holiday"]
KINDS: tuple[Kind, ...] = ("promotion", "holiday")
# floor of the between-series variance of a log uplift: series may always differ a little
SERIES_VAR_FLOOR = 0.01
# prior variance of the depth slope (log uplift per unit of discount): a weak ridge, so a panel
# whose promotions all have one depth gets a flat slope
SLOPE_PRIOR_VAR = 4.0
EPISODE_VAR_START = 0.02
OBS_VAR_BOUNDS = (1e-4, 4.0)


@dataclass(frozen=True)
class KindPrior:
    """The panel's effect of one kind of driver on the log scale.

    Attributes:
        log_uplift: log uplift of a full period at the panel's mean depth.
        slope: change of the log uplift per unit of depth (discount).
        depth: the panel's mean depth (the slope's centre).
        episode_var: variance of one promotion's (holiday's) log uplift around its series' own.
        series_var: variance of the series' log uplifts around the panel's.
        episodes: how many episodes the panel had (0: no effect is known, the uplift is 1).
    """

    log_uplift: float = 0.0
    slope: float = 0.0
    depth: float = 0.0
    episode_var: float = EPISODE_VAR_START
    series_var: float = SERIES_VAR_FLOOR
    episodes: int = 0


@dataclass(frozen=True)
class DriverPrior:
    """The panel's driver effects (gathered over every shard with `DriverStats`)."""

    promotion: KindPrior = field(default_factory=KindPrior)
    holiday: KindPrior = field(default_factory=KindPrior)

    def to_dict(self) -> dict[str, Any]:
        return {k: asdict(getattr(self, k)) for k in KINDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriverPrior:
        return cls(**{k: KindPrior(**data[k]) for k in KINDS if k in data})


@dataclass(frozen=True)
class Drivers:
    """What `run_forecast` needs to forecast with known-future drivers.

    Attributes:
        frame: the long driver frame (see the module docstring), covering history and horizon.
        prior: the panel's effects gathered over every shard of the night; None: fitted on the
            history being forecast.
    """

    frame: pd.DataFrame
    prior: DriverPrior | None = None


@dataclass(frozen=True)
class SeriesDrivers:
    """One series' driver values on its grid: rows are the history's periods then the horizon's;
    columns `DRIVER_COLUMNS`."""

    values: np.ndarray
    n_history: int


@dataclass(frozen=True)
class Episode:
    """One promotion or holiday of a series' history, compared with the series' baseline."""

    series: str
    kind: Kind
    start: int  # first and last period (inclusive) on the series' grid
    end: int
    exposure: float  # mean driver share over its periods (1 for whole periods)
    depth: float  # mean discount (0 for holidays)
    log_ratio: float  # log(observed / baseline)
    obs_var: float  # sampling variance of log_ratio
    observed: float  # the run's total
    baseline: float  # its baseline's total
    spread: float  # the variance of its total at the baseline


@dataclass(frozen=True)
class SeriesEffect:
    """A series' driver effect.

    Attributes:
        history: uplift of each history period (1 where no driver).
        future: uplift of each horizon period.
        future_var: variance of each horizon period's log uplift.
        notes: per horizon period, the explanation (None where no driver).
    """

    history: np.ndarray
    future: np.ndarray
    future_var: np.ndarray
    notes: list[str | None]


def check_drivers(drivers: object) -> pd.DataFrame:
    """Check a driver frame against its contract; return it with every driver column (0 where
    absent) and wall-time `ds`.

    Raises:
        ForecastInputError: not a frame, missing keys, unknown or non-numeric columns, values
            outside [0, 1], duplicate keys.
    """
    if not isinstance(drivers, pd.DataFrame):
        raise ForecastInputError(
            f"`drivers` must be a pandas DataFrame with columns unique_id, ds and any of "
            f"{list(DRIVER_COLUMNS)}, got {type(drivers).__name__}"
        )
    missing = [c for c in ("unique_id", "ds") if c not in drivers.columns]
    unknown = [c for c in drivers.columns if c not in ("unique_id", "ds", *DRIVER_COLUMNS)]
    if missing or unknown:
        raise ForecastInputError(
            f"drivers: expected columns unique_id, ds and any of {list(DRIVER_COLUMNS)}, got "
            f"{list(drivers.columns)} (missing {missing}, unknown {unknown})"
        )
    if not pd.api.types.is_datetime64_any_dtype(drivers["ds"]):
        raise ForecastInputError(
            f"drivers: column 'ds' must have a datetime64 dtype, got {drivers['ds'].dtype}; "
            "convert it with pd.to_datetime"
        )
    if drivers["unique_id"].isna().any() or drivers["ds"].isna().any():
        raise ForecastInputError("drivers: 'unique_id' and 'ds' must not be null")
    ds = drivers["ds"]
    out = pd.DataFrame(
        {
            "unique_id": drivers["unique_id"].astype(str).to_numpy(),
            "ds": (ds.dt.tz_localize(None) if ds.dt.tz is not None else ds).to_numpy(),
        }
    )
    for col in DRIVER_COLUMNS:
        if col not in drivers.columns:
            out[col] = 0.0
            continue
        values = drivers[col]
        if not pd.api.types.is_numeric_dtype(values):
            raise ForecastInputError(f"drivers: column {col!r} must be numeric, got {values.dtype}")
        arr = values.to_numpy(dtype=np.float64, na_value=0.0)
        bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
        if bad.any():
            raise ForecastInputError(
                f"drivers: column {col!r} must be in [0, 1] (a share), got {arr[bad][0]!r} in "
                f"{int(bad.sum())} row(s)"
            )
        out[col] = arr
    dup = out.duplicated(["unique_id", "ds"])
    if dup.any():
        raise ForecastInputError(
            f"drivers: {int(dup.sum())} duplicate (unique_id, ds) rows; expected one row per series and period"
        )
    return out


def build_series_drivers(
    series: Sequence[SeriesInput], drivers: pd.DataFrame, horizon: int, freq: str
) -> list[SeriesDrivers]:
    """Each series' driver values over its history grid and the horizon (0 where the frame has
    no row; rows off the grid are ignored).

    On a grid of fixed steps (days, hours, weeks anchored on a weekday) every row's period is
    found by arithmetic on the whole frame at once; other grids (months, quarters) by dates, a
    series at a time."""
    offset = to_offset(freq)
    checked = check_drivers(drivers)
    step = _fixed_step(offset, series, checked)
    if step is None:
        return _series_drivers_by_dates(series, checked, horizon, offset)
    lengths = np.array([len(s.y) for s in series], dtype=np.int64)
    sizes = lengths + horizon
    starts = np.concatenate([[0], np.cumsum(sizes)])
    values = np.zeros((int(starts[-1]), len(DRIVER_COLUMNS)))
    if len(checked) and len(series):
        at = pd.Index([s.unique_id for s in series]).get_indexer(checked["unique_id"].astype(str))
        known = np.flatnonzero(at >= 0)
        at = at[known]
        last = np.array([s.last_ds.value for s in series], dtype=np.int64)
        first = last - (lengths - 1) * step
        ds = pd.DatetimeIndex(checked["ds"]).as_unit("ns").asi8[known]
        delta = ds - first[at]
        pos = delta // step
        on = (delta % step == 0) & (pos >= 0) & (pos < sizes[at])
        rows = checked[list(DRIVER_COLUMNS)].to_numpy(dtype=np.float64)[known]
        values[starts[at[on]] + pos[on]] = rows[on]
    return [SeriesDrivers(values[starts[i] : starts[i + 1]], int(lengths[i])) for i in range(len(series))]


def _fixed_step(offset: Any, series: Sequence[SeriesInput], drivers: pd.DataFrame) -> int | None:
    """The grid's step in nanoseconds when every period is the same length and every series ends
    on the grid (None: find the periods by dates)."""
    from pandas.tseries.offsets import Day, Tick, Week

    if any(s.last_ds.tz is not None for s in series) or getattr(drivers["ds"].dtype, "tz", None) is not None:
        return None
    if len({s.unique_id for s in series}) != len(series):
        return None
    if isinstance(offset, Day) and offset.n > 0:  # a calendar day: 24 hours on naive dates
        return int(pd.Timedelta(days=offset.n).value)
    if isinstance(offset, Tick) and offset.n > 0:
        return int(pd.Timedelta(offset).value)
    anchored = isinstance(offset, Week) and offset.weekday is not None and offset.n > 0
    if anchored and all(offset.is_on_offset(s.last_ds) for s in series):
        return int(pd.Timedelta(days=7 * offset.n).value)
    return None


def _series_drivers_by_dates(
    series: Sequence[SeriesInput], checked: pd.DataFrame, horizon: int, offset: Any
) -> list[SeriesDrivers]:
    """`build_series_drivers` a series at a time, each row's period found among its grid's dates."""
    groups = {str(k): g for k, g in checked.groupby("unique_id", sort=False)}
    out: list[SeriesDrivers] = []
    for s in series:
        n = len(s.y) + horizon
        values = np.zeros((n, len(DRIVER_COLUMNS)))
        rows = groups.get(s.unique_id)
        if rows is not None:
            first = s.last_ds - (len(s.y) - 1) * offset
            grid = pd.date_range(start=first, periods=n, freq=offset)
            pos = grid.get_indexer(pd.DatetimeIndex(rows["ds"].to_numpy()))
            ok = pos >= 0
            values[pos[ok]] = rows[list(DRIVER_COLUMNS)].to_numpy()[ok]
        out.append(SeriesDrivers(values, len(s.y)))
    return out


def driver_period(season_lengths: Sequence[float]) -> int:
    """The cycle whose phase the baseline follows: the shortest integer season up to a month
    (the day of the week in daily data), 1 when there is none."""
    short = [round(p) for p in season_lengths if float(p).is_integer() and 2 <= p <= 31]
    return min(short) if short else 1


def _runs(on: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) of the runs of True."""
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def build_baseline(y: np.ndarray, clean: np.ndarray, period: int) -> tuple[np.ndarray, float]:
    """The undisturbed demand expected in each period, and its relative variance.

    Local level: mean of the clean periods' deseasonalised values within a few cycles on either
    side; times the phase factor (mean of the clean periods of that phase over the mean of all).
    The relative variance is the mean squared relative deviation of the clean periods.
    """
    n = len(y)
    t = np.arange(n)
    phase = t % period
    factors = np.ones(period)
    if period > 1:
        # each phase's clean values in their order, a slice per phase (the same sums as masks)
        clean_phase = phase[clean]
        by_phase = y[clean][np.argsort(clean_phase, kind="stable")]
        counts = np.bincount(clean_phase, minlength=period)
        ends = np.cumsum(counts)
        means = np.array(
            [by_phase[b - c : b].mean() if c else np.nan for b, c in zip(ends, counts, strict=True)]
        )
        overall = float(np.nanmean(means)) if np.isfinite(means).any() else 0.0
        factors = np.where(np.isfinite(means) & (overall > 0), means / overall if overall > 0 else 1.0, 1.0)
    f = factors[phase]
    use = clean & (f > 0)
    adj = np.where(use, y / np.where(f > 0, f, 1.0), 0.0)
    half = max(3 * period, 8)
    cs = np.concatenate([[0.0], np.cumsum(adj)])
    cn = np.concatenate([[0.0], np.cumsum(use)])
    lo, hi = np.clip(t - half, 0, n), np.clip(t + half + 1, 0, n)
    count = cn[hi] - cn[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.where(count >= max(2, half // 2), (cs[hi] - cs[lo]) / count, np.nan)
    base = level * f
    ok = use & np.isfinite(base) & (base > 0)
    rel = float(np.mean(((y[ok] - base[ok]) / base[ok]) ** 2)) if ok.sum() >= 2 else 1.0
    return base, rel


def find_episodes(uid: str, y: np.ndarray, values: np.ndarray, period: int) -> list[Episode]:
    """The promotions and holidays of one series' history (`values`: its history rows of the
    driver values), each with its log ratio to the baseline."""
    promo, depth, holiday = values[:, 0], values[:, 1], values[:, 2]
    finite = np.isfinite(y)
    clean = finite & (promo == 0) & (holiday == 0)
    if clean.sum() < 2 * max(period, 4):
        return []
    base, rel = build_baseline(y, clean, period)
    out: list[Episode] = []
    for kind, share, other in (("promotion", promo, holiday), ("holiday", holiday, promo)):
        for a, b in _runs(share > 0):
            idx = np.arange(a, b + 1)
            idx = idx[finite[idx] & (other[idx] == 0) & np.isfinite(base[idx])]
            if idx.size == 0:
                continue
            total_b = float(base[idx].sum())
            if total_b <= 0:
                continue
            total_y = float(y[idx].sum())
            # relative variance of the run's total; x1.25 for the baseline's own error
            spread = rel * float(np.sum(base[idx] ** 2))
            obs_var = spread / total_b**2 * 1.25
            # half the total's variance over its mean (0.5 for counts): a sale-less run stays finite
            smooth = 0.5 * spread / total_b
            out.append(
                Episode(
                    series=uid,
                    kind=kind,  # type: ignore[arg-type]
                    start=int(a),
                    end=int(b),
                    exposure=float(share[idx].mean()),
                    depth=float(depth[idx].mean()) if kind == "promotion" else 0.0,
                    log_ratio=float(np.log((total_y + smooth) / (total_b + smooth))),
                    obs_var=float(np.clip(obs_var, *OBS_VAR_BOUNDS)),
                    observed=total_y,
                    baseline=total_b,
                    spread=spread,
                )
            )
    return out


@dataclass(frozen=True)
class _Pooled:
    """A series' episodes of one kind together: its log ratio of totals (far less biased than
    a mean of log ratios when totals are small), with its variance, exposure, depth and count."""

    log_ratio: float
    obs_var: float
    exposure: float
    depth: float
    episodes: int


def _pool(episodes: Sequence[Episode]) -> _Pooled:
    base = np.array([e.baseline for e in episodes])
    weights = base / base.sum()
    total_y, total_b = float(sum(e.observed for e in episodes)), float(base.sum())
    spread = float(sum(e.spread for e in episodes))
    smooth = 0.5 * spread / total_b  # half the total's variance over its mean (0.5 for counts)
    return _Pooled(
        log_ratio=float(np.log((total_y + smooth) / (total_b + smooth))),
        obs_var=float(np.clip(1.25 * spread / total_b**2, *OBS_VAR_BOUNDS)),
        exposure=float(weights @ np.array([e.exposure for e in episodes])),
        depth=float(weights @ np.array([e.depth for e in episodes])),
        episodes=len(episodes),
    )


class _KindFigures:
    """What the panel's fit of one kind of driver needs of each series' episodes of that kind,
    a few numbers a series: the episodes pooled (`_pool`), and their spread around the series'
    own uplift (with two episodes or more: the sum of squares, its degrees of freedom and the
    episodes' sampling variances)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.pooled = array("d")  # log_ratio, obs_var, exposure, depth per series
        self.episodes = array("q")
        self.squares = array("d")
        self.dof = array("q")  # -1: fewer than two episodes
        self.noise = array("d")
        self.noise_count = array("q")

    def add(self, uid: str, episodes: Sequence[Episode]) -> None:
        """One series' episodes of the kind, in order of their start."""
        p = _pool(episodes)
        self.ids.append(uid)
        self.pooled.extend((p.log_ratio, p.obs_var, p.exposure, p.depth))
        self.episodes.append(p.episodes)
        squares, dof, noise = 0.0, -1, []
        if len(episodes) >= 2:
            res = np.array([e.log_ratio / e.exposure for e in episodes if e.exposure > 0])
            squares, dof = float(np.sum((res - res.mean()) ** 2)), len(res) - 1
            noise = [e.obs_var / e.exposure**2 for e in episodes if e.exposure > 0]
        self.squares.append(squares)
        self.dof.append(dof)
        self.noise.extend(noise)
        self.noise_count.append(len(noise))

    def fit(self) -> KindPrior:
        """The panel's effect of the kind, from its series in order of unique_id (the result
        does not depend on the order in which they were gathered): weighted least squares of the
        series' pooled log ratios on exposure and depth, with the between-series variance by
        moments.

        Raises:
            ValueError: a series was added twice.
        """
        if not self.ids:
            return KindPrior()
        ids = np.array(self.ids, dtype=object)
        order = np.argsort(ids, kind="stable")
        if len(ids) > 1 and (ids[order][1:] == ids[order][:-1]).any():
            raise ValueError("drivers: a series was added twice (each unique_id in one batch only)")
        s2 = self._episode_var(order)
        columns = np.frombuffer(self.pooled, dtype=np.float64).reshape(-1, 4)[order]
        r, obs_var, x, d = (np.ascontiguousarray(c) for c in columns.T)
        episodes = np.frombuffer(self.episodes, dtype=np.int64)[order]
        noise = obs_var + x**2 * s2 / episodes
        depth = float(np.average(d, weights=x)) if x.sum() > 0 else 0.0
        design = np.column_stack([x, x * (d - depth)])
        tau2, a, b = SERIES_VAR_FLOOR, 0.0, 0.0
        for _ in range(4):
            w = 1.0 / (noise + x**2 * tau2)
            gram = design.T @ (w[:, None] * design) + np.diag([1e-9, 1.0 / SLOPE_PRIOR_VAR])
            a, b = (float(c) for c in np.linalg.solve(gram, design.T @ (w * r)))
            res = r - design @ np.array([a, b])
            tau2 = max(SERIES_VAR_FLOOR, float(np.mean((res**2 - noise) / np.maximum(x, 1e-9) ** 2)))
        return KindPrior(a, b, depth, s2, tau2, int(episodes.sum()))

    def _episode_var(self, order: np.ndarray) -> float:
        """Moment estimate of the variance of a series' episodes' log uplifts around its own:
        their spread within series beyond their sampling variance."""
        counts = np.frombuffer(self.noise_count, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)])
        squares, dof, noise = 0.0, 0, []
        for i in order:
            if self.dof[i] >= 0:
                squares += self.squares[i]
                dof += self.dof[i]
                noise += self.noise[starts[i] : starts[i + 1]].tolist()
        if dof <= 0:
            return EPISODE_VAR_START
        return max(0.0, squares / dof - float(np.mean(noise)))


def _add_by_series(figures: dict[Kind, _KindFigures], episodes: Sequence[Episode]) -> None:
    """Each series' episodes of each kind (in order of their start) into `figures`."""
    groups: dict[tuple[Kind, str], list[Episode]] = {}
    for e in sorted(episodes, key=lambda e: (e.series, e.start)):
        groups.setdefault((e.kind, e.series), []).append(e)
    for (kind, uid), eps in groups.items():
        figures[kind].add(uid, eps)


def _kind_figures() -> dict[Kind, _KindFigures]:
    return {"promotion": _KindFigures(), "holiday": _KindFigures()}


def _fit_kinds(figures: dict[Kind, _KindFigures]) -> DriverPrior:
    return DriverPrior(promotion=figures["promotion"].fit(), holiday=figures["holiday"].fit())


def fit_prior(episodes: Sequence[Episode]) -> DriverPrior:
    """The panel's driver effects from every series' episodes."""
    figures = _kind_figures()
    _add_by_series(figures, episodes)
    return _fit_kinds(figures)


def _note(kind: Kind, share: float, depth: float, uplift: float | None) -> str:
    part = "" if share >= 0.999 else f" on {share:.0%} of the period"
    what = f"promotion {depth:.0%} off" if kind == "promotion" and depth > 0 else kind
    if uplift is None:
        return f"{what}{part}: no effect known (no {kind} in the history of any series)"
    effect = "uplift" if kind == "promotion" else "effect"
    return f"{what}{part}: x{uplift:.2f} expected {effect}"


def fit_series_effect(
    drivers: SeriesDrivers, episodes: Sequence[Episode], prior: DriverPrior
) -> SeriesEffect:
    """A series' uplift over its history and horizon from its own episodes and the panel's prior.

    The series' log uplift is the panel's plus a random effect estimated from its episodes'
    residuals and shrunk by the between-series variance. A history episode is divided by its
    own uplift, shrunk towards the series' (a noisy episode mostly by the series'); the horizon
    gets the series' uplift at each period's depth, with the variance of a new episode's uplift.
    """
    n_hist = drivers.n_history
    values = drivers.values
    log_u = np.zeros(len(values))
    log_var = np.zeros(len(values))
    notes: list[str | None] = [None] * (len(values) - n_hist)
    columns: tuple[tuple[int, Kind], ...] = ((0, "promotion"), (2, "holiday"))
    for col, kind in columns:
        p: KindPrior = getattr(prior, kind)
        share = values[:, col]
        if not (share > 0).any():
            continue
        depth = values[:, 1] if kind == "promotion" else np.zeros(len(values))
        if p.episodes == 0:  # nothing to learn the effect from: the forecast says so, unchanged
            for k in np.flatnonzero(share[n_hist:] > 0):
                text = _note(kind, float(share[n_hist + k]), float(depth[n_hist + k]), None)
                notes[k] = text if notes[k] is None else f"{notes[k]}; {text}"
            continue
        mine = [e for e in episodes if e.kind == kind]
        s2 = max(p.episode_var, OBS_VAR_BOUNDS[0])
        u, post_var = 0.0, p.series_var
        if mine:
            pooled = _pool(mine)
            res = pooled.log_ratio - pooled.exposure * (p.log_uplift + p.slope * (pooled.depth - p.depth))
            w = 1.0 / (pooled.obs_var + pooled.exposure**2 * s2 / pooled.episodes)
            precision = w * pooled.exposure**2 + 1.0 / p.series_var
            u = w * pooled.exposure * res / precision
            post_var = 1.0 / precision
        per_unit = p.log_uplift + p.slope * (depth - p.depth) + u  # log uplift of a full period
        effect = share * per_unit
        # a history episode: its own ratio, shrunk towards the series' uplift
        for e in mine:
            fitted = e.exposure * float(per_unit[e.start : e.end + 1].mean())
            own = (e.log_ratio / e.obs_var + fitted / s2) / (1.0 / e.obs_var + 1.0 / s2)
            span = slice(e.start, e.end + 1)
            effect[span] = share[span] / e.exposure * own if e.exposure > 0 else effect[span]
        log_u += effect
        log_var += share**2 * (post_var + s2)
        future = share[n_hist:]
        for k in np.flatnonzero(future > 0):
            text = _note(kind, float(future[k]), float(depth[n_hist + k]), float(np.exp(effect[n_hist + k])))
            notes[k] = text if notes[k] is None else f"{notes[k]}; {text}"
    return SeriesEffect(
        history=np.exp(log_u[:n_hist]),
        future=np.exp(log_u[n_hist:]),
        future_var=log_var[n_hist:],
        notes=notes,
    )


class DriverStats:
    """The episodes of a panel's series, gathered over batches of series (shards): what is kept
    of them is a few numbers a series and kind of driver (`_KindFigures`)."""

    def __init__(self, freq: str, season_lengths: Sequence[float]) -> None:
        self.freq = freq
        self.period = driver_period(season_lengths)
        self._figures = _kind_figures()

    def add(self, series: Sequence[SeriesInput], drivers: pd.DataFrame) -> None:
        """Gather a batch of series (each unique_id in one batch only) with their driver frame."""
        for s, d in zip(series, build_series_drivers(series, drivers, 1, self.freq), strict=True):
            _add_by_series(
                self._figures, find_episodes(s.unique_id, s.y, d.values[: d.n_history], self.period)
            )

    def finish(self) -> DriverPrior:
        """The panel's driver effects.

        Raises:
            ValueError: a series was added twice.
        """
        return _fit_kinds(self._figures)


def fit_effects(
    series: Sequence[SeriesInput],
    drivers: Drivers,
    horizon: int,
    freq: str,
    season_lengths: Sequence[float],
) -> list[SeriesEffect]:
    """Every series' driver effect (see the module docstring)."""
    period = driver_period(season_lengths)
    per_series = build_series_drivers(series, drivers.frame, horizon, freq)
    episodes = [
        find_episodes(s.unique_id, s.y, d.values[: d.n_history], period)
        for s, d in zip(series, per_series, strict=True)
    ]
    prior = drivers.prior or fit_prior([e for eps in episodes for e in eps])
    return [fit_series_effect(d, eps, prior) for d, eps in zip(per_series, episodes, strict=True)]


def apply_effect(result: SeriesResult, effect: SeriesEffect) -> SeriesResult:
    """A base forecast with the series' driver effect: the mean times the uplift; the scale times
    the uplift, widened by the uplift's own uncertainty (delta method on the log scale). The
    components still describe the base forecast."""
    if not (effect.future != 1.0).any() and not (effect.future_var > 0).any():
        return result
    mean = result.mean * effect.future
    sigma = np.sqrt((result.sigma * effect.future) ** 2 + mean**2 * effect.future_var)
    return replace(result, mean=mean, sigma=sigma)
