"""What the report needs of the night's outputs (forecasts, the forecast hierarchy; the anomaly
scores' flagged series come from `pipelines.inputs.flagged_scores`),
read one shard at a time and reduced as it goes.

    summarize_forecasts(lake, night, ...) -> ForecastSummary   top SKUs and their rows, category and
                                                                total sums per day, "known ahead"
    hierarchy_levels(lake, night) -> DataFrame | None           the total and category levels

A report holds the rows it draws and sums per category and day; what it reads grows with a shard,
not with the night's number of series.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from pipelines.lake import Lake
from pipelines.report.history import NO_CATEGORY

BANDS = ["yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"]


@dataclass
class ForecastSummary:
    """A night's forecasts as the report draws them."""

    sku_units: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # units per SKU
    sku_rows: pd.DataFrame = field(default_factory=pd.DataFrame)  # every row of the requested SKUs
    category_bands: pd.DataFrame = field(default_factory=pd.DataFrame)  # category, target_date, BANDS
    by_date: pd.DataFrame = field(default_factory=pd.DataFrame)  # target_date, yhat: all series
    drivers: list[dict[str, Any]] = field(default_factory=list)  # per SKU a promotion or holiday moves
    new: list[dict[str, Any]] = field(default_factory=list)  # per new product or launch
    models: list[str] = field(default_factory=list)
    model_version: str | None = None
    series: int = 0
    rows: int = 0

    def top(self, n: int) -> list[Any]:
        """The `n` SKUs with the most units forecast (ties: in SKU order)."""
        return list(self.sku_units.nlargest(n).index)


def known_ahead_items(
    forecasts: pd.DataFrame, names: dict[Any, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The report's "known ahead" entries of forecast rows holding whole SKUs (a shard): the SKUs a
    promotion or holiday moves (its days, what the forecaster expects, the units forecast on those
    days) and the new products and launches (the launch date, the units over the horizon)."""
    if not len(forecasts) or "explanation" not in forecasts.columns:
        return [], []
    notes = forecasts["explanation"].map(json.loads)
    rows = forecasts.assign(
        driver=notes.map(lambda e: e.get("drivers")), new=notes.map(lambda e: e.get("new_product"))
    )
    drivers = []
    for sku, part in rows[rows["driver"].notna()].groupby("sku", sort=True):
        days = pd.to_datetime(part["target_date"])
        drivers.append(
            {
                "sku": sku,
                "name": names.get(sku, ""),
                "first": days.min().date(),
                "last": days.max().date(),
                "what": part["driver"].value_counts().index[0],
                "warehouses": int(part["warehouse"].nunique()),
                "units": float(part["yhat"].sum()),
            }
        )
    new = []
    for sku, part in rows[rows["new"].notna()].groupby("sku", sort=True):
        how = str(part["new"].iloc[0])
        launch = how.split(";")[0].removeprefix("launches on ") if how.startswith("launches on ") else None
        new.append(
            {
                "sku": sku,
                "name": names.get(sku, ""),
                "launch": launch,
                "warehouses": int(part["warehouse"].nunique()),
                "units": float(part["yhat"].sum()),
            }
        )
    return drivers, new


def known_ahead_section(drivers: list[dict[str, Any]], new: list[dict[str, Any]], top: int) -> dict[str, Any]:
    """The report's "known ahead" section from every SKU's entries (`known_ahead_items`): the `top`
    of each kind by units (ties: in SKU order), and how many there are."""
    return {
        "drivers": sorted(drivers, key=_by_units)[:top],
        "n_drivers": len(drivers),
        "new": sorted(new, key=_by_units)[:top],
        "n_new": len(new),
    }


def _by_units(item: dict[str, Any]) -> tuple[float, str]:
    return -float(item["units"]), str(item["sku"])


def reduce_forecasts(
    shards: Iterable[pd.DataFrame],
    *,
    categories: dict[Any, str],
    names: dict[Any, str] | None = None,
    skus: Collection[Any] | None = None,
    known: bool = True,
) -> ForecastSummary:
    """Reduce a night's forecasts, given as shards of whole SKUs, to a `ForecastSummary`; `skus`: the
    SKUs whose rows are kept (None: none; `summarize_forecasts` reads the top ones afterwards);
    `known`: with the "known ahead" entries (named by `names`)."""
    out = ForecastSummary()
    units, rows, bands, by_date = [], [], [], []
    models: set[str] = set()
    for part in shards:
        if not len(part):
            continue
        if out.model_version is None:
            out.model_version = part["model_version"].iloc[0]
        out.rows += len(part)
        out.series += len(part[["sku", "warehouse"]].drop_duplicates())
        models.update(part["model"].unique())
        units.append(part.groupby("sku")["yhat"].sum())
        if skus is not None:
            rows.append(part[part["sku"].isin(set(skus))])
        with_category = part.assign(category=part["sku"].map(categories).fillna(NO_CATEGORY))
        bands.append(with_category.groupby(["category", "target_date"], as_index=False)[BANDS].sum())
        by_date.append(part.groupby("target_date", as_index=False)["yhat"].sum())
        if known:
            drivers, new = known_ahead_items(part, names or {})
            out.drivers += drivers
            out.new += new
    if out.rows:
        out.sku_units = pd.concat(units).groupby(level=0).sum().sort_index()
        out.category_bands = (
            pd.concat(bands, ignore_index=True)
            .groupby(["category", "target_date"], as_index=False)[BANDS]
            .sum()
        )
        out.by_date = (
            pd.concat(by_date, ignore_index=True).groupby("target_date", as_index=False)["yhat"].sum()
        )
        if rows:
            out.sku_rows = pd.concat(rows, ignore_index=True)
    out.models = sorted(models)
    return out


def summarize_forecasts(
    lake: Lake, night: date, *, top: int, categories: dict[Any, str], names: dict[Any, str]
) -> ForecastSummary:
    """A complete night's forecasts reduced shard by shard, with the rows of its `top` SKUs."""
    summary = reduce_forecasts(lake.iter_output("forecasts", night), categories=categories, names=names)
    wanted = summary.top(top)
    if wanted:
        summary.sku_rows = rows_of(lake, night, wanted)
    return summary


def rows_of(lake: Lake, night: date, skus: list[Any]) -> pd.DataFrame:
    """Every forecast row of `skus` on a complete night (pushed down to the Parquet files)."""
    parts = list(lake.iter_output("forecasts", night, filters=[("sku", "in", list(skus))]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def hierarchy_levels(lake: Lake, night: date) -> pd.DataFrame | None:
    """The total and category levels of a night's reconciled forecasts (None when the reconcile step
    made none)."""
    if lake.complete_shards("forecast_hierarchy", night) is None:
        return None
    # one test of equality per level: the reader skips the row groups of the other levels (the
    # reconcile step writes each level in row groups of its own)
    levels = [[("level", "==", "total")], [("level", "==", "category")]]
    parts = list(lake.iter_output("forecast_hierarchy", night, filters=levels))
    return pd.concat(parts, ignore_index=True)
