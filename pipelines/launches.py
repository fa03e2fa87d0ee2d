"""Product launches: products the ERP says go on sale (`products.launch_date`) that have not sold
anywhere yet.

Such a product has no order line, so no demand series: without this it would get no forecast at
all. The plan step lists the night's launches (`plan_launches`: a product whose launch date is on
or before the end of the horizon, in every warehouse where its category sells) and records them
with the shard plan; the forecast step gives each launch a series (`launch_series`: zeros since a
launch date already passed, nothing observed for one still ahead), which the forecaster treats as
a new product, forecast from its category's peers in that warehouse
(`pipelines.forecasting.peers`); and its forecast is held at 0 before the launch date
(`hold_until_launch`), its explanation saying when it launches. Once a launched product sells,
its order lines make it an ordinary series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Config
from pipelines.lake import read_dataset
from pipelines.quality import blocked_datasets
from pipelines.series import join_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Launch:
    """One warehouse's series of a product launching: its SKU, the warehouse and the first day
    the product is on sale."""

    sku: str
    warehouse: str
    launch_date: date

    def to_list(self) -> list[str]:
        return [self.sku, self.warehouse, self.launch_date.isoformat()]

    @classmethod
    def from_list(cls, row: list[str]) -> Launch:
        return cls(row[0], row[1], date.fromisoformat(row[2]))


def horizon_end(cfg: Config, d: date) -> date:
    """The last day the night's forecast covers (weekly: the Sunday ending its last week)."""
    if cfg.forecast.freq == "D":
        return d + timedelta(days=cfg.forecast.horizon)
    return d + timedelta(days=7 * cfg.forecast.horizon + 6)


def plan_launches(cfg: Config, d: date, sold: Iterable[tuple[Any, Any]]) -> list[Launch]:
    """The night's launches: every product with a launch date up to the horizon's end and no
    order line at all, in each warehouse where a product of its category sold (`sold`: the
    night's SKU x warehouse pairs with order lines). None without a usable products dataset or
    its `launch_date` column."""
    if not cfg.has_dataset("products") or blocked_datasets(cfg, d, ["products"]):
        return []
    products = read_dataset(cfg, "products", d)
    if "launch_date" not in products.columns or not products["launch_date"].notna().any():
        return []
    pairs = pd.DataFrame(list(sold), columns=["sku", "warehouse"])
    category = dict(zip(products["sku"], products["category"], strict=True))
    pairs["category"] = pairs["sku"].map(category)
    warehouses = pairs.dropna(subset=["category"]).groupby("category")["warehouse"].unique()
    launch = pd.to_datetime(products["launch_date"]).dt.date
    upcoming = products[
        launch.notna() & (launch <= horizon_end(cfg, d)) & ~products["sku"].isin(pairs["sku"])
    ].assign(day=launch)
    # a product that several sources list (one dataset fed by two ERPs) launches once, first date
    upcoming = upcoming.sort_values(["sku", "day"]).drop_duplicates("sku")
    out: list[Launch] = []
    for sku, cat, day in zip(upcoming["sku"], upcoming["category"], upcoming["day"], strict=True):
        where = sorted(warehouses.get(cat, []), key=str)
        if not where:
            log.warning(
                "product %s launches on %s but no product of its category %r sold in any warehouse: "
                "it gets no forecast until it sells",
                sku,
                day,
                cat,
            )
        out += [Launch(str(sku), str(wh), day) for wh in where]
    return sorted(out, key=lambda x: (x.sku, x.warehouse))


def launch_series(launches: Iterable[Launch], end: date, history_days: int) -> pd.DataFrame:
    """Daily demand series of launches (the columns of `pipelines.series.build_demand_series`):
    0 on every day from a launch date already passed (the product was on sale and did not sell)
    to `end`, within the last `history_days`; a single unobserved day (`end`, NaN) for a launch
    still ahead."""
    start = pd.Timestamp(end) - pd.Timedelta(days=history_days - 1)
    parts = []
    for x in launches:
        first = max(pd.Timestamp(x.launch_date), start)
        days = pd.date_range(first, pd.Timestamp(end), freq="D")
        y = np.zeros(len(days))
        if not len(days):  # launching after `end`: nothing observed yet
            days, y = pd.DatetimeIndex([pd.Timestamp(end)]), np.array([np.nan])
        parts.append(pd.DataFrame({"sku": x.sku, "warehouse": x.warehouse, "ds": days, "y": y}))
    if not parts:
        return pd.DataFrame(
            {
                "unique_id": pd.Series(dtype=object),
                "ds": pd.Series(dtype="datetime64[ns]"),
                "y": pd.Series(dtype=float),
                "censored": pd.Series(dtype=bool),
                "sku": pd.Series(dtype=object),
                "warehouse": pd.Series(dtype=object),
            }
        )
    frame = pd.concat(parts, ignore_index=True)
    frame["unique_id"] = join_keys(frame["sku"], frame["warehouse"])
    frame["censored"] = False
    return frame[["unique_id", "ds", "y", "censored", "sku", "warehouse"]]


def hold_until_launch(fc: pd.DataFrame, launches: Iterable[Launch], freq: str) -> pd.DataFrame:
    """The forecaster's output with each launch's periods before its launch date at 0 (bounds
    too; a week it launches in scaled by its days on sale) and `new_product` saying when it
    launches."""
    by_id = {join_keys(pd.Series([x.sku]), pd.Series([x.warehouse]))[0]: x for x in launches}
    if not by_id or fc.empty:
        return fc
    out = fc.copy()
    period_days = 1 if freq == "D" else 7
    launch = pd.to_datetime(out["unique_id"].map({k: x.launch_date for k, x in by_id.items()}))
    mine = launch.notna().to_numpy()
    # days of each period (ending on `ds`) from the launch date on
    on_sale = ((pd.to_datetime(out["ds"]) - launch).dt.days + 1).clip(0, period_days) / period_days
    share = np.where(mine, on_sale.fillna(1.0).to_numpy(), 1.0)
    for col in [c for c in out.columns if c == "yhat" or c.startswith(("yhat_lo_", "yhat_hi_"))]:
        out[col] = out[col].to_numpy() * share
    for col in ("level", "seasonal"):
        if col in out.columns:
            out[col] = out[col].to_numpy() * share
    notes = {k: f"launches on {x.launch_date.isoformat()}" for k, x in by_id.items()}
    current = out["new_product"] if "new_product" in out.columns else pd.Series(None, index=out.index)
    values = [
        (f"{notes[uid]}; {how}" if isinstance(how, str) and how else notes[uid]) if uid in notes else how
        for uid, how in zip(out["unique_id"], current.astype(object), strict=True)
    ]
    out["new_product"] = pd.Series(values, index=out.index, dtype=object)
    return out
