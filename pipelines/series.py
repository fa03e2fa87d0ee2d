"""Build long `unique_id, ds, y` daily series from canonical datasets (pure transforms)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipelines.contracts import check_frame, source_local_ids
from pipelines.errors import DataError

SEP = "|"
METRIC_SEP = ":"
_ESCAPE = "\\"
Aggregate = Literal["count", "sum", "mean", "nunique"]
METRIC_DATASETS = {
    "demand": "order_lines",
    "revenue": "order_lines",
    "order_count": "order_lines",
    "tickets": "tickets",
    "pipeline_value": "opportunities",
}


def join_keys(*parts: pd.Series) -> pd.Series:
    """One text id for a composite key (a series' `unique_id`, a demand anomaly's `entity`).

    The parts are joined by `|` with `\\` and `|` inside a part escaped, so two different keys
    never give the same id ("A|B" + "C" is `A\\|B|C`, "A" + "B|C" is `A|B\\|C`), and keys without
    those characters read as before (`SKU1|WH1`). Ids are never split back into keys: the key
    columns travel beside them.
    """
    escaped = [
        p.astype(str)
        .str.replace(_ESCAPE, _ESCAPE * 2, regex=False)
        .str.replace(SEP, _ESCAPE + SEP, regex=False)
        for p in parts
    ]
    out = escaped[0]
    for part in escaped[1:]:
        out = out + SEP + part
    return out


def _net_lines(order_lines: pd.DataFrame) -> pd.DataFrame:
    lines = order_lines[order_lines["status"].str.lower() != "cancelled"]
    returned = lines["returned_quantity"].fillna(0.0) if "returned_quantity" in lines else 0.0
    out = lines.assign(net=lines["quantity"] - returned, day=lines["order_date"].dt.normalize())
    return out


def _fill_calendar(
    df: pd.DataFrame,
    end: pd.Timestamp,
    *,
    start: pd.Timestamp | None = None,
    fill: float = 0.0,
    first: pd.Series | None = None,
) -> pd.DataFrame:
    """Add every day from each series' first day (or `start`) to `end`, with `y = fill`.

    `first` (indexed by `unique_id`) overrides each series' first day, e.g. with an earlier day
    on which the series could already have sold.
    """
    if df.empty:
        return df
    first = df.groupby("unique_id", sort=True)["ds"].min() if first is None else first.sort_index()
    if start is not None:
        first = first.clip(lower=start)
    n_days = ((end - first).dt.days + 1).clip(lower=1).to_numpy()
    ids = np.repeat(first.index.to_numpy(), n_days)
    offsets = np.concatenate([np.arange(n) for n in n_days])
    ds = np.repeat(first.to_numpy(), n_days) + pd.to_timedelta(offsets, unit="D").to_numpy()
    grid = pd.DataFrame({"unique_id": ids, "ds": ds})
    out = grid.merge(df, on=["unique_id", "ds"], how="left")
    out["y"] = out["y"].fillna(fill)
    return out


def build_demand_series(
    order_lines: pd.DataFrame, stockouts: pd.DataFrame | None, *, end: date, history_days: int
) -> pd.DataFrame:
    """Net units per SKU x warehouse per day: `unique_id, ds, y, censored, sku, warehouse`.

    Net of returns and cancellations; stock-out days are `censored`.  Every day from the SKU's
    first sale *anywhere* (in any warehouse, up to `end`), or from the start of the window when
    that is later, to `end` is present, zero-filled.  A series therefore starts when its product
    could first have sold there, not at its own first sale: a warehouse that sold a product once
    in a long history has one order in a long series, not one order on day one of a short one
    (which made every sparse series look like daily demand).  Pass all warehouses of a SKU
    together (a shard of SKUs does).
    """
    check_frame(order_lines, "order_lines", stage="build_demand_series")
    end_ts = pd.Timestamp(end)
    start_ts = end_ts - pd.Timedelta(days=history_days - 1)
    lines = _net_lines(order_lines)
    lines = lines[lines["day"] <= end_ts]
    sku_first = lines.groupby("sku", sort=True)["day"].min()
    lines = lines[lines["day"] >= start_ts]
    daily = (
        lines.groupby(["sku", "warehouse", "day"], sort=True)["net"]
        .sum()
        .reset_index()
        .rename(columns={"day": "ds", "net": "y"})
    )
    daily["unique_id"] = join_keys(daily["sku"], daily["warehouse"])
    ids = daily.drop_duplicates("unique_id")
    # no lines at all (a report of a night whose order lines could not be read): no series
    first = (
        pd.Series(ids["sku"].map(sku_first).to_numpy(), index=ids["unique_id"].to_numpy())
        if len(ids)
        else None
    )
    out = _fill_calendar(daily[["unique_id", "ds", "y"]], end_ts, start=start_ts, first=first)
    out["censored"] = False
    if stockouts is not None and len(stockouts):
        so = stockouts.assign(
            unique_id=join_keys(stockouts["sku"], stockouts["warehouse"]),
            ds=pd.to_datetime(stockouts["day"]).dt.normalize(),
        )
        flag = out.set_index(["unique_id", "ds"]).index.isin(so.set_index(["unique_id", "ds"]).index)
        out["censored"] = flag
    if out.empty:
        out = out.assign(sku=pd.Series(dtype=object), warehouse=pd.Series(dtype=object))
    else:
        out = out.merge(ids[["unique_id", "sku", "warehouse"]], on="unique_id", how="left")
    return out.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class DailyRows:
    """What a non-demand metric aggregates per entity and day: `rows` (`entity, day, value`), the
    `aggregate` of their values, and the days on which the source reported anything at all (None:
    every day without rows counts as the aggregate of nothing)."""

    rows: pd.DataFrame
    aggregate: Aggregate
    reported: pd.DatetimeIndex | None = None


def metric_rows(metric: str, data: pd.DataFrame) -> DailyRows:
    """The rows a built-in metric other than demand aggregates (see `build_metric_series`)."""
    if metric in ("revenue", "order_count"):
        lines = _net_lines(data)
        reported = pd.DatetimeIndex(lines["day"].unique())
        frame = pd.DataFrame({"entity": lines["warehouse"], "day": lines["day"]})
        if metric == "revenue":
            # unit_price is the price charged per unit, after any discount
            return DailyRows(frame.assign(value=lines["net"] * lines["unit_price"]), "sum", reported)
        # in a union of sources, order 1001 of each source is its own order
        return DailyRows(frame.assign(value=source_local_ids(lines, "order_id")), "nunique", reported)
    if metric == "tickets":
        rows = data[data["ticket_id"].notna()]
        frame = pd.DataFrame(
            {
                "entity": rows["account_id"],
                "day": rows["opened_at"].dt.normalize(),
                "value": rows["ticket_id"],
            }
        )
        return DailyRows(frame, "count")
    if metric == "pipeline_value":
        if "created_at" not in data:
            raise DataError("metric pipeline_value needs opportunities.created_at; map it in the config")
        frame = pd.DataFrame(
            {"entity": data["account_id"], "day": data["created_at"].dt.normalize(), "value": data["amount"]}
        )
        return DailyRows(frame, "sum")
    raise DataError(f"unknown anomaly metric {metric!r}; known: {sorted(METRIC_DATASETS)}")


def custom_rows(metric: Any, data: pd.DataFrame) -> DailyRows:
    """The rows a custom anomaly metric (`pipelines.config.CustomMetric`) aggregates."""
    missing = [c for c in (metric.date, metric.column, *metric.entity) if c and c not in data.columns]
    if missing:
        raise DataError(
            f"anomaly.custom_metrics.{metric.name}: dataset {metric.dataset!r} has no columns {missing}; "
            f"it has {list(data.columns)}"
        )
    entity = join_keys(*(data[c] for c in metric.entity)) if metric.entity else "all"
    frame = pd.DataFrame(
        {
            "entity": entity,
            "day": pd.to_datetime(data[metric.date]).dt.normalize(),
            "value": data[metric.column] if metric.column else 1,
        },
        index=data.index,
    )
    return DailyRows(frame, metric.aggregate)


def aggregate_daily(rows: DailyRows) -> pd.DataFrame:
    """`entity, day, y`: the aggregate of the rows' values per entity and day."""
    grouped = rows.rows.groupby(["entity", "day"])
    g = grouped.size() if rows.aggregate == "count" else getattr(grouped["value"], rows.aggregate)()
    return g.rename("y").reset_index()


def series_from_daily(
    name: str,
    daily: pd.DataFrame,
    aggregate: Aggregate,
    reported: pd.DatetimeIndex | None,
    *,
    end: date,
    history_days: int,
) -> pd.DataFrame:
    """A metric's long frame `unique_id ('<name>:<entity>'), ds, y, metric, entity` from its
    aggregate per entity and day (`aggregate_daily`)."""
    end_ts = pd.Timestamp(end)
    start_ts = end_ts - pd.Timedelta(days=history_days - 1)
    df = daily.rename(columns={"day": "ds"})
    df = df[(df["ds"] >= start_ts) & (df["ds"] <= end_ts)].copy()
    df["unique_id"] = name + METRIC_SEP + df["entity"].astype(str)
    values = df[["unique_id", "ds", "y"]].astype({"y": float})
    if reported is not None:
        # A day on which the source has rows, but none of an entity, is a day that entity sold
        # nothing: 0 (a quiet warehouse has many). A day without any row at all is missing, not
        # zero: NaN, scored as `missing` for series that usually report every day (an interface that
        # dropped a day); so is a warehouse-day the interface dropped while others arrived, as a
        # value of 0 far below its usual range.
        out = _fill_calendar(values, end_ts, start=start_ts, fill=np.nan)
        out.loc[out["y"].isna() & out["ds"].isin(reported), "y"] = 0.0
    else:
        # days without rows count 0 for counts and sums, and are missing for means and distinct counts
        fill = 0.0 if aggregate in ("count", "sum") else np.nan
        out = _fill_calendar(values, end_ts, start=start_ts, fill=fill)
    return _with_keys(out, df, name, None)


def build_metric_series(metric: str, data: pd.DataFrame, *, end: date, history_days: int) -> pd.DataFrame:
    """One anomaly metric as a long frame `unique_id ('<metric>:<entity>'), ds, y, metric, entity`.

    Demand series (entity: `join_keys(sku, warehouse)`) also carry their `sku` and `warehouse`.
    Revenue and order counts are missing (not zero) on days without any order line.
    """
    if metric != "demand":
        rows = metric_rows(metric, data)
        return series_from_daily(
            metric, aggregate_daily(rows), rows.aggregate, rows.reported, end=end, history_days=history_days
        )
    end_ts = pd.Timestamp(end)
    start_ts = end_ts - pd.Timedelta(days=history_days - 1)
    lines = _net_lines(data)
    lines = lines.assign(entity=join_keys(lines["sku"], lines["warehouse"]))
    keys = lines.drop_duplicates("entity")[["entity", "sku", "warehouse"]]
    g = lines.groupby(["entity", "day"])["net"].sum()
    df = g.rename("y").reset_index().rename(columns={"day": "ds"})
    df = df[(df["ds"] >= start_ts) & (df["ds"] <= end_ts)]
    df["unique_id"] = metric + METRIC_SEP + df["entity"].astype(str)
    out = _fill_calendar(df[["unique_id", "ds", "y"]].astype({"y": float}), end_ts, start=start_ts, fill=0.0)
    return _with_keys(out, df, metric, keys)


def _with_keys(out: pd.DataFrame, df: pd.DataFrame, metric: str, keys: pd.DataFrame | None) -> pd.DataFrame:
    """Add `metric` and `entity` (and the demand keys) to the filled series, by id, not by parsing it."""
    entity = df[["unique_id", "entity"]].drop_duplicates("unique_id")
    if keys is not None:
        entity = entity.merge(keys, on="entity", how="left")
    out = out.assign(metric=metric).merge(entity.astype({"entity": str}), on="unique_id", how="left")
    return out.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)


def build_custom_series(metric: Any, data: pd.DataFrame, *, end: date, history_days: int) -> pd.DataFrame:
    """A custom anomaly metric (`pipelines.config.CustomMetric`) as a long frame, like
    `build_metric_series`: the aggregate per entity and day; days without rows count 0 for counts
    and sums, and are missing (not zero) for means and distinct counts."""
    rows = custom_rows(metric, data)
    return series_from_daily(
        metric.name, aggregate_daily(rows), rows.aggregate, None, end=end, history_days=history_days
    )
