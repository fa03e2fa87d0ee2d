"""The night's actuals, and the archived forecasts scored against them (`seam_forecast_accuracy`;
the figures are defined in `pipelines.forecasting.accuracy`), one shard of SKUs at a time.

    spill_demand(lines, spill, ...) -> NightDemand   each shard's actuals, MASE scales and the
                                                     actuals of its hierarchy nodes, in the spill
    load_forecast_accuracy(cfg, d, demand)           the archive read in chunks and sent to the
                                                     shard of its SKU; each shard scored alone;
                                                     the levels above SKUs added up from the
                                                     shards' counts and sums

What the load holds grows with one shard and with the SKUs' names, not with the night's rows: the
actuals, the archive and the rows of series-level accuracy wait in the spill between the passes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.config import Config, results_url
from pipelines.db import make_engine
from pipelines.forecasting.accuracy import (
    FORECAST_COLUMNS,
    HIERARCHY_COLUMNS,
    LEVELS,
    NodeScales,
    accuracy_rows,
    accuracy_window,
    build_actuals,
    build_mase_scale,
    forecast_partials,
    hierarchy_partials,
    node_actuals,
)
from pipelines.lake import Spill, read_dataset
from pipelines.load.batch import LoadResult, load_parts
from pipelines.quality import blocked_datasets

log = logging.getLogger(__name__)


#: Rows of an archive of forecasts per chunk read from the database.
ARCHIVE_CHUNK_ROWS = 100_000


def _iter_archive(
    engine: Engine, table: str, columns: tuple[str, ...], start: date, end: date
) -> Iterator[pd.DataFrame]:
    """Rows of an archive of forecasts whose target date is in [start, end], made before it, in
    chunks of `ARCHIVE_CHUNK_ROWS` (streamed from the server): the dates as Timestamps, the
    figures (the columns after the four key columns) as floats."""
    query = sa.text(
        f"SELECT {', '.join(columns)} FROM {table} "
        "WHERE target_date >= :start AND target_date <= :end AND run_date < target_date"
    ).bindparams(sa.bindparam("start", type_=sa.Date), sa.bindparam("end", type_=sa.Date))
    with engine.connect() as conn:
        streamed = conn.execution_options(stream_results=True)
        chunks = pd.read_sql(
            query, streamed, params={"start": start, "end": end}, chunksize=ARCHIVE_CHUNK_ROWS
        )
        yield from (_typed(df, columns) for df in chunks)


def _typed(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    for c in ("run_date", "target_date"):
        df[c] = pd.to_datetime(df[c])
    for c in columns[4:]:
        df[c] = df[c].astype(float)
    return df


def _read_archive(
    engine: Engine, table: str, columns: tuple[str, ...], start: date, end: date
) -> pd.DataFrame:
    parts = list(_iter_archive(engine, table, columns, start, end))
    return (
        pd.concat(parts, ignore_index=True) if parts else _typed(pd.DataFrame(columns=list(columns)), columns)
    )


def read_forecast_archive(engine: Engine, start: date, end: date) -> pd.DataFrame:
    """The archived forecasts (`seam_forecasts`) whose target date is in [start, end], made before it."""
    return _read_archive(engine, "seam_forecasts", tuple(FORECAST_COLUMNS), start, end)


def read_hierarchy_archive(engine: Engine, start: date, end: date) -> pd.DataFrame:
    """The archived reconciled forecasts of every level (`seam_forecasts_hierarchy`) whose target
    date is in [start, end], made before it."""
    return _read_archive(engine, "seam_forecasts_hierarchy", tuple(HIERARCHY_COLUMNS), start, end)


def accuracy_categories(cfg: Config, run_date: date) -> pd.DataFrame | None:
    """`sku, category` of the night's products, or None (with a warning) when there are none."""
    if cfg.has_dataset("products") and not blocked_datasets(cfg, run_date, ["products"]):
        return read_dataset(cfg, "products", run_date)[["sku", "category"]]
    log.warning("forecast accuracy for %s: no usable products dataset, so no category rows", run_date)
    return None


@dataclass
class NightDemand:
    """The night's actuals by shard of SKUs, in a spill (`spill_demand`), and what scoring the
    archived forecasts needs: which shard holds a SKU and a node of the SKU levels, and the
    hierarchy's nodes above SKUs (their actuals summed over the shards, and their MASE scales)."""

    spill: Spill
    categories: pd.DataFrame | None
    shards: list[int] = field(default_factory=list)
    sku_shard: dict[Any, int] = field(default_factory=dict)
    node_shard: dict[str, int] = field(default_factory=dict)
    above: dict[str, pd.DataFrame] = field(default_factory=dict)
    above_scale: pd.Series = field(default_factory=lambda: pd.Series(dtype=float, name="scale"))

    def actuals(self) -> Iterator[pd.DataFrame]:
        """The rows of `seam_actuals`, a shard at a time (one empty frame on a night without
        order lines)."""
        if not self.shards:
            yield pd.DataFrame(
                {
                    "sku": pd.Series(dtype=object),
                    "warehouse": pd.Series(dtype=object),
                    "ds": pd.Series(dtype="datetime64[ns]"),
                    "actual": pd.Series(dtype=float),
                }
            )
        for k in self.shards:
            part = self.spill.read("actuals", k)
            if part is not None:
                yield part


def spill_demand(
    lines: Iterable[pd.DataFrame],
    spill: Spill,
    *,
    run_date: date,
    horizon: int,
    history_days: int,
    categories: pd.DataFrame | None,
) -> NightDemand:
    """`build_actuals` of a night's order lines given one shard of SKUs at a time (every warehouse
    of a SKU in the same shard): each shard's actuals, the MASE scales of its series
    (`build_mase_scale`) and the actuals and scales of its nodes of the SKU levels of the hierarchy
    go to the spill; the nodes above SKUs are summed over the shards."""
    demand = NightDemand(spill, categories)
    nodes = NodeScales(categories)
    above: dict[str, list[pd.DataFrame]] = {}
    for k, shard_lines in enumerate(lines):
        actuals, history = build_actuals(
            shard_lines, run_date=run_date, horizon=horizon, history_days=history_days
        )
        demand.shards.append(k)
        spill.append("actuals", k, actuals)
        spill.append("scale", k, build_mase_scale(history).reset_index())
        nodes.add(history)
        spill.append("node_scale", k, nodes.take_local().rename_axis("series_key").reset_index())
        demand.sku_shard.update(dict.fromkeys(actuals["sku"].unique(), k))
        for level, frame in node_actuals(actuals, categories).items():
            if level in nodes.partial:
                above.setdefault(level, []).append(frame)
            else:
                spill.append("nodes", k, frame.assign(level=level))
                demand.node_shard.update(dict.fromkeys(frame["series_key"].unique(), k))
    demand.above = {
        level: pd.concat(parts)
        .groupby(["series_key", "target_date"], as_index=False, sort=True)["actual"]
        .sum()
        for level, parts in above.items()
    }
    demand.above_scale = nodes.above()
    return demand


def _route(chunk: pd.DataFrame, by: str, shard_of: dict[Any, int], name: str, spill: Spill) -> pd.DataFrame:
    """Append the rows of `chunk` to the spill `name` of the shard of their column `by`; returns
    the rows of no shard."""
    shard = chunk[by].map(shard_of)
    routed = shard.notna()
    for k, part in chunk[routed].groupby(shard[routed].astype("int64"), sort=True):
        spill.append(name, int(k), part)
    return chunk[~routed]


def score_night(engine: Engine, run_date: date, horizon: int, demand: NightDemand) -> list[tuple[str, int]]:
    """Score the archived forecasts (and reconciled forecasts) of the night's actuals window
    against `demand`, one shard at a time: the archive is read in chunks and each row goes to the
    spill of its SKU's shard; each shard's series (and SKU-level nodes) are scored whole and their
    rows of `seam_forecast_accuracy` go to the spill (`accuracy`); the levels above are added up
    from the shards' counts and sums and go to the spill `accuracy_above`.  Returns the (name,
    part) of the spill that hold the rows."""
    spill = demand.spill
    start, end = accuracy_window(run_date, horizon)
    points = 0
    for chunk in _iter_archive(engine, "seam_forecasts", tuple(FORECAST_COLUMNS), start, end):
        points += len(chunk)
        _route(chunk, "sku", demand.sku_shard, "archive", spill)  # a SKU without actuals: not scored
    upper_archive = []  # the nodes above SKUs (a SKU node without actuals is not scored)
    for chunk in _iter_archive(engine, "seam_forecasts_hierarchy", tuple(HIERARCHY_COLUMNS), start, end):
        rest = _route(chunk, "series_key", demand.node_shard, "hier_archive", spill)
        upper_archive.append(rest[rest["level"].isin(list(demand.above))])
    written: list[tuple[str, int]] = []
    upper: list[pd.DataFrame] = []
    for k in demand.shards:
        archive, actuals = spill.read("archive", k), spill.read("actuals", k)
        rows = []
        if archive is not None and actuals is not None:
            partials = forecast_partials(
                archive, actuals, _scales(spill, "scale", k, ["sku", "warehouse"]), demand.categories
            )
            series = partials["level"] == LEVELS[0]
            rows.append(accuracy_rows(partials[series], run_date))
            upper.append(partials[~series])
        levels = spill.read("hier_archive", k)
        nodes = spill.read("nodes", k)
        if levels is not None and nodes is not None:
            by_level = {lv: part.drop(columns="level") for lv, part in nodes.groupby("level", sort=False)}
            scales = _scales(spill, "node_scale", k, ["series_key"])
            rows.append(accuracy_rows(hierarchy_partials(levels, by_level, scales), run_date))
        rows = [r for r in rows if len(r)]
        if rows:
            spill.append("accuracy", k, pd.concat(rows, ignore_index=True))
            written.append(("accuracy", k))
    levels = [part for part in upper_archive if len(part)]
    if levels:
        upper.append(
            hierarchy_partials(pd.concat(levels, ignore_index=True), demand.above, demand.above_scale)
        )
    upper = [u for u in upper if len(u)]
    if upper:
        spill.append("accuracy_above", 0, accuracy_rows(pd.concat(upper, ignore_index=True), run_date))
        written.append(("accuracy_above", 0))
    log.info(
        "forecast accuracy run_date=%s window=%s..%s forecasts_in=%d shards=%d",
        run_date,
        start,
        end,
        points,
        len(demand.shards),
    )
    return written


def _scales(spill: Spill, name: str, part: int, keys: list[str]) -> pd.Series:
    """The MASE scales of a shard kept in the spill, by `keys` (empty when it has none)."""
    frame = spill.read(name, part)
    if frame is None:
        index = (
            pd.MultiIndex.from_arrays([[]] * len(keys), names=keys)
            if len(keys) > 1
            else pd.Index([], name=keys[0])
        )
        return pd.Series(dtype=float, index=index, name="scale")
    return frame.set_index(keys)["scale"]


def load_forecast_accuracy(cfg: Config, run_date: date, demand: NightDemand) -> LoadResult | None:
    """Score the archived forecasts of the night's actuals window (`score_night`) and load
    `seam_forecast_accuracy`.

    Reads `seam_forecasts` and `seam_forecasts_hierarchy` (scored as levels `hier_*`) from the
    forecasts' results database (`results.forecasts`), so run it after that night's forecasts and
    actuals are loaded; `demand` as `spill_demand` made it.  The night's rows are replaced in one
    transaction.  Weekly forecasts (`forecast.freq: W`) are not scored against daily actuals:
    None, with a warning.
    """
    if cfg.forecast.freq != "D":
        log.warning(
            "forecast accuracy for %s skipped: it scores daily forecasts against daily actuals, "
            "and forecast.freq is %r",
            run_date,
            cfg.forecast.freq,
        )
        return None
    engine = make_engine(
        results_url(cfg.source(cfg.results.forecasts)), write=True, what=f"source {cfg.results.forecasts!r}"
    )
    try:
        parts = score_night(engine, run_date, cfg.forecast.horizon, demand)
        spill = demand.spill
        empty = accuracy_rows(pd.DataFrame(), run_date)

        def rows() -> Iterator[pd.DataFrame]:
            if not parts:
                yield empty
            for name, k in parts:
                part = spill.read(name, k)
                assert part is not None  # written above
                yield part

        result = load_parts(engine, "seam_forecast_accuracy", run_date, rows)
    finally:
        engine.dispose()
    log.info("forecast accuracy run_date=%s rows_out=%d", run_date, result.rows)
    return result
