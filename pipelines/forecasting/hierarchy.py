"""Coherent forecasts of the product x warehouse hierarchy.

Levels, top to bottom: `total`; `category`; `category_warehouse`; `sku` (all warehouses);
`sku_warehouse` (the bottom: the series `run_forecast` forecasts every night).  The history of
every aggregate is the sum of its bottom series; each aggregate is forecast by the same
`run_forecast` as the bottom series (base forecasts), and every level is then reconciled with
MinT (`pipelines.forecasting.reconcile`; MinT-diagonal by default, see `HierarchySpec`): children
sum to their parents at every level, and each level has its own intervals (a sum of quantiles is
not a quantile of the sum).

`forecast_hierarchy(bottom, series, categories, spec)` is the stage's contract.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from pipelines.forecasting.api import run_forecast
from pipelines.forecasting.inputs import build_history
from pipelines.forecasting.options import ForecastOptions
from pipelines.forecasting.reconcile import build_bounds, contain_bounds, reconcile_mint
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
