"""What the report needs of the night's order lines, read one shard of SKUs at a time.

    read_history(cfg, d, skus=..., entities=..., categories=...) -> ReportHistory

The report never holds the night's order lines: each shard of the night's plan (its SKUs, with all
their warehouses, which is what a demand series needs) is read, turned into demand series, and
reduced to what the report draws: the units per day of every category and of the total, of the
top SKUs it charts, the demand series of the incidents it shows, and the lines of the two days its
headline figures compare.  What it keeps grows with the number of categories, charts and incidents,
not with the order lines; a shard's lines are the most it holds at once.  Without a plan (the
forecast step has not run) the night's lines are one shard.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date

import pandas as pd

from pipelines.contracts import empty_frame
from pipelines.series import build_demand_series

#: The days of history the report's charts show.
HISTORY_DAYS = 120
NO_CATEGORY = "(no category)"
#: What the headline figures (orders, units, revenue) read of an order line.
HEADLINE_COLUMNS = ["order_date", "order_id", "line_no", "quantity", "unit_price"]


@dataclass
class ReportHistory:
    """The report's view of the order lines (each frame sorted by its keys)."""

    headline_lines: pd.DataFrame  # `headline_lines` of the night's order lines
    sku_hist: pd.DataFrame  # sku, ds, y: units per day of the requested SKUs, over all warehouses
    category_hist: pd.DataFrame  # category, ds, y: units per day of every category
    total_hist: pd.DataFrame  # ds, y: units per day of all products
    demand: pd.DataFrame  # the requested demand series (`build_demand_series` rows)


def headline_lines(lines: pd.DataFrame, run_date: date) -> pd.DataFrame:
    """The order lines the headline figures count: those of the night and of the same weekday a
    week before that are not cancelled, only their `HEADLINE_COLUMNS`."""
    day = pd.Timestamp(run_date)
    keep = lines["order_date"].isin([day, day - pd.Timedelta(days=7)])
    keep &= lines["status"].str.lower() != "cancelled"
    return lines.loc[keep, HEADLINE_COLUMNS]


def reduce_history(
    shards: Iterable[pd.DataFrame],
    run_date: date,
    *,
    skus: Collection[object],
    entities: Collection[str],
    categories: dict[object, str],
    history_days: int = HISTORY_DAYS,
) -> ReportHistory:
    """Reduce the order lines, given as shards of whole SKUs, to the report's `ReportHistory`.

    `skus`: the SKUs whose own history is kept; `entities`: the demand series (`unique_id`) kept
    whole; `categories`: SKU -> category (SKUs without one count as "(no category)")."""
    wanted_skus, wanted_ids = set(skus), set(entities)
    headline, by_sku, by_category, series = [], [], [], []
    for lines in shards:
        headline.append(headline_lines(lines, run_date))
        demand = build_demand_series(lines, None, end=run_date, history_days=history_days)
        per_sku = demand.groupby(["sku", "ds"], as_index=False)["y"].sum()
        by_sku.append(per_sku[per_sku["sku"].isin(wanted_skus)])
        category = per_sku["sku"].map(categories).fillna(NO_CATEGORY)
        by_category.append(
            per_sku.assign(category=category).groupby(["category", "ds"], as_index=False)["y"].sum()
        )
        series.append(demand[demand["unique_id"].isin(wanted_ids)])
        del lines, demand, per_sku
    if not headline:  # no shard at all: an empty night
        headline = [empty_frame("order_lines")[HEADLINE_COLUMNS]]
        empty = build_demand_series(empty_frame("order_lines"), None, end=run_date, history_days=history_days)
        series = [empty]
        by_sku = [empty.groupby(["sku", "ds"], as_index=False)["y"].sum()]
        by_category = [by_sku[0].assign(category=pd.Series(dtype=object))[["category", "ds", "y"]]]
    cat_hist = (
        pd.concat(by_category, ignore_index=True).groupby(["category", "ds"], as_index=False)["y"].sum()
    )
    return ReportHistory(
        # in one order whatever the plan's shards (the revenue's sum does not depend on them)
        headline_lines=pd.concat(headline, ignore_index=True)
        .sort_values(["order_date", "order_id", "line_no"], kind="stable")
        .reset_index(drop=True),
        sku_hist=pd.concat(by_sku, ignore_index=True)
        .sort_values(["sku", "ds"], kind="stable")
        .reset_index(drop=True),
        category_hist=cat_hist,
        total_hist=cat_hist.groupby("ds", as_index=False)["y"].sum(),
        demand=pd.concat(series, ignore_index=True)
        .sort_values(["unique_id", "ds"], kind="stable")
        .reset_index(drop=True),
    )
