"""Forecast accuracy by lag, per series, per category and overall (`seam_forecast_accuracy`).

Each night scores the archived forecasts (`seam_forecasts`, every night kept) whose target dates
fall in the actuals window that night loads: the last `horizon + 7` days up to the night.  A point
is one archived forecast (run_date, sku, warehouse, target_date) joined to the actual of that
series and day; `lag_days = target_date - run_date`.  Per level (`series`: entity `sku|warehouse`;
`category`: the product category; `all`: entity `all`) and lag:

- WAPE = sum |actual - yhat| / sum |actual|, NULL when the actuals sum to 0;
- bias = (sum yhat - sum actual) / sum |actual| (> 0: over-forecast), NULL likewise;
- MASE = mean over the points of |actual - yhat| / scale of the point's series, where the scale is
  the in-sample mean absolute seasonal-naive error, mean |y_t - y_(t-7)|, of the series' daily
  demand *before* the window (the days of the lake's demand series that have a value 7 days
  earlier).  For a series this is its mean absolute error divided by its scale; for a category
  and for `all` it is the mean of the scaled absolute errors pooled over the group's points.  Points
  whose series has no such history or a scale of 0 (a constant history) are left out; `mase_points`
  says how many were used, and MASE is NULL when none were (never infinite);
- coverage_80/95 = share of actuals inside the 80 %/95 % interval (bounds included).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, timedelta

import numpy as np
import pandas as pd

from pipelines.errors import DataError
from pipelines.results import RESULT_TABLES
from pipelines.series import build_demand_series, join_keys

log = logging.getLogger(__name__)

SEASON = 7  # days: the seasonal-naive forecast of a day is the same weekday one week earlier
LEVELS = ("series", "category", "all")
NO_CATEGORY = "(no category)"
ACCURACY_COLUMNS = RESULT_TABLES["seam_forecast_accuracy"].columns
_FORECASTS, _ACTUALS = RESULT_TABLES["seam_forecasts"], RESULT_TABLES["seam_actuals"]
# the key of an archived forecast and the figures scored; not its model metadata
FORECAST_COLUMNS = (*_FORECASTS.key, "yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95")
_INPUTS = {
    "forecasts": (FORECAST_COLUMNS, _FORECASTS.key),
    "actuals": (_ACTUALS.columns, _ACTUALS.key),
    "history": (("sku", "warehouse", "ds", "y"), ("sku", "warehouse", "ds")),
    "categories": (("sku", "category"), ("sku",)),
}


def accuracy_window(run_date: date, horizon: int) -> tuple[date, date]:
    """First and last day of the actuals a night loads and scores: the last `horizon + 7` days."""
    if horizon < 1:
        raise DataError(f"`horizon` must be >= 1, got {horizon}; set forecast.horizon in the config")
    return run_date - timedelta(days=horizon + 6), run_date


def _check(df: pd.DataFrame, name: str) -> None:
    columns, key = _INPUTS[name]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"build_forecast_accuracy: `{name}` lacks columns {missing}; got {list(df.columns)}")
    nulls = df[list(columns)].isna().any(axis=1)
    if nulls.any():
        example = df.loc[nulls, list(columns)].iloc[0].to_dict()
        raise DataError(
            f"build_forecast_accuracy: `{name}` has {int(nulls.sum())} rows with nulls, e.g. {example}; "
            f"every value of {list(columns)} is needed"
        )
    dups = df.duplicated(list(key))
    if dups.any():
        example = df.loc[dups, list(key)].iloc[0].to_dict()
        raise DataError(
            f"build_forecast_accuracy: `{name}` has {int(dups.sum())} duplicate keys {list(key)}, "
            f"e.g. {example}"
        )


def build_mase_scale(history: pd.DataFrame) -> pd.Series:
    """Per (sku, warehouse): mean |y_t - y_(t-7)| over the days that have a value a week earlier.

    NaN where the series has no such pair or the mean is 0 (a constant history): MASE is then
    undefined for that series, not infinite.
    """
    h = history[["sku", "warehouse", "ds", "y"]].assign(ds=pd.to_datetime(history["ds"]))
    week_ago = h.assign(ds=h["ds"] + pd.Timedelta(days=SEASON)).rename(columns={"y": "y_season"})
    pairs = h.merge(week_ago, on=["sku", "warehouse", "ds"], how="inner")
    err = (pairs["y"] - pairs["y_season"]).abs()
    scale = err.groupby([pairs["sku"], pairs["warehouse"]]).mean()
    return scale.where(scale > 0).rename("scale")


def build_forecast_accuracy(
    forecasts: pd.DataFrame,
    actuals: pd.DataFrame,
    history: pd.DataFrame | None,
    categories: pd.DataFrame | None,
    *,
    run_date: date,
    scale: pd.Series | None = None,
) -> pd.DataFrame:
    """Rows of `seam_forecast_accuracy` for the night `run_date` (see the module docstring).

    `forecasts`: archived forecasts (`FORECAST_COLUMNS`); `actuals`: `sku, warehouse, ds, actual`
    of the window; `history`: `sku, warehouse, ds, y`, the daily demand before the window (for the
    MASE scale), or None and `scale`, the scales themselves (`build_mase_scale` of that history,
    as `pipelines.load.accuracy.spill_demand` keeps them); `categories`: `sku, category` (None: no `category` rows).
    Forecasts without an actual are not scored.  Returns one row per level, entity and lag, sorted.
    """
    if (history is None) == (scale is None):
        raise ValueError("build_forecast_accuracy: pass either `history` or `scale`")
    for name, df in (("forecasts", forecasts), ("actuals", actuals)):
        _check(df, name)
    if history is not None:
        _check(history, "history")
    if categories is not None:
        _check(categories, "categories")
    if (
        history is not None
        and len(history)
        and len(actuals)
        and pd.to_datetime(history["ds"]).max() >= pd.to_datetime(actuals["ds"]).min()
    ):
        raise DataError(
            "build_forecast_accuracy: `history` must end before the first day of `actuals` "
            f"({pd.to_datetime(actuals['ds']).min().date()}), got history up to "
            f"{pd.to_datetime(history['ds']).max().date()}; pass only the days before the window"
        )
    scales = build_mase_scale(history) if history is not None else scale
    assert scales is not None
    return accuracy_rows(forecast_partials(forecasts, actuals, scales, categories), run_date)


def forecast_partials(
    forecasts: pd.DataFrame, actuals: pd.DataFrame, scale: pd.Series, categories: pd.DataFrame | None
) -> pd.DataFrame:
    """`partial_accuracy` of every level (`series`, `category` when `categories` are given, `all`)
    of the points of `forecasts` and `actuals` (checked as by `build_forecast_accuracy`), with the
    MASE `scale` of every series.  Given whole series (a shard of SKUs), a series' rows are
    complete; `accuracy_rows` of the partials of every shard together sums the other levels."""
    for name, df in (("forecasts", forecasts), ("actuals", actuals)):
        _check(df, name)
    act = actuals[["sku", "warehouse", "ds", "actual"]].rename(columns={"ds": "target_date"})
    act = act.assign(target_date=pd.to_datetime(act["target_date"]), actual=act["actual"].astype(float))
    fc = forecasts[list(FORECAST_COLUMNS)].assign(
        run_date=pd.to_datetime(forecasts["run_date"]), target_date=pd.to_datetime(forecasts["target_date"])
    )
    pts = fc.merge(act, on=["sku", "warehouse", "target_date"], how="inner")
    # Float sums depend on the order of their terms: a fixed order gives bit-identical rows (and
    # the same batch checksum) however the archive was read.
    pts = pts.sort_values(["sku", "warehouse", "run_date", "target_date"], kind="stable", ignore_index=True)
    if pts.empty:
        return pd.DataFrame(columns=list(PARTIAL_COLUMNS))
    pts = pts.merge(scale.rename("scale").reset_index(), on=["sku", "warehouse"], how="left")
    pts = _score_points(pts)
    entities = {"series": join_keys(pts["sku"], pts["warehouse"]), "all": pd.Series("all", index=pts.index)}
    if categories is not None:
        category = pts["sku"].map(dict(zip(categories["sku"], categories["category"], strict=True)))
        if category.isna().any():
            log.warning(
                "forecast accuracy: %d SKUs have no product category; they count as %r",
                pts.loc[category.isna(), "sku"].nunique(),
                NO_CATEGORY,
            )
        entities["category"] = category.fillna(NO_CATEGORY).astype(str)
    return pd.concat(
        [partial_accuracy(pts.assign(level=lv, entity=entities[lv])) for lv in LEVELS if lv in entities],
        ignore_index=True,
    )


#: What `partial_accuracy` keeps of a group of points, which adds up over parts of the group:
#: column -> (the points' column it is made of, how, how the parts' values combine).
_PARTS = {
    "n_points": ("actual", "size", "sum"),
    "mase_points": ("scaled_error", "count", "sum"),
    "sum_actual": ("actual", "sum", "sum"),
    "sum_forecast": ("yhat", "sum", "sum"),
    "sum_abs_error": ("abs_error", "sum", "sum"),
    "sum_abs_actual": ("abs_actual", "sum", "sum"),
    "sum_scaled_error": ("scaled_error", "sum", "sum"),
    "n_in_80": ("in_80", "sum", "sum"),
    "n_in_95": ("in_95", "sum", "sum"),
    "first_run_date": ("run_date", "min", "min"),
    "last_run_date": ("run_date", "max", "max"),
}
_GROUP = ["level", "entity", "lag_days"]
#: The columns of `partial_accuracy`.
PARTIAL_COLUMNS = (*_GROUP, *_PARTS)


def partial_accuracy(pts: pd.DataFrame) -> pd.DataFrame:
    """Per level, entity and lag of scored points (`_score_points`, with `level` and `entity`):
    the counts and sums every figure is made of (`PARTIAL_COLUMNS`), so that the points of a group
    may be scored in parts (one shard of series at a time) and the parts added up
    (`accuracy_rows`)."""
    made = {name: (column, how) for name, (column, how, _) in _PARTS.items()}
    return pts.groupby(_GROUP, sort=True).agg(**made).reset_index()


def accuracy_rows(partials: pd.DataFrame, run_date: date) -> pd.DataFrame:
    """Rows of `seam_forecast_accuracy` for the night from `partial_accuracy` rows (a group's
    parts added up): one row per level, entity and lag, in the order of `LEVELS` and then of
    `HIERARCHY_LEVELS`, each by entity and lag."""
    if not len(partials):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ACCURACY_COLUMNS})
    combined = {name: (name, how) for name, (_, _, how) in _PARTS.items()}
    out = (
        partials.groupby(_GROUP, sort=True)
        .agg(**combined)
        .reset_index()
        .astype({"n_points": "int64", "mase_points": "int64"})
    )
    denominator = out["sum_abs_actual"].where(out["sum_abs_actual"] > 0)
    out["wape"] = out["sum_abs_error"] / denominator
    out["bias"] = (out["sum_forecast"] - out["sum_actual"]) / denominator
    mase = out["sum_scaled_error"] / out["mase_points"].where(out["mase_points"] > 0)
    out["mase"] = mase.replace([np.inf, -np.inf], np.nan)
    out["coverage_80"] = out["n_in_80"] / out["n_points"]
    out["coverage_95"] = out["n_in_95"] / out["n_points"]
    out.insert(0, "run_date", pd.Timestamp(run_date))
    order = {lv: i for i, lv in enumerate((*LEVELS, *HIERARCHY_LEVELS.values()))}
    out = out.assign(_order=out["level"].map(order)).sort_values(
        ["_order", "entity", "lag_days"], kind="stable"
    )
    return out[list(ACCURACY_COLUMNS)].reset_index(drop=True)


def _score_points(pts: pd.DataFrame) -> pd.DataFrame:
    """Each point's lag, absolute and scaled error, and whether its bands hold the actual."""
    pts = pts.copy()
    pts["lag_days"] = (pts["target_date"] - pts["run_date"]).dt.days.astype("int64")
    pts["abs_error"] = (pts["actual"] - pts["yhat"]).abs()
    pts["abs_actual"] = pts["actual"].abs()
    pts["scaled_error"] = pts["abs_error"] / pts["scale"]
    pts["in_80"] = ((pts["actual"] >= pts["yhat_lo_80"]) & (pts["actual"] <= pts["yhat_hi_80"])).astype(float)
    pts["in_95"] = ((pts["actual"] >= pts["yhat_lo_95"]) & (pts["actual"] <= pts["yhat_hi_95"])).astype(float)
    return pts


# the reconciled forecasts of every level of the hierarchy (`seam_forecasts_hierarchy`)
HIERARCHY_LEVELS = {
    "total": "hier_total",
    "category": "hier_category",
    "category_warehouse": "hier_cat_wh",
    "sku": "hier_sku",
    "sku_warehouse": "hier_sku_wh",
}
HIERARCHY_COLUMNS = ("run_date", "level", "series_key", "target_date", *FORECAST_COLUMNS[4:])


def build_hierarchy_accuracy(
    forecasts: pd.DataFrame,
    actuals: pd.DataFrame,
    history: pd.DataFrame | None,
    categories: pd.DataFrame | None,
    *,
    run_date: date,
    node_scale: pd.Series | None = None,
) -> pd.DataFrame:
    """Rows of `seam_forecast_accuracy` for the archived reconciled forecasts of every level
    (`forecasts`: rows of `seam_forecasts_hierarchy`, `HIERARCHY_COLUMNS`), scored against the
    actuals summed to each node: levels `hier_total`, `hier_category`, `hier_cat_wh`, `hier_sku`,
    `hier_sku_wh` (`HIERARCHY_LEVELS`), entity = the node's `series_key`.  MASE's scale is the
    node's own in-sample mean absolute weekly difference (of the summed history); otherwise the
    figures are those of the module docstring.  `actuals`, `history`, `categories` as for
    `build_forecast_accuracy`; instead of `history`, `node_scale` may give the scales themselves
    (per `series_key`, as `pipelines.load.accuracy.spill_demand` keeps them)."""
    missing = [c for c in HIERARCHY_COLUMNS if c not in forecasts.columns]
    if missing:
        raise DataError(f"build_hierarchy_accuracy: `forecasts` lacks columns {missing}")
    if (history is None) == (node_scale is None):
        raise ValueError("build_hierarchy_accuracy: pass either `history` or `node_scale`")
    scales = node_scales([history], categories) if history is not None else node_scale
    assert scales is not None
    nodes = node_actuals(actuals, categories)
    return accuracy_rows(hierarchy_partials(forecasts, nodes, scales), run_date)


def node_actuals(actuals: pd.DataFrame, categories: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """Per level of the hierarchy, the `actuals` (`sku, warehouse, ds, actual`) summed to its
    nodes: `series_key, target_date, actual`.  Given whole SKUs (a shard), the nodes of the levels
    of SKUs are complete; the others are the shard's part of their sums."""
    from pipelines.forecasting.hierarchy import LEVEL_KEYS, series_keys
    from pipelines.forecasting.hierarchy import NO_CATEGORY as NONE

    cat = dict(zip(categories["sku"], categories["category"], strict=True)) if categories is not None else {}
    act = actuals.assign(ds=pd.to_datetime(actuals["ds"]), category=actuals["sku"].map(cat).fillna(NONE))
    out = {}
    for level in HIERARCHY_LEVELS:
        keys = list(LEVEL_KEYS[level])
        a = (
            act.groupby([*keys, "ds"], as_index=False)["actual"].sum()
            if keys
            else act.groupby("ds", as_index=False)["actual"].sum()
        )
        a = a.assign(series_key=series_keys(level, a)).rename(columns={"ds": "target_date"})
        out[level] = a[["series_key", "target_date", "actual"]]
    return out


def hierarchy_partials(
    forecasts: pd.DataFrame, nodes: dict[str, pd.DataFrame], node_scale: pd.Series
) -> pd.DataFrame:
    """`partial_accuracy` of the reconciled forecasts of every level (`forecasts`: rows of
    `seam_forecasts_hierarchy`) against the actuals of their nodes (`node_actuals`, complete for
    the nodes given), with the MASE scale of every node (`node_scale`, per `series_key`)."""
    fc = forecasts[list(HIERARCHY_COLUMNS)].assign(
        run_date=pd.to_datetime(forecasts["run_date"]), target_date=pd.to_datetime(forecasts["target_date"])
    )
    scale = node_scale.rename("scale").rename_axis("series_key").reset_index()
    parts = []
    for level, name in HIERARCHY_LEVELS.items():
        mine = fc[fc["level"] == level]
        if mine.empty or level not in nodes:
            continue
        pts = mine.merge(nodes[level], on=["series_key", "target_date"])
        pts = pts.sort_values(["series_key", "run_date", "target_date"], kind="stable", ignore_index=True)
        if pts.empty:
            continue
        pts = _score_points(
            pts.merge(scale, on="series_key", how="left").assign(actual=lambda f: f["actual"].astype(float))
        )
        parts.append(partial_accuracy(pts.assign(level=name, entity=pts["series_key"])))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(PARTIAL_COLUMNS))


def build_actuals(
    order_lines: pd.DataFrame, *, run_date: date, horizon: int, history_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observed net demand for the accuracy of the forecasts: `(actuals, history)`.

    `actuals` (rows of `seam_actuals`): every day of the last horizon + 7 days (a week of late
    corrections) per SKU x warehouse that sold before, 0 on days without sales.  `history`
    (`sku, warehouse, ds, y`): the `history_days` before that window, the MASE scale.
    """
    start, _ = accuracy_window(run_date, horizon)
    days = (run_date - start).days + 1
    series = build_demand_series(order_lines, None, end=run_date, history_days=history_days + days)
    in_window = series["ds"] >= pd.Timestamp(start)
    window = series[in_window]
    actuals = pd.DataFrame(
        {
            "sku": window["sku"],
            "warehouse": window["warehouse"],
            "ds": window["ds"],
            "actual": window["y"].astype(float),
        }
    ).reset_index(drop=True)
    history = series.loc[~in_window, ["sku", "warehouse", "ds", "y"]].reset_index(drop=True)
    return actuals, history


def _node_history(history: pd.DataFrame, level: str) -> pd.DataFrame:
    """`series_key, ds, y`: the daily history (`sku, warehouse, category, ds, y`) summed to the
    nodes of a hierarchy level."""
    from pipelines.forecasting.hierarchy import LEVEL_KEYS, series_keys

    keys = list(LEVEL_KEYS[level])
    h = (
        history.groupby([*keys, "ds"], as_index=False)["y"].sum()
        if keys
        else history.groupby("ds", as_index=False)["y"].sum()
    )
    return h.assign(series_key=series_keys(level, h))[["series_key", "ds", "y"]]


def _weekly_scale(h: pd.DataFrame) -> pd.Series:
    """Per `series_key`: mean |y_t - y_(t-7)| (NaN where 0 or without a pair), as `build_mase_scale`."""
    week_ago = h.assign(ds=h["ds"] + pd.Timedelta(days=SEASON))
    pairs = h.merge(week_ago.rename(columns={"y": "y_season"}), on=["series_key", "ds"])
    scale = (pairs["y"] - pairs["y_season"]).abs().groupby(pairs["series_key"]).mean()
    return scale.where(scale > 0).rename("scale")


class NodeScales:
    """MASE scales of the nodes of the forecast hierarchy (by `series_key`), from the daily history
    (`sku, warehouse, ds, y`) added in parts of whole SKUs (every warehouse of a SKU in the same
    part, as a shard holds them): SKU and SKU x warehouse nodes are scaled part by part, the nodes
    above SKUs from their histories summed over the parts (small: categories x days)."""

    def __init__(self, categories: pd.DataFrame | None) -> None:
        from pipelines.forecasting.hierarchy import LEVEL_KEYS

        self.levels = LEVEL_KEYS
        self.category = (
            dict(zip(categories["sku"], categories["category"], strict=True))
            if categories is not None
            else {}
        )
        self.local: list[pd.Series] = []
        self.partial: dict[str, list[pd.DataFrame]] = {
            lv: [] for lv, k in LEVEL_KEYS.items() if "sku" not in k
        }

    def add(self, history: pd.DataFrame) -> None:
        from pipelines.forecasting.hierarchy import NO_CATEGORY

        hist = history.assign(
            ds=pd.to_datetime(history["ds"]), category=history["sku"].map(self.category).fillna(NO_CATEGORY)
        )
        for level, keys in self.levels.items():
            nodes = _node_history(hist, level)
            if "sku" in keys:
                self.local.append(_weekly_scale(nodes))
            else:
                self.partial[level].append(nodes)

    def take_local(self) -> pd.Series:
        """The scales of the SKU and SKU x warehouse nodes added since the last call (and forgets
        them): a caller that keeps them by shard need not hold every series' scale."""
        local = [s for s in self.local if len(s)]
        self.local = []
        return pd.concat(local) if local else pd.Series(dtype=float, name="scale")

    def above(self) -> pd.Series:
        """The scales of the nodes above SKUs (from every part added)."""
        above = [
            _weekly_scale(pd.concat(parts).groupby(["series_key", "ds"], as_index=False)["y"].sum())
            for parts in self.partial.values()
            if parts
        ]
        above = [s for s in above if len(s)]
        return pd.concat(above) if above else pd.Series(dtype=float, name="scale")

    def result(self) -> pd.Series:
        """The scales of every node added."""
        scales = [s for s in (self.take_local(), self.above()) if len(s)]
        return pd.concat(scales) if scales else pd.Series(dtype=float, name="scale")


def node_scales(histories: Iterable[pd.DataFrame], categories: pd.DataFrame | None) -> pd.Series:
    """`NodeScales` of the daily history given in parts of whole SKUs (or in one part)."""
    acc = NodeScales(categories)
    for history in histories:
        acc.add(history)
    return acc.result()
