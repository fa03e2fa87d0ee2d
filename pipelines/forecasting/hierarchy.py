"""Coherent forecasts of the product x warehouse hierarchy.

Levels, top to bottom: `total`; `category`; `category_warehouse`; `sku` (all warehouses);
`sku_warehouse` (the bottom: the series `run_forecast` forecasts every night).  The history of
every aggregate is the sum of its bottom series; each aggregate is forecast by the same
`run_forecast` as the bottom series (base forecasts), and every level is then reconciled with
MinT (`pipelines.forecasting.reconcile`; MinT-diagonal by default, see `HierarchySpec`): children
sum to their parents at every level, and each level has its own intervals (a sum of quantiles is
not a quantile of the sum).

`forecast_hierarchy(bottom, series, categories, spec)` is the stage's contract, in memory and with
every option; `forecast_hierarchy_by_shard(shards, categories, spec, scratch)` is what the nightly
reconcile step runs (MinT-diagonal with the nodes' own bands, one shard of SKUs at a time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from pipelines.forecasting.api import run_forecast
from pipelines.forecasting.calendar import WeekStats
from pipelines.forecasting.inputs import build_history
from pipelines.forecasting.options import ForecastOptions
from pipelines.forecasting.reconcile import ShardedMinT, build_bounds, contain_bounds, reconcile_mint
from pipelines.forecasting.validation import build_series
from pipelines.series import join_keys

log = logging.getLogger(__name__)

LEVELS = ("total", "category", "category_warehouse", "sku", "sku_warehouse")
BOTTOM = "sku_warehouse"
NO_CATEGORY = "(no category)"
# residuals over the last year at most: recent correlations, bounded cost
RESIDUAL_PERIODS = {"D": 364, "W": 104}
KEYS = ("category", "sku", "warehouse")
# the columns of the night's statistical forecasts `forecast_hierarchy` reads
BOTTOM_COLUMNS = [
    "sku",
    "warehouse",
    "target_date",
    "yhat",
    "yhat_lo_80",
    "yhat_hi_80",
    "yhat_lo_95",
    "yhat_hi_95",
]
# the key columns each level keeps (the others are NULL: aggregated over)
LEVEL_KEYS: dict[str, tuple[str, ...]] = {
    "total": (),
    "category": ("category",),
    "category_warehouse": ("category", "warehouse"),
    "sku": ("category", "sku"),
    "sku_warehouse": ("category", "sku", "warehouse"),
}


@dataclass(frozen=True)
class Hierarchy:
    """The hierarchy's nodes (`series_key, level, category, sku, warehouse`; aggregates first, in
    the order of `LEVELS`, then the bottom series) and its aggregation matrix A (n_a x n_b of 0/1:
    row i lists the bottom series aggregate i sums)."""

    nodes: pd.DataFrame
    aggregation: sp.csr_matrix

    @property
    def n_aggregates(self) -> int:
        return int(self.aggregation.shape[0])


@dataclass(frozen=True)
class HierarchySpec:
    """How to forecast the aggregates: the config's frequency, horizon, levels and the options."""

    freq: Literal["D", "W"]
    horizon: int
    levels: tuple[float, ...]
    options: ForecastOptions
    # "own": each node's own calibrated base band, widened to contain its reconciled forecast;
    # "gaussian": z * the reconciled standard deviation (MinT's variance; too narrow on the demo,
    # see pipelines.forecasting.reconcile)
    bands: Literal["own", "gaussian"] = "own"
    # "diagonal": MinT-diagonal (W = the base forecasts' variances, from their calibrated bands);
    # "shrink": plus the shrunk correlation of in-sample reference residuals.  On the demo the
    # residuals' correlations made the total and categories worse (BENCHMARKS.md), so diagonal.
    covariance: Literal["diagonal", "shrink"] = "diagonal"


#: Rows of a block of `HierarchyForecast.parts`: whole nodes of one level, about this many rows.
BLOCK_ROWS = 65_536


@dataclass
class HierarchyForecast:
    """Every level's rows (see `forecast_hierarchy`) and notes on how they were made.

    `parts()` gives the rows a block of whole nodes of one level at a time (about `BLOCK_ROWS`
    rows, levels top to bottom), built from the reconciled arrays when asked for, so a writer
    holds one block of rows, not every level's; `rows` is all of them in one frame."""

    parts: Callable[[], Iterator[pd.DataFrame]]
    columns: list[str]
    notes: dict[str, Any] = field(default_factory=dict)
    # every node's own base forecast and bands before reconciliation (`series_key, target_date,
    # yhat, yhat_lo_<L>, yhat_hi_<L>`): for benchmarks and diagnostics, not stored
    base: pd.DataFrame | None = None
    # rows of one bottom node (a value in every key column): the column types of every part
    typed: pd.DataFrame | None = None

    @cached_property
    def rows(self) -> pd.DataFrame:
        blocks = list(self.parts())
        return pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame(columns=self.columns)


def series_keys(level: str, keys: pd.DataFrame) -> pd.Series:
    """The id of each node of `level` (text, unique across levels)."""
    parts = [pd.Series(level, index=keys.index)]
    parts += [keys[k].fillna("") if k in LEVEL_KEYS[level] else pd.Series("", index=keys.index) for k in KEYS]
    return join_keys(*parts)


def build_hierarchy(bottom: pd.DataFrame) -> Hierarchy:
    """The hierarchy of the bottom series `sku, warehouse, category` (one row each, in the order
    the bottom rows of the result keep)."""
    if bottom.duplicated(["sku", "warehouse"]).any():
        raise ValueError("build_hierarchy: duplicate sku x warehouse series")
    b = bottom[["category", "sku", "warehouse"]].reset_index(drop=True)
    frames, parents = [], []
    offset = 0
    for level in LEVELS[:-1]:
        cols = list(LEVEL_KEYS[level])
        if cols:
            nodes = b[cols].drop_duplicates().sort_values(cols).reset_index(drop=True)
            index = pd.MultiIndex.from_frame(nodes).get_indexer(pd.MultiIndex.from_frame(b[cols]))
        else:
            nodes = pd.DataFrame(index=[0])
            index = np.zeros(len(b), dtype=int)
        frames.append(nodes.assign(level=level))
        parents.append(index + offset)
        offset += len(nodes)
    agg = pd.concat(frames, ignore_index=True)
    n_a, n_b = len(agg), len(b)
    row_of = np.concatenate(parents)
    col_of = np.tile(np.arange(n_b), len(parents))
    a = sp.csr_matrix((np.ones(len(row_of)), (row_of, col_of)), shape=(n_a, n_b))
    nodes = pd.concat([agg, b.assign(level=BOTTOM)], ignore_index=True)
    for k in KEYS:
        if k not in nodes:
            nodes[k] = None
        nodes[k] = nodes[k].astype(object).where(nodes[k].notna(), None)
    nodes["series_key"] = pd.concat(
        [series_keys(lv, part) for lv, part in nodes.groupby("level", sort=False)]
    ).sort_index()
    return Hierarchy(nodes[["series_key", "level", *KEYS]], a)


def build_residuals(values: np.ndarray, season: int, *, seasons: int = 4, periods: int = 364) -> np.ndarray:
    """Standardised in-sample residuals (T x n) of every series (rows of `values`, n x T).

    The residual of a period is its value minus the mean of the same period of the `seasons`
    seasons before (a reference forecast every series has, aligned on the same dates across the
    hierarchy); only the last `periods` count.  A series that does not vary gets residuals 0.
    """
    n, t = values.shape
    lag = season * seasons
    if t <= lag + 2:
        return np.zeros((0, n))
    ref = sum(values[:, lag - season * k : t - season * k] for k in range(1, seasons + 1)) / seasons
    resid = (values[:, lag:] - ref)[:, -periods:]
    resid = resid - resid.mean(axis=1, keepdims=True)
    sd = resid.std(axis=1, keepdims=True)
    z = np.divide(resid, sd, out=np.zeros_like(resid), where=sd > 0)
    return np.ascontiguousarray(z.T)


def _level_name(level: float) -> str:
    return str(int(level)) if float(level).is_integer() else str(level).replace(".", "_")


def _wide(frame: pd.DataFrame, ids: pd.Index, dates: pd.DatetimeIndex, value: str) -> np.ndarray:
    """`frame` (`unique_id, ds, value`) as an array (ids x dates), 0 where absent."""
    table = frame.pivot_table(index="unique_id", columns="ds", values=value, aggfunc="sum")
    return table.reindex(index=ids, columns=dates).fillna(0.0).to_numpy(dtype=float)


class _AggregateHistory:
    """The history of every aggregate (A @ the bottom series' history), summed one part of whole
    bottom series at a time, and whether each aggregate has any history on each date."""

    def __init__(
        self, aggregation: sp.csr_matrix, bottom_ids: pd.Index, freq: Literal["D", "W"], *, keep_bottom: bool
    ):
        self._a = aggregation.tocsc()
        self._ids = bottom_ids
        self._freq = freq
        self._keep_bottom = keep_bottom
        self._y: list[pd.DataFrame] = []
        self._exists: list[pd.DataFrame] = []
        self._bottom: list[pd.DataFrame] = []
        self.pd_freq = "D" if freq == "D" else "W-SUN"

    def add(self, series: pd.DataFrame) -> None:
        if series.empty:
            return
        history, self.pd_freq = build_history(series, self._freq)
        # the demand series' unique_id is join_keys(sku, warehouse), as the bottom ids
        cols = self._ids.get_indexer(pd.Index(history["unique_id"].unique()))
        cols = np.sort(cols[cols >= 0])
        if not len(cols):
            return
        ids = self._ids[cols]
        dates = pd.DatetimeIndex(sorted(history["ds"].unique()))
        y = _wide(history, ids, dates, "y")
        exists = _wide(history.assign(one=1.0), ids, dates, "one") > 0
        a = self._a[:, cols]
        self._y.append(pd.DataFrame(np.asarray(a @ y), columns=dates))
        self._exists.append(pd.DataFrame(np.asarray(a @ exists.astype(float)), columns=dates))
        if self._keep_bottom:
            self._bottom.append(pd.DataFrame(y, index=ids, columns=dates))
        self._y, self._exists = [_summed(self._y)], [_summed(self._exists)]

    def finish(self) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray | None]:
        """(dates, aggregates x dates history, ... has history, bottom x dates history or None)."""
        n_a = self._a.shape[0]
        if not self._y:
            return pd.DatetimeIndex([]), np.zeros((n_a, 0)), np.zeros((n_a, 0), dtype=bool), None
        y, exists = self._y[0], self._exists[0]
        dates = pd.DatetimeIndex(y.columns)
        bottom = None
        if self._keep_bottom:
            bottom = (
                pd.concat(self._bottom)
                .reindex(index=self._ids, columns=dates)
                .fillna(0.0)
                .to_numpy(dtype=float)
            )
        return dates, y.to_numpy(dtype=float), exists.to_numpy(dtype=float) > 0, bottom


def _summed(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The sum of frames with the same rows and (some of) the same date columns."""
    out = frames[0]
    for f in frames[1:]:
        out = out.add(f, fill_value=0.0)
    return out[sorted(out.columns)]


def forecast_hierarchy(
    bottom: pd.DataFrame | Callable[[], Iterable[pd.DataFrame]],
    series: pd.DataFrame | Iterable[pd.DataFrame],
    categories: pd.DataFrame | None,
    spec: HierarchySpec,
    *,
    keep_base: bool = False,
) -> HierarchyForecast:
    """Reconciled forecasts of every level from the night's bottom forecasts.

    Args:
        bottom: the night's statistical forecasts (rows of `seam_forecasts`: `sku, warehouse,
            target_date, yhat, yhat_lo_<L>, yhat_hi_<L>`), whole or as a function that gives
            them in parts (a night's shards), again on each of its two calls.
        series: the daily demand series they were made from (`build_demand_series`), whole or in
            parts of whole SKUs (a night's shards: with MinT-diagonal, only the aggregates'
            history is kept, summed part by part).
        categories: `sku, category` (None: every SKU in `NO_CATEGORY`).
        spec: frequency, horizon, levels and forecasting options of the aggregates.
        keep_base: also return every node's base forecast (`HierarchyForecast.base`, as many
            rows as the result: for benchmarks and diagnostics).

    Returns:
        Rows `level, series_key, category, sku, warehouse, target_date, yhat, yhat_base,
        yhat_lo_<L>, yhat_hi_<L>, method` for every node and target date (keys a level aggregates
        over are None), and notes (method, shrinkage, series per level, seconds).
    """
    t0 = time.perf_counter()
    names = ["series_key", "level", *KEYS, "target_date", "yhat", "yhat_base"]
    names += [f"yhat_{s}_{_level_name(lv)}" for lv in spec.levels for s in ("lo", "hi")]
    names.append("method")
    bottom_parts = (lambda: [bottom]) if isinstance(bottom, pd.DataFrame) else bottom
    seen, days = [], set()  # the bottom series and target dates, one part of the rows at a time
    for part in bottom_parts():
        seen.append(part[["sku", "warehouse"]].drop_duplicates())
        days.update(pd.to_datetime(part["target_date"]).unique())
    if not sum(len(s) for s in seen):  # nothing forecast tonight: no levels either
        return HierarchyForecast(lambda: iter(()), names, {"method": None, "series": {}, "seconds": 0.0})
    keys = pd.concat(seen).drop_duplicates().sort_values(["sku", "warehouse"])
    cat = dict(zip(categories["sku"], categories["category"], strict=True)) if categories is not None else {}
    keys = keys.assign(category=keys["sku"].map(cat).fillna(NO_CATEGORY).astype(str))
    tree = build_hierarchy(keys)
    nodes, n_a = tree.nodes, tree.n_aggregates
    bottom_ids = pd.Index(join_keys(keys["sku"], keys["warehouse"]))

    # history at the forecast frequency of every aggregate (and, for the residuals' correlations,
    # of the bottom series)
    parts = [series] if isinstance(series, pd.DataFrame) else series
    if spec.covariance != "diagonal":
        parts = [pd.concat(list(parts), ignore_index=True)]
    sums = _AggregateHistory(
        tree.aggregation, bottom_ids, spec.freq, keep_bottom=spec.covariance != "diagonal"
    )
    for part in parts:
        sums.add(part)
    dates, y_agg, exists_agg, y_bottom = sums.finish()
    pd_freq = sums.pd_freq

    # base forecasts of the aggregates, by the same machinery as the bottom series
    agg_ids = nodes["series_key"].to_numpy()[:n_a]
    rows_i, cols_i = np.nonzero(exists_agg)
    agg_history = pd.DataFrame(
        {"unique_id": agg_ids[rows_i], "ds": dates[cols_i], "y": y_agg[rows_i, cols_i], "censored": False}
    )
    t1 = time.perf_counter()
    agg_fc = run_forecast(agg_history, spec.horizon, pd_freq, spec.levels, spec.options)
    seconds_forecast = time.perf_counter() - t1

    targets = pd.DatetimeIndex(sorted(days))
    columns = ["yhat"] + [f"yhat_{s}_{_level_name(lv)}" for lv in spec.levels for s in ("lo", "hi")]
    stored = {name: column for column, name in _stored_names(spec.levels).items()} | {"yhat": "yhat"}
    # each bottom row's cell (series, target date): the bottom forecasts as arrays, no pivot
    series_index = pd.MultiIndex.from_frame(keys[["sku", "warehouse"]])
    base = {c: np.zeros((len(nodes), len(targets))) for c in columns}  # aggregates, then bottom
    for c in columns:
        base[c][:n_a] = _wide(agg_fc, pd.Index(agg_ids), targets, c)
    for part in bottom_parts():
        cell = (
            n_a + series_index.get_indexer(pd.MultiIndex.from_frame(part[["sku", "warehouse"]])),
            targets.get_indexer(pd.to_datetime(part["target_date"])),
        )
        for c in columns:
            np.add.at(base[c], cell, np.nan_to_num(part[stored[c]].to_numpy(dtype=float), nan=0.0))
    gaussian = spec.bands == "gaussian"
    # each level's spread, where the reconciliation reads it: the means read only the first level's
    scales = {
        lv: (base[f"yhat_hi_{_level_name(lv)}"] - base["yhat"]) / float(stats.norm.ppf(0.5 + lv / 200.0))
        for lv in (spec.levels if gaussian else spec.levels[:1])
    }
    season = 7 if spec.freq == "D" else 1
    residuals = (
        None
        if spec.covariance == "diagonal"
        else build_residuals(
            np.vstack([y_agg, y_bottom if y_bottom is not None else np.zeros((len(bottom_ids), len(dates)))]),
            season,
            periods=RESIDUAL_PERIODS[spec.freq],
        )
    )
    t2 = time.perf_counter()
    rec = reconcile_mint(base["yhat"], scales, tree.aggregation, residuals, variances=gaussian)
    del scales
    if gaussian:
        bounds = build_bounds(rec)
    else:  # the base bands widened where they are (kept apart only when the base is returned too)
        bounds = {
            lv: contain_bounds(
                rec.mean,
                base[f"yhat_lo_{_level_name(lv)}"],
                base[f"yhat_hi_{_level_name(lv)}"],
                in_place=not keep_base,
            )
            for lv in spec.levels
        }
    seconds_reconcile = time.perf_counter() - t2

    h = len(targets)
    method = f"{rec.method}+{'gaussian' if gaussian else 'own'}_bands"
    mean, yhat_base = rec.mean, base["yhat"]

    def block(start: int, stop: int) -> pd.DataFrame:
        out = nodes.iloc[start:stop]
        out = out.loc[out.index.repeat(h)].reset_index(drop=True)
        out["target_date"] = np.tile(targets.to_numpy(), stop - start)
        out["yhat"] = mean[start:stop].ravel()
        out["yhat_base"] = yhat_base[start:stop].ravel()
        for lv, (lo, hi) in bounds.items():
            out[f"yhat_lo_{_level_name(lv)}"] = lo[start:stop].ravel()
            out[f"yhat_hi_{_level_name(lv)}"] = hi[start:stop].ravel()
        out["method"] = method
        return out

    def blocks() -> Iterator[pd.DataFrame]:
        per_block = max(1, BLOCK_ROWS // max(h, 1))
        level = nodes["level"].to_numpy()
        cuts = np.flatnonzero(level[1:] != level[:-1]) + 1  # each level's first node
        for start, stop in zip([0, *cuts], [*cuts, len(nodes)], strict=True):
            for first in range(int(start), int(stop), per_block):
                yield block(first, min(first + per_block, int(stop)))

    result = HierarchyForecast(blocks, names, typed=block(len(nodes) - 1, len(nodes)))
    before = (
        result.rows[["series_key", "level", *KEYS, "target_date"]].assign(
            **{c: base[c].ravel() for c in columns}
        )
        if keep_base
        else None
    )
    if not keep_base:  # only the base forecast itself is stored beside the reconciled one
        base = {"yhat": yhat_base}
    counts = nodes["level"].value_counts()
    notes = {
        "method": rec.method,
        "shrinkage": rec.shrinkage,
        "series": {lv: int(counts.get(lv, 0)) for lv in LEVELS},
        "residual_periods": int(residuals.shape[0]) if residuals is not None else 0,
        "seconds_forecast_aggregates": round(seconds_forecast, 2),
        "seconds_reconcile": round(seconds_reconcile, 2),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info(
        "forecast hierarchy: %d bottom + %d aggregate series, horizon %d, %s, rows_out %d, "
        "aggregates forecast in %.1fs, reconciled in %.1fs",
        len(keys),
        n_a,
        h,
        rec.method,
        len(nodes) * h,
        seconds_forecast,
        seconds_reconcile,
    )
    result.notes, result.base = notes, before
    return result


def _stored_names(levels: tuple[float, ...]) -> dict[str, str]:
    """seam_forecasts' bound columns (always _80 / _95) -> the forecaster's names per level."""
    lo, hi = levels
    return {
        "yhat_lo_80": f"yhat_lo_{_level_name(lo)}",
        "yhat_hi_80": f"yhat_hi_{_level_name(lo)}",
        "yhat_lo_95": f"yhat_lo_{_level_name(hi)}",
        "yhat_hi_95": f"yhat_hi_{_level_name(hi)}",
    }


class Scratch(Protocol):
    """Frames kept on disk between passes (the lake's `Spill`)."""

    def append(self, name: str, part: int, frame: pd.DataFrame) -> None: ...

    def read(self, name: str, part: int) -> pd.DataFrame | None: ...


@dataclass(frozen=True)
class HierarchyShards:
    """The night's bottom forecasts and demand series in `count` shards of whole SKUs (every SKU
    in one shard only): `forecasts(k)` gives shard k's forecasts (rows of `seam_forecasts`, read
    again on each pass), `series(k)` its daily demand series (read once)."""

    count: int
    forecasts: Callable[[int], pd.DataFrame]
    series: Callable[[int], pd.DataFrame]


# the levels above the SKU: their nodes do not grow with the number of products
TOP_LEVELS = ("total", "category", "category_warehouse")


@dataclass
class _Shard:
    """One shard's nodes and figures: its SKU nodes and bottom series (in output order), the
    top nodes (index into the night's) and SKU node of each bottom series, and the base
    forecasts of both (column -> rows x targets)."""

    skus: pd.DataFrame
    bottom: pd.DataFrame
    a_top: sp.csr_matrix
    a_block: sp.csr_matrix
    bottom_base: dict[str, np.ndarray]
    sku_base: dict[str, np.ndarray]


def forecast_hierarchy_by_shard(
    shards: HierarchyShards,
    categories: pd.DataFrame | None,
    spec: HierarchySpec,
    scratch: Scratch,
) -> HierarchyForecast:
    """`forecast_hierarchy` with MinT-diagonal and the nodes' own bands, one shard at a time.

    Only the shard in hand, the levels above the SKU (total, category, category x warehouse) and
    figures of one row per SKU node are in memory; each shard's SKU nodes' history and base
    forecasts wait in `scratch` between passes.  The aggregates' point forecasts are those of
    `forecast_hierarchy` (the same panel week, gathered over every aggregate; see
    `calendar.WeekStats`); their bands are calibrated on the backtests of the SKU nodes of their
    shard, or of the levels above the SKU together, as a shard's SKU x warehouse forecasts are on
    the shard's.  MinT is solved by eliminating the SKU nodes shard by shard (`ShardedMinT`).
    `parts()` gives each shard's SKU and SKU x warehouse rows, then the levels above.

    Raises:
        ValueError: a SKU in two shards, or `spec` asks for Gaussian bands or residual
            correlations (`forecast_hierarchy` does those, in memory).
    """
    if spec.bands != "own" or spec.covariance != "diagonal":
        raise ValueError(
            f"forecast_hierarchy_by_shard: only MinT-diagonal with own bands, got bands={spec.bands!r}, "
            f"covariance={spec.covariance!r}; use forecast_hierarchy"
        )
    t0 = time.perf_counter()
    names = ["series_key", "level", *KEYS, "target_date", "yhat", "yhat_base"]
    names += [f"yhat_{s}_{_level_name(lv)}" for lv in spec.levels for s in ("lo", "hi")]
    names.append("method")
    columns = ["yhat"] + [f"yhat_{s}_{_level_name(lv)}" for lv in spec.levels for s in ("lo", "hi")]
    stored = {name: column for column, name in _stored_names(spec.levels).items()} | {"yhat": "yhat"}
    hi_first = f"yhat_hi_{_level_name(spec.levels[0])}"
    z_first = float(stats.norm.ppf(0.5 + spec.levels[0] / 200.0))
    cat = dict(zip(categories["sku"], categories["category"], strict=True)) if categories is not None else {}

    # pass 1: each shard's nodes, the SKU nodes' history (to scratch), the top levels' history
    gathered = _TopHistory()
    week_stats = WeekStats("D" if spec.freq == "D" else "W-SUN", spec.options.season_lengths)
    pd_freq = "D" if spec.freq == "D" else "W-SUN"
    seen_skus: set[str] = set()
    days: set[pd.Timestamp] = set()
    counts = dict.fromkeys(LEVELS, 0)
    spread_sums: list[float] = [0.0]  # the largest bottom series' summed spread
    present, pairs = [], set()
    for k in range(shards.count):
        fc = shards.forecasts(k)
        if fc.empty:
            continue
        keys = fc[["sku", "warehouse"]].drop_duplicates().sort_values(["sku", "warehouse"])
        skus = set(keys["sku"].astype(str))
        if skus & seen_skus:
            raise ValueError(
                f"forecast_hierarchy_by_shard: SKUs {sorted(skus & seen_skus)[:5]} are in shard {k} and an "
                "earlier one; the shards must hold whole SKUs"
            )
        seen_skus |= skus
        present.append(k)
        days.update(pd.to_datetime(fc["target_date"]).unique())
        keys = keys.assign(category=keys["sku"].map(cat).fillna(NO_CATEGORY).astype(str)).reset_index(
            drop=True
        )
        scratch.append("keys", k, keys)
        pairs |= set(zip(keys["category"], keys["warehouse"].astype(str), strict=True))
        spread = np.zeros(len(keys))
        index = pd.MultiIndex.from_frame(keys[["sku", "warehouse"]])
        rows = index.get_indexer(pd.MultiIndex.from_frame(fc[["sku", "warehouse"]]))
        np.add.at(spread, rows, _filled(fc[stored[hi_first]]) - _filled(fc["yhat"]))
        spread_sums.append(float(spread.max(initial=0.0)))
        counts[BOTTOM] += len(keys)
        counts["sku"] += keys["sku"].nunique()
        history = _bottom_history(shards.series(k), keys, spec.freq)
        if history is None:
            continue
        pd_freq = history.attrs["freq"]
        sku_history = _summed_history(history, "sku")
        scratch.append("sku_history", k, sku_history)
        week_stats.add(build_series(sku_history, pd_freq))
        gathered.add(history)
    if not present:  # nothing forecast tonight: no levels either
        return HierarchyForecast(lambda: iter(()), names, {"method": None, "series": {}, "seconds": 0.0})
    targets = pd.DatetimeIndex(sorted(days))
    h = len(targets)

    # the levels above the SKU: their history, the week of every aggregate, their forecasts
    top_nodes, top_history = gathered.finish(pairs)
    for level in TOP_LEVELS:
        counts[level] = int((top_nodes["level"] == level).sum())
    week_stats.add(build_series(top_history, pd_freq) if len(top_history) else [])
    week = week_stats.finish()
    t1 = time.perf_counter()
    top_ids = pd.Index(top_nodes["series_key"])
    top_fc = (
        run_forecast(top_history, spec.horizon, pd_freq, spec.levels, spec.options, week=week)
        if len(top_history)
        else None
    )
    top_base = {c: _wide_or_zero(top_fc, top_ids, targets, c) for c in columns}

    # pass 2: each shard's SKU nodes forecast with the same week (to scratch)
    largest = [max(spread_sums) / z_first / max(h, 1), _largest_scale(top_base, hi_first, z_first)]
    for k in present:
        history = scratch.read("sku_history", k)
        if history is None:
            continue
        fc = run_forecast(history, spec.horizon, pd_freq, spec.levels, spec.options, week=week)
        scratch.append("sku_forecasts", k, fc[["unique_id", "ds", *columns]])
        ids = pd.Index(fc["unique_id"].unique())
        largest.append(
            _largest_scale({c: _wide(fc, ids, targets, c) for c in (hi_first, "yhat")}, hi_first, z_first)
        )
    seconds_forecast = time.perf_counter() - t1
    floor = 1e-6 * max(1.0, *largest)  # as `reconcile._floored` over every node

    def weights(base: dict[str, np.ndarray]) -> np.ndarray:
        s = (base[hi_first] - base["yhat"]).mean(axis=1) / z_first if h else np.ones(len(base["yhat"]))
        s = np.where(np.isfinite(s), s, 0.0)
        return np.maximum(s, floor) ** 2

    def shard(k: int) -> _Shard:
        keys = scratch.read("keys", k)
        if keys is None:  # pass 1 kept every shard with forecasts; the scratch lost one
            raise RuntimeError(
                f"forecast_hierarchy_by_shard: shard {k}'s series are missing from the scratch"
            )
        return _shard_figures(
            keys, shards.forecasts(k), scratch.read("sku_forecasts", k), top_nodes, targets, columns, stored
        )

    # pass 3: the shards' part of MinT's system; pass 4 (`parts`): the reconciled rows
    t2 = time.perf_counter()
    mint = ShardedMinT(top_base["yhat"], weights(top_base))
    for k in present:
        f = shard(k)
        mint.add(
            f.a_top,
            f.a_block,
            (f.bottom_base["yhat"], weights(f.bottom_base)),
            (f.sku_base["yhat"], weights(f.sku_base)),
        )
    mint.solve()
    seconds_reconcile = time.perf_counter() - t2
    method = "mint_diagonal+own_bands"

    def parts() -> Iterator[pd.DataFrame]:
        top_mean = np.zeros((len(top_nodes), h))
        for k in present:
            f = shard(k)
            bottom = np.maximum(
                mint.bottom(
                    f.a_top,
                    f.a_block,
                    (f.bottom_base["yhat"], weights(f.bottom_base)),
                    (f.sku_base["yhat"], weights(f.sku_base)),
                ),
                0.0,
            )
            top_mean += np.asarray(f.a_top @ bottom)
            yield from _level_rows(
                f.skus, targets, np.asarray(f.a_block @ bottom), f.sku_base, spec.levels, method
            )
            yield from _level_rows(f.bottom, targets, bottom, f.bottom_base, spec.levels, method)
        yield from _level_rows(top_nodes, targets, top_mean, top_base, spec.levels, method)

    first = shard(present[0])
    typed = next(
        _level_rows(
            first.bottom.iloc[:1],
            targets,
            first.bottom_base["yhat"][:1],
            {c: v[:1] for c, v in first.bottom_base.items()},
            spec.levels,
            method,
        )
    )
    notes = {
        "method": "mint_diagonal",
        "shrinkage": 1.0,
        "series": counts,
        "residual_periods": 0,
        "shards": len(present),
        "seconds_forecast_aggregates": round(seconds_forecast, 2),
        "seconds_reconcile": round(seconds_reconcile, 2),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info(
        "forecast hierarchy by shard: %d shards, %d bottom + %d aggregate series, horizon %d, rows_out %d, "
        "aggregates forecast in %.1fs, reconciled in %.1fs",
        len(present),
        counts[BOTTOM],
        sum(counts.values()) - counts[BOTTOM],
        h,
        sum(counts.values()) * h,
        seconds_forecast,
        seconds_reconcile,
    )
    return HierarchyForecast(parts, names, notes, typed=typed)


def _filled(values: pd.Series) -> np.ndarray:
    return np.nan_to_num(values.to_numpy(dtype=float), nan=0.0)


def _wide_or_zero(
    fc: pd.DataFrame | None, ids: pd.Index, targets: pd.DatetimeIndex, column: str
) -> np.ndarray:
    return np.zeros((len(ids), len(targets))) if fc is None else _wide(fc, ids, targets, column)


def _largest_scale(base: dict[str, np.ndarray], hi: str, z: float) -> float:
    """The largest standard deviation implied by a node's band (as `reconcile_mint` reads it)."""
    if not base["yhat"].size:
        return 0.0
    s = (base[hi] - base["yhat"]).mean(axis=1) / z
    return float(np.max(np.where(np.isfinite(s), s, 0.0), initial=0.0))


def _node_frame(level: str, keys: pd.DataFrame) -> pd.DataFrame:
    """The nodes `series_key, level, category, sku, warehouse` of `level` for rows of `keys` (the
    keys the level aggregates over are None)."""
    out = pd.DataFrame({"series_key": series_keys(level, keys).to_numpy(), "level": level})
    for k in KEYS:
        values = keys[k].astype(object).to_numpy() if k in LEVEL_KEYS[level] else np.full(len(keys), None)
        out[k] = pd.Series(values, dtype=object)
    return out


def _bottom_history(series: pd.DataFrame, keys: pd.DataFrame, freq: Literal["D", "W"]) -> pd.DataFrame | None:
    """The history at the forecast frequency of the shard's forecast series (`keys`), with their
    keys; None when they have none."""
    if series.empty:
        return None
    history, pd_freq = build_history(series, freq)
    ids = join_keys(keys["sku"], keys["warehouse"])
    keyed = keys.assign(unique_id=ids.to_numpy())
    history = history.merge(keyed, on="unique_id", how="inner")
    if history.empty:
        return None
    history.attrs["freq"] = pd_freq
    return history


def _summed_history(history: pd.DataFrame, level: str) -> pd.DataFrame:
    """The history (`unique_id, ds, y, censored`) of the nodes of `level` summed from `history`."""
    cols = list(LEVEL_KEYS[level])
    summed = history.groupby([*cols, "ds"], as_index=False, sort=True)["y"].sum()
    ids = (
        series_keys(level, summed)
        if cols
        else pd.Series(series_keys(level, pd.DataFrame(index=[0]))[0], index=summed.index)
    )
    return pd.DataFrame(
        {
            "unique_id": ids.to_numpy(),
            "ds": summed["ds"].to_numpy(),
            "y": summed["y"].to_numpy(dtype=float),
            "censored": False,
        }
    )


class _TopHistory:
    """The history of the levels above the SKU, summed shard by shard."""

    def __init__(self) -> None:
        self._parts: list[pd.DataFrame] = []

    def add(self, history: pd.DataFrame) -> None:
        parts = [_summed_history(history, level) for level in TOP_LEVELS]
        self._parts = [
            pd.concat([*self._parts, *parts], ignore_index=True)
            .groupby(["unique_id", "ds"], as_index=False, sort=True)["y"]
            .sum()
        ]

    def finish(self, pairs: set[tuple[str, str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The top nodes (in the order of `LEVELS`, each level sorted by its keys, as
        `build_hierarchy`) of the (category, warehouse) pairs, and their history."""
        keys = pd.DataFrame(sorted(pairs), columns=["category", "warehouse"]).assign(sku=None)
        frames = []
        for level in TOP_LEVELS:
            cols = list(LEVEL_KEYS[level])
            level_keys = (
                keys[cols].drop_duplicates().sort_values(cols).reset_index(drop=True)
                if cols
                else keys.iloc[:1]
            )
            frames.append(_node_frame(level, level_keys.assign(**{k: None for k in KEYS if k not in cols})))
        nodes = pd.concat(frames, ignore_index=True)
        history = (
            self._parts[0].assign(censored=False)
            if self._parts
            else pd.DataFrame(columns=["unique_id", "ds", "y", "censored"])
        )
        return nodes, history[history["unique_id"].isin(nodes["series_key"])].reset_index(drop=True)


def _shard_figures(
    keys: pd.DataFrame,
    fc: pd.DataFrame,
    sku_fc: pd.DataFrame | None,
    top_nodes: pd.DataFrame,
    targets: pd.DatetimeIndex,
    columns: list[str],
    stored: dict[str, str],
) -> _Shard:
    bottom = _node_frame(BOTTOM, keys)
    sku_keys = (
        keys[["category", "sku"]].drop_duplicates().sort_values(["category", "sku"]).reset_index(drop=True)
    )
    skus = _node_frame("sku", sku_keys)
    n = len(keys)
    block_of = pd.MultiIndex.from_frame(sku_keys).get_indexer(
        pd.MultiIndex.from_frame(keys[["category", "sku"]])
    )
    a_block = sp.csr_matrix((np.ones(n), (block_of, np.arange(n))), shape=(len(skus), n))
    top_of = pd.Index(top_nodes["series_key"])
    rows = np.concatenate([top_of.get_indexer(series_keys(level, keys)) for level in TOP_LEVELS])
    if (rows < 0).any():
        raise ValueError(
            "forecast_hierarchy_by_shard: a series' category or warehouse is not among the top nodes"
        )
    a_top = sp.csr_matrix(
        (np.ones(len(rows)), (rows, np.tile(np.arange(n), len(TOP_LEVELS)))), shape=(len(top_nodes), n)
    )
    index = pd.MultiIndex.from_frame(keys[["sku", "warehouse"]])
    cell = (
        index.get_indexer(pd.MultiIndex.from_frame(fc[["sku", "warehouse"]])),
        targets.get_indexer(pd.to_datetime(fc["target_date"])),
    )
    bottom_base = {}
    for c in columns:
        bottom_base[c] = np.zeros((n, len(targets)))
        np.add.at(bottom_base[c], cell, _filled(fc[stored[c]]))
    sku_ids = pd.Index(skus["series_key"])
    sku_base = {c: _wide_or_zero(sku_fc, sku_ids, targets, c) for c in columns}
    return _Shard(skus, bottom, a_top, a_block, bottom_base, sku_base)


def _level_rows(
    nodes: pd.DataFrame,
    targets: pd.DatetimeIndex,
    mean: np.ndarray,
    base: dict[str, np.ndarray],
    levels: tuple[float, ...],
    method: str,
) -> Iterator[pd.DataFrame]:
    """The rows of `nodes` (one level, or whole levels in order) in blocks of whole nodes of about
    `BLOCK_ROWS` rows: reconciled `mean`, the base forecast and each node's own base band widened
    to contain the reconciled forecast."""
    h = len(targets)
    per_block = max(1, BLOCK_ROWS // max(h, 1))
    for start in range(0, len(nodes), per_block):
        stop = min(start + per_block, len(nodes))
        out = nodes.iloc[start:stop]
        out = out.loc[out.index.repeat(h)].reset_index(drop=True)
        out["target_date"] = np.tile(targets.to_numpy(), stop - start)
        m = mean[start:stop]
        out["yhat"] = m.ravel()
        out["yhat_base"] = base["yhat"][start:stop].ravel()
        for lv in levels:
            name = _level_name(lv)
            lo, hi = contain_bounds(
                m, base[f"yhat_lo_{name}"][start:stop], base[f"yhat_hi_{name}"][start:stop]
            )
            out[f"yhat_lo_{name}"] = lo.ravel()
            out[f"yhat_hi_{name}"] = hi.ravel()
        out["method"] = method
        yield out
