"""New products: a series with a short history is forecast from its peers.

A series with fewer than `min_history` periods (from its first observed value to the end of the
history; a demand series starts when its SKU first sold anywhere) is too young for the models: a
few days of a launch say little about its level, and nothing at all when it has not sold yet. Its
forecast comes from its peers instead, the established series of the same product category:

- level: the peers' median recent level (their mean over their last `min_history` periods), shrunk
  towards the series' own observed rate by how much history it has (empirical Bayes, as in a
  Poisson-gamma model): own weight E / (E + k), E its observed periods (weighted by the week's
  profile), k the peers' demand dispersion (variance / mean of a period) times their mean level
  over the (robust) variance of the peers' true levels, and k grows by as much as the series' own sales are
  lumpier than the peers'. One early big order moves the level a little, a few weeks of steady
  sales move it all the way;
- weekly shape: the profile of the series' warehouse (every established series there), shrunk
  towards the business's week (`calendar.PanelWeek`), with its closed periods 0;
- intervals: the variance of the level still unknown after the series' own periods, (1 - w) times
  the peers' between-series variance, plus the period-to-period demand noise (dispersion x mean).

Peers are the same category in the same warehouse when it has at least `MIN_PEERS_IN_WAREHOUSE`
of them, else the same category in every warehouse. A series without peers (no category, or none
established in it) with sales of its own is forecast by the models from its own history; without
sales either, it gets 0, and its explanation says why.

A night forecast in shards gathers the peers' figures over every shard first (`PeerStats`, like
`calendar.WeekStats`): a new product's forecast does not depend on which series share its shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from pipelines.forecasting.calendar import ANCHOR, PanelWeek, SeriesCalendar
from pipelines.forecasting.selection import SeriesResult
from pipelines.forecasting.validation import SeriesInput, fixed_step

NEW_PRODUCT = "new_product"
KEY_COLUMNS = ("unique_id", "category", "warehouse")
# Peers within the series' own warehouse needed before the category's other warehouses are left out.
MIN_PEERS_IN_WAREHOUSE = 3
# Peers needed to estimate how much their levels differ; with fewer, they differ by 100%.
MIN_PEERS_FOR_SPREAD = 5
# Interquartile range of a normal distribution in standard deviations.
IQR_PER_SD = 1.349
# Smallest relative spread of the peers' levels (a category is never taken as all alike).
MIN_LEVEL_CV = 0.1
# Bounds of the periods of own history the peers' level is worth (k in E / (E + k)), in
# multiples of `min_history` for the upper bound.
MIN_PRIOR = 1.0
MAX_PRIOR_HISTORIES = 4.0


def history_length(y: np.ndarray) -> int:
    """Periods from the first observed (finite) value to the end; the whole length if none is."""
    finite = np.flatnonzero(np.isfinite(y))
    return int(len(y) - finite[0]) if finite.size else len(y)


@dataclass(frozen=True)
class PeerGroup:
    """What the established series of one category (in one warehouse or in all) tell a new one.

    Attributes:
        level: median of the peers' recent levels (mean demand per period).
        between: variance of the peers' true levels (their sampling noise removed).
        dispersion: variance over mean of one period's demand around a peer's level (1: Poisson).
        prior: periods of own history the peers' level is worth.
        peers: number of peers.
    """

    level: float
    between: float
    dispersion: float
    prior: float
    peers: int


@dataclass(frozen=True)
class PeerProfiles:
    """The peers of the whole panel: per (category, warehouse) and per category (warehouse None),
    and the weekly factors of each warehouse (mean 1 over the week, 0 on closed periods)."""

    min_history: int
    groups: dict[tuple[str, str | None], PeerGroup]
    warehouses: dict[str, np.ndarray]

    def find(self, category: str | None, warehouse: str) -> tuple[PeerGroup, str] | None:
        """The series' peers and a description of them, or None when it has none."""
        if category is None:
            return None
        local = self.groups.get((category, warehouse))
        if local is not None and local.peers >= MIN_PEERS_IN_WAREHOUSE:
            return local, f"category {category!r} in warehouse {warehouse!r}"
        anywhere = self.groups.get((category, None))
        if anywhere is not None:
            return anywhere, f"category {category!r} in every warehouse"
        return None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form; floats keep every bit (JSON writes their shortest exact repr)."""
        return {
            "min_history": self.min_history,
            "groups": [
                [cat, wh, g.level, g.between, g.dispersion, g.prior, g.peers]
                for (cat, wh), g in sorted(self.groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
            ],
            "warehouses": {wh: [float(v) for v in f] for wh, f in sorted(self.warehouses.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PeerProfiles:
        groups = {
            (str(cat), None if wh is None else str(wh)): PeerGroup(
                float(level), float(between), float(disp), float(prior), int(peers)
            )
            for cat, wh, level, between, disp, prior, peers in data["groups"]  # type: ignore[attr-defined]
        }
        warehouses = {
            str(wh): np.array(f, dtype=np.float64)
            for wh, f in data["warehouses"].items()  # type: ignore[attr-defined]
        }
        return cls(int(data["min_history"]), groups, warehouses)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Peers:
    """What `run_forecast` needs to forecast new products.

    Attributes:
        keys: `unique_id, category, warehouse` of the history's series (category None or NaN:
            unknown); series not listed have no peers.
        profiles: the peers gathered over every shard of the night (`PeerStats`); None: gathered
            from the history being forecast.
    """

    keys: pd.DataFrame
    profiles: PeerProfiles | None = None


def build_peer_keys(series: pd.DataFrame, products: pd.DataFrame | None) -> pd.DataFrame:
    """`unique_id, category, warehouse` of demand series (`unique_id, sku, warehouse`) from the
    products' `sku, category` (None: every category unknown)."""
    keys = series[["unique_id", "sku", "warehouse"]].drop_duplicates("unique_id")
    if products is None:
        category = pd.Series([None] * len(keys), index=keys.index, dtype=object)
    else:
        lookup = products.drop_duplicates("sku").set_index("sku")["category"]
        category = keys["sku"].map(lookup)
    return pd.DataFrame(
        {
            "unique_id": keys["unique_id"].astype(str).to_numpy(),
            "category": [None if pd.isna(c) else str(c) for c in category],
            "warehouse": keys["warehouse"].astype(str).to_numpy(),
        }
    )


def _key_lookup(keys: pd.DataFrame) -> dict[str, tuple[str | None, str]]:
    missing = [c for c in KEY_COLUMNS if c not in keys.columns]
    if missing:
        raise ValueError(f"peer keys need the columns {list(KEY_COLUMNS)}; missing {missing}")
    frame = keys.drop_duplicates("unique_id")
    return {
        str(uid): (None if pd.isna(cat) else str(cat), str(wh))
        for uid, cat, wh in zip(frame["unique_id"], frame["category"], frame["warehouse"], strict=True)
    }


class PeerStats:
    """The established series' recent windows, gathered over batches of series (shards).

    What a batch leaves is compact and grows only with the series: per series, its unique_id, its
    category and warehouse (numbers into the names seen), its window's first period and its window
    (float32 when that holds every value exactly, else float64); `finish` reads them in the
    order of unique_id.
    """

    def __init__(self, freq: str, min_history: int) -> None:
        self.step = fixed_step(to_offset(freq))
        self.min_history = min_history
        self._names: dict[str | None, int] = {}
        self._ids: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []  # per series: category and warehouse, as numbers
        self._first: list[np.ndarray] = []
        self._windows: list[np.ndarray] = []

    def _name(self, name: str | None) -> int:
        return self._names.setdefault(name, len(self._names))

    def add(self, series: Sequence[SeriesInput], keys: pd.DataFrame) -> None:
        """Gather a batch of series (each unique_id in one batch only) with their keys."""
        lookup = _key_lookup(keys)
        step_ns = self.step.value if self.step is not None else 0
        kept = [s for s in series if s.unique_id in lookup and history_length(s.y) >= self.min_history]
        if not kept:
            return
        windows = np.array([s.y[-self.min_history :] for s in kept], dtype=np.float64)
        narrow = windows.astype(np.float32)
        exact = np.array_equal(narrow, windows, equal_nan=True)
        self._windows.append(narrow if exact else windows)
        self._ids.append(np.array([s.unique_id for s in kept], dtype=object))
        self._keys.append(
            np.array([[self._name(lookup[s.unique_id][0]), self._name(lookup[s.unique_id][1])] for s in kept])
        )
        self._first.append(
            np.array([s.last_ds.value - (self.min_history - 1) * step_ns for s in kept], dtype=np.int64)
        )

    def finish(self, week: PanelWeek | None) -> PeerProfiles:
        """The peers of the whole panel; `week` gives the warehouses' weekly factors their phases.

        Raises:
            ValueError: a series was added twice.
        """
        rows = self._rows()
        warehouses = self._warehouse_factors(rows, week)
        members: dict[tuple[str, str | None], list[tuple[float, float]]] = {}
        for i in range(len(rows)):
            category, warehouse = rows.category(i), rows.warehouse(i)
            figures = self._level(rows.window(i), rows.first[i], warehouses.get(warehouse), week)
            if figures is None or category is None:
                continue
            members.setdefault((category, warehouse), []).append(figures)
            members.setdefault((category, None), []).append(figures)
        groups = {key: _group(values, self.min_history) for key, values in members.items()}
        return PeerProfiles(self.min_history, groups, warehouses)

    def _rows(self) -> _PeerRows:
        """Every gathered peer in the order of unique_id.

        Raises:
            ValueError: a series was added twice.
        """
        if not self._ids:
            none = np.zeros((0, 2), dtype=np.int64)
            return _PeerRows([], none, np.zeros(0, dtype=np.int64), [], none)
        ids = np.concatenate(self._ids)
        order = np.argsort(ids, kind="stable")
        if len(ids) > 1 and (ids[order][1:] == ids[order][:-1]).any():
            raise ValueError("peers: a series was added twice (each unique_id in one batch only)")
        sizes = [len(b) for b in self._ids]
        at = np.column_stack(
            [np.repeat(np.arange(len(sizes)), sizes), np.concatenate([np.arange(n) for n in sizes])]
        )
        names = [name for name, _ in sorted(self._names.items(), key=lambda kv: kv[1])]
        keys, first = np.concatenate(self._keys)[order], np.concatenate(self._first)[order]
        return _PeerRows(names, keys, first, self._windows, at[order])

    def _phases(self, first_ns: int, length: int, period: int) -> np.ndarray:
        assert self.step is not None
        first = ((first_ns - ANCHOR.value) // self.step.value) % period
        out: np.ndarray = (first + np.arange(length)) % period
        return out

    def _warehouse_factors(self, rows: _PeerRows, week: PanelWeek | None) -> dict[str, np.ndarray]:
        """Per warehouse: its demand per period of the week shrunk towards the panel's (mean 1)."""
        if week is None or self.step is None:
            return {}
        period = week.period
        volume: dict[str, np.ndarray] = {}
        observed: dict[str, np.ndarray] = {}
        demands: dict[str, int] = {}
        for i in range(len(rows)):
            window, warehouse = rows.window(i), rows.warehouse(i)
            phase = self._phases(int(rows.first[i]), len(window), period)
            finite = np.isfinite(window)
            positive = np.maximum(np.where(finite, window, 0.0), 0.0)
            vol = volume.setdefault(warehouse, np.zeros(period))
            obs = observed.setdefault(warehouse, np.zeros(period))
            vol += np.bincount(phase, weights=positive, minlength=period)
            obs += np.bincount(phase[finite], minlength=period)
            demands[warehouse] = demands.get(warehouse, 0) + int(np.count_nonzero(positive))
        out: dict[str, np.ndarray] = {}
        for wh in sorted(volume):
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(observed[wh] > 0, volume[wh] / observed[wh], np.nan)
            rate = np.where(week.closed, 0.0, rate)
            total = float(np.sum(rate))
            if not np.isfinite(total) or total <= 0:
                continue
            own = rate / total
            k = week.prior_demands
            weight = demands[wh] / (demands[wh] + k) if np.isfinite(k) else 0.0
            mixed = np.where(week.closed, 0.0, weight * own + (1.0 - weight) * week.pool)
            out[wh] = period * mixed / mixed.sum()
        return out

    def _level(
        self, window: np.ndarray, first_ns: int, factors: np.ndarray | None, week: PanelWeek | None
    ) -> tuple[float, float] | None:
        """A peer's recent level and its dispersion index (NaN when it sold nothing)."""
        finite = np.isfinite(window)
        if not finite.any():
            return None
        y = window[finite]
        level = float(np.mean(y))
        if level <= 0:
            return max(level, 0.0), np.nan
        if factors is not None and week is not None:
            shape = factors[self._phases(int(first_ns), len(window), week.period)][finite]
        else:
            shape = np.ones(len(y))
        expected = level * shape
        open_ = expected > 0
        dispersion = (
            float(np.mean((y[open_] - expected[open_]) ** 2 / expected[open_])) if open_.any() else np.nan
        )
        return level, dispersion


@dataclass(frozen=True)
class _PeerRows:
    """Every gathered peer in the order of unique_id (`PeerStats._rows`)."""

    names: list[str | None]
    keys: np.ndarray
    first: np.ndarray
    windows: list[np.ndarray]
    at: np.ndarray  # per row: its batch and its row there

    def __len__(self) -> int:
        return len(self.first)

    def category(self, i: int) -> str | None:
        return self.names[self.keys[i, 0]]

    def warehouse(self, i: int) -> str:
        name = self.names[self.keys[i, 1]]
        assert name is not None
        return name

    def window(self, i: int) -> np.ndarray:
        batch, row = self.at[i]
        out: np.ndarray = self.windows[batch][row].astype(np.float64)
        return out


def _group(values: list[tuple[float, float]], window: int) -> PeerGroup:
    """Level, spread and worth of one set of peers (in the order of their unique_id).

    The spread of the peers' true levels is robust (interquartile range, less the window means'
    own sampling noise): a few best sellers must not make the peers look so different that a new
    series' first order outweighs them, and a category where most series sell nothing in a window
    (sparse demand) is a strong prior towards little.
    """
    levels = np.array([v[0] for v in values])
    dispersions = np.array([v[1] for v in values])
    dispersions = dispersions[np.isfinite(dispersions) & (dispersions > 0)]
    dispersion = float(np.median(dispersions)) if dispersions.size else 1.0
    median = float(np.median(levels))
    mean = float(np.mean(levels))
    if len(levels) >= MIN_PEERS_FOR_SPREAD:
        q1, q3 = np.quantile(levels, [0.25, 0.75])
        between = float((q3 - q1) / IQR_PER_SD) ** 2 - dispersion * mean / window
    else:
        between = mean**2
    between = max(between, (MIN_LEVEL_CV * mean) ** 2)
    # Poisson-gamma: a prior of mean m and variance v is worth m / v periods of Poisson counts
    prior = dispersion * mean / between if between > 0 else MIN_PRIOR
    prior = float(np.clip(prior, MIN_PRIOR, MAX_PRIOR_HISTORIES * window))
    return PeerGroup(median, between, dispersion, prior, len(levels))


def build_peer_profiles(
    series: Sequence[SeriesInput], keys: pd.DataFrame, freq: str, min_history: int, week: PanelWeek | None
) -> PeerProfiles:
    """The peers of one panel of series (see `PeerStats` for panels gathered in batches)."""
    stats = PeerStats(freq, min_history)
    stats.add(series, keys)
    return stats.finish(week)


@dataclass(frozen=True)
class NewProduct:
    """How one new series is forecast: from `peers` (None: it has none, `reason` says why)."""

    periods: int
    threshold: int
    peers: PeerGroup | None
    label: str
    factors: np.ndarray | None


def find_new_products(
    series: Sequence[SeriesInput],
    keys: pd.DataFrame,
    profiles: PeerProfiles,
    calendars: Sequence[SeriesCalendar] | None,
) -> dict[int, NewProduct]:
    """The series with less than `profiles.min_history` periods (by position) and their peers."""
    lookup = _key_lookup(keys)
    out: dict[int, NewProduct] = {}
    for i, s in enumerate(series):
        periods = history_length(s.y)
        if periods >= profiles.min_history:
            continue
        category, warehouse = lookup.get(s.unique_id, (None, ""))
        found = profiles.find(category, warehouse) if s.unique_id in lookup else None
        factors = profiles.warehouses.get(warehouse)
        cal = calendars[i] if calendars is not None else None
        if cal is None or factors is None or len(factors) != cal.period:
            factors = cal.factors if cal is not None else None
        if found is not None:
            out[i] = NewProduct(periods, profiles.min_history, found[0], found[1], factors)
        else:
            why = "no category" if category is None else f"no established series in category {category!r}"
            out[i] = NewProduct(periods, profiles.min_history, None, why, factors)
    return out


def fit_new_product(
    y: np.ndarray, horizon: int, new: NewProduct, calendar: SeriesCalendar | None, nonnegative: bool | None
) -> SeriesResult | None:
    """Forecast a new series from its peers; None when it has no peers but sales of its own (the
    models forecast it from those). Without peers and sales, 0."""
    n = len(y)
    if new.factors is not None and calendar is not None:
        period = len(new.factors)
        hist_phase = (calendar.end_phase - n + np.arange(n)) % period
        shape_hist, shape_ahead = new.factors[hist_phase], new.factors[calendar.phases_after(horizon)]
    else:
        shape_hist, shape_ahead = np.ones(n), np.ones(horizon)
    finite = np.isfinite(y)
    sold = float(np.sum(y[finite]))
    exposure = float(np.sum(shape_hist[finite]))
    nonneg = nonnegative if nonnegative is not None else not bool((y[finite] < 0).any())
    history = f"new product: {new.periods} periods of history (< {new.threshold})"
    nan_h = np.full(horizon, np.nan)
    if new.peers is None:
        if sold > 0:
            return None
        zero = np.zeros(horizon)
        return SeriesResult(
            mean=zero,
            sigma=zero.copy(),
            scores=np.empty((0, horizon)),
            model="zero",
            weights={"zero": 1.0},
            backtest_error=np.nan,
            group=NEW_PRODUCT,
            nonnegative=bool(nonneg),
            components={"level": zero.copy(), "trend": nan_h, "seasonal": nan_h},
            new_product=f"{history}, no sales yet and {new.label} to learn from: forecasting 0",
        )
    peers = new.peers
    own_rate = max(sold, 0.0) / exposure if exposure > 0 else 0.0
    # lumpier sales than the peers' (one big early order) are worth fewer periods of evidence
    lumpy = _own_dispersion(y[finite], shape_hist[finite], own_rate) / peers.dispersion
    prior = min(peers.prior * max(1.0, lumpy), MAX_PRIOR_HISTORIES * new.threshold)
    weight = exposure / (exposure + prior)
    level = weight * own_rate + (1.0 - weight) * peers.level
    mean = level * shape_ahead
    # the level still unknown, plus the period's own demand noise (counts: variance ~ mean)
    variance = (1.0 - weight) * peers.between * shape_ahead**2 + peers.dispersion * mean
    return SeriesResult(
        mean=mean,
        sigma=np.sqrt(np.maximum(variance, 0.0)),
        scores=np.empty((0, horizon)),
        model=NEW_PRODUCT,
        weights={"own": round(weight, 6), "peers": round(1.0 - weight, 6)},
        backtest_error=np.nan,
        group=NEW_PRODUCT,
        nonnegative=bool(nonneg),
        components={"level": np.full(horizon, level), "trend": nan_h, "seasonal": mean - level},
        new_product=(
            f"{history}: level {level:.4g} per period = {weight:.3f} x its own rate {own_rate:.4g} "
            f"({sold:.4g} over {exposure:.3g} weighted periods) + {1.0 - weight:.3f} x the median "
            f"level {peers.level:.4g} of {peers.peers} peers ({new.label})"
        ),
    )


def _own_dispersion(y: np.ndarray, shape: np.ndarray, rate: float) -> float:
    """Variance over mean of the series' own demand per open period (0 when it cannot tell)."""
    expected = rate * shape
    open_ = expected > 0
    if rate <= 0 or open_.sum() < 2:
        return 0.0
    return float(np.mean((y[open_] - expected[open_]) ** 2 / expected[open_]))


def note_without_peers(new: NewProduct) -> str:
    """Explanation of a new series without peers forecast from its own sales."""
    return (
        f"new product: {new.periods} periods of history (< {new.threshold}) and {new.label}: "
        "forecast from its own sales only"
    )
