"""The final forecast: the statistical forecast with the overrides in force, frozen inside the
time fence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from pipelines.overrides.rules import describe, specificity, split_stored_overrides

KEY = ["sku", "warehouse", "target_date"]


def build_final_forecast(
    forecasts: pd.DataFrame,
    overrides: pd.DataFrame,
    previous: pd.DataFrame | None,
    *,
    run_date: date,
    fence_days: int,
    categories: pd.DataFrame | None = None,
    shortfalls: list[str] | None = None,
) -> pd.DataFrame:
    """`forecasts` (rows of `seam_forecasts`, statistical) plus `yhat_final` and `override_ids`.

    `overrides`: the valid overrides in force (`split_stored_overrides`), applied the most specific
    first (`specificity`): series overrides set their rows (a `value` replaces the forecast, a
    `relative_change` multiplies the statistical `yhat`); then each aggregate override (category x
    warehouse, then category or a warehouse's total, then the total) makes its rows sum, on each
    target date, to its `value` (or to its statistical sum times 1 + `relative_change`): rows that a
    nested override set keep their value, and the others share what is left in proportion to their
    statistical `yhat` (negative ones count as 0; equal shares when they sum to 0).  So the sum of
    every overridden aggregate is its target, and a planner's change to one SKU is made up by its
    siblings.  Where nested overrides leave no room (they already exceed the target), the nested
    values stand and `shortfalls` (when given) receives a line saying so.  A row's `override_ids`
    lists every override that set it.
    `categories`: the products' `sku, category` (needed by category overrides).
    `previous`: the latest earlier night's final rows (`sku, warehouse, target_date, yhat_final,
    override_ids`) or None; for target dates up to run_date + fence_days the final forecast (and
    its override ids) is the previous one where it has the row.
    """
    out = forecasts.copy()
    out["target_date"] = pd.to_datetime(out["target_date"])
    stat = out["yhat"].astype(float).to_numpy(copy=True)
    final, ids = stat.copy(), np.full(len(out), None, dtype=object)
    if len(overrides):
        found = _apply(out, overrides, categories, stat, final, ids)
        if shortfalls is not None:
            shortfalls.extend(found)
    out["yhat_final"] = final
    out["override_ids"] = ids
    if fence_days > 0 and previous is not None and len(previous):
        fence_end = pd.Timestamp(run_date) + pd.Timedelta(days=fence_days)
        prev = previous[[*KEY, "yhat_final", "override_ids"]].assign(
            target_date=lambda p: pd.to_datetime(p["target_date"])
        )
        merged = out[KEY].merge(prev, on=KEY, how="left", validate="one_to_one")
        frozen = (out["target_date"] <= fence_end).to_numpy() & merged["yhat_final"].notna().to_numpy()
        out.loc[frozen, "yhat_final"] = merged.loc[frozen, "yhat_final"].to_numpy()
        out.loc[frozen, "override_ids"] = [
            None if v is None or pd.isna(v) else str(v) for v in merged.loc[frozen, "override_ids"]
        ]
    return out


def _apply(
    out: pd.DataFrame,
    overrides: pd.DataFrame,
    categories: pd.DataFrame | None,
    stat: np.ndarray,
    final: np.ndarray,
    ids: np.ndarray,
) -> list[str]:
    """Write the overrides' effect into `final` and their ids into `ids`, the most specific first;
    returns the aggregate overrides' shortfalls (dates where nested overrides leave it no room)."""
    if "category" not in overrides.columns:
        overrides = overrides.assign(category=None)
    days = out["target_date"].to_numpy(dtype="datetime64[ns]")
    # integer codes: one comparison per override stays cheap on a night of millions of rows
    sku_code, sku_of = _codes(out["sku"])
    wh_code, wh_of = _codes(out["warehouse"])
    cat_code: np.ndarray = np.full(len(out), -1)
    cat_index: dict[Any, int] = {}
    if overrides["category"].notna().any() and categories is not None:
        cat_code, cat_index = _codes(
            out["sku"].map(dict(zip(categories["sku"], categories["category"], strict=True)))
        )
    fixed = np.zeros(len(out), dtype=bool)  # rows a more specific override already set
    shortfalls: list[str] = []
    ordered = overrides.assign(rank=[specificity(o) for o in overrides.itertuples(index=False)])
    for o in ordered.sort_values(["rank", "override_id"]).itertuples(index=False):
        hit = (days >= o.start_date.to_datetime64()) & (days <= o.end_date.to_datetime64())
        if o.warehouse is not None:
            hit &= wh_code == wh_of.get(o.warehouse, -2)
        if o.sku is not None:
            hit &= sku_code == sku_of.get(o.sku, -2)
            final[hit] = o.value if not pd.isna(o.value) else stat[hit] * (1.0 + o.relative_change)
            shaped = hit
        else:
            if o.category is not None:
                hit &= cat_code == cat_index.get(o.category, -2)
            shaped = hit & ~fixed
            short = _set_aggregate(o, days, hit, shaped, stat, final)
            if short:
                shortfalls.append(f"override {describe(o)}: {short}")
        fixed |= hit
        tag = str(int(o.override_id))
        ids[shaped] = [tag if cur is None else f"{cur},{tag}" for cur in ids[shaped]]
    return shortfalls


def _set_aggregate(
    o: Any, days: np.ndarray, hit: np.ndarray, free: np.ndarray, stat: np.ndarray, final: np.ndarray
) -> str | None:
    """Make the aggregate's rows (`hit`) sum, on each date, to its target: `value`, or the
    statistical sum times (1 + relative_change).  Rows a nested override set keep their value; the
    other rows (`free`) share what is left in proportion to their statistical forecast.  Returns how
    many dates fell short (nested overrides already above the target, or no row left to change)."""
    if pd.isna(o.value) and free[hit].all():  # nothing nested: every row scaled alike
        final[hit] = stat[hit] * (1.0 + o.relative_change)
        return None
    weights = np.clip(stat, 0.0, None)
    _, day = np.unique(days[hit], return_inverse=True)
    n_days = int(day.max()) + 1 if len(day) else 0
    if pd.isna(o.value):
        target = np.bincount(day, weights=stat[hit], minlength=n_days) * (1.0 + o.relative_change)
    else:
        target = np.full(n_days, float(o.value))
    nested = np.bincount(day, weights=np.where(free[hit], 0.0, final[hit]), minlength=n_days)
    left = target - nested
    own = free[hit]
    if own.any():
        share = _shares(day[own], weights[hit][own])
        values = final[hit]
        values[own] = share * np.clip(left, 0.0, None)[day[own]]
        final[hit] = values
    has_free = np.bincount(day, weights=own.astype(float), minlength=n_days) > 0
    short = int(np.sum((left < -1e-9) | (~has_free & (np.abs(left) > 1e-9))))
    if not short:
        return None
    return (
        f"on {short} date(s) its nested overrides leave no room for its total, so its series keep "
        f"the nested values and the aggregate does not reach its target"
    )


def _codes(values: pd.Series) -> tuple[np.ndarray, dict[Any, int]]:
    """Integer codes of a column (-1: missing) and each value's code."""
    codes, uniques = pd.factorize(values)
    return codes, {v: i for i, v in enumerate(uniques)}


def _shares(days: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each row's share of its date's total weight (equal shares on a date whose weights sum to 0)."""
    _, day = np.unique(days, return_inverse=True)
    total = np.bincount(day, weights=weights)[day]
    count = np.bincount(day)[day]
    return np.where(total > 0, weights / np.where(total > 0, total, 1.0), 1.0 / count)


def summarize_overrides(final: pd.DataFrame, overrides: pd.DataFrame) -> pd.DataFrame:
    """One row per override in `overrides`: the final rows it shaped tonight (`rows`) and its
    effect on the units forecast over them (`units_statistical`, `units_final`, `units_change`)."""
    tagged = final[["override_ids", "yhat", "yhat_final"]].dropna(subset=["override_ids"])
    tagged = tagged.assign(override_id=tagged["override_ids"].str.split(",")).explode("override_id")
    tagged["override_id"] = tagged["override_id"].astype(int)
    effect = tagged.groupby("override_id").agg(
        rows=("yhat", "size"), units_statistical=("yhat", "sum"), units_final=("yhat_final", "sum")
    )
    out = overrides.merge(effect, left_on="override_id", right_index=True, how="left")
    out["rows"] = out["rows"].fillna(0).astype(int)
    out[["units_statistical", "units_final"]] = out[["units_statistical", "units_final"]].fillna(0.0)
    out["units_change"] = out["units_final"] - out["units_statistical"]
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class Adjusted:
    """A night's final forecast and what shaped it."""

    final: pd.DataFrame  # rows of seam_forecasts with yhat_final and override_ids
    active: pd.DataFrame  # the overrides applied tonight, with `summarize_overrides`' effect columns
    skipped: pd.DataFrame  # stored overrides in force but invalid, with `problem`
    fenced_rows: int  # rows whose final forecast is last night's (inside the time fence)
    shortfalls: tuple[str, ...] = ()  # aggregate overrides their nested ones left no room for

    def notes(self) -> dict[str, Any]:
        """A JSON-able summary for the report and the DAG: totals, active and skipped overrides."""
        f = self.final
        return {
            "units_statistical": float(f["yhat"].sum()),
            "units_final": float(f["yhat_final"].sum()),
            "rows_overridden": int(f["override_ids"].notna().sum()),
            "fenced_rows": self.fenced_rows,
            "active": [_jsonable(r) for r in self.active.to_dict("records")],
            "skipped": [_jsonable(r) for r in self.skipped.to_dict("records")],
            "shortfalls": list(self.shortfalls),
        }


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            out[k] = None
        elif isinstance(v, pd.Timestamp):
            out[k] = v.isoformat() if k == "created_at" else v.date().isoformat()
        elif isinstance(v, np.integer):
            out[k] = int(v)
        elif isinstance(v, np.floating):
            out[k] = float(v)
        else:
            out[k] = v
    return out


def adjust_forecasts(
    forecasts: pd.DataFrame,
    stored: pd.DataFrame,
    previous: pd.DataFrame | None,
    *,
    run_date: date,
    fence_days: int,
    categories: pd.DataFrame | None = None,
) -> Adjusted:
    """Check the stored overrides against tonight's series (and the products' `categories`, for
    category overrides), apply the valid ones in force and freeze the time fence (see
    `build_final_forecast`)."""
    series = forecasts[["sku", "warehouse"]].drop_duplicates()
    valid, skipped = split_stored_overrides(stored, series=series, run_date=run_date, categories=categories)
    shortfalls: list[str] = []
    final = build_final_forecast(
        forecasts,
        valid,
        previous,
        run_date=run_date,
        fence_days=fence_days,
        categories=categories,
        shortfalls=shortfalls,
    )
    fenced = _fenced(final, previous, run_date, fence_days)
    return Adjusted(final, summarize_overrides(final, valid), skipped, fenced, tuple(shortfalls))


class NightAdjustment:
    """A night's final forecast made one part (a shard of whole SKUs) at a time, when every valid
    override is a series override (`by_parts`): such an override changes the rows of its own SKU
    only, so each part's final rows are those of the whole night's `build_final_forecast`.  An
    aggregate override (a category, a warehouse's total, the total) shares its target across
    shards: the night is then adjusted whole (`adjust_forecasts`).

    `series`: the night's `sku, warehouse` pairs (every shard's), which the overrides are checked
    against.  Feed the parts with `apply`, then read `notes()` (the same as `Adjusted.notes`)."""

    def __init__(
        self,
        stored: pd.DataFrame,
        series: pd.DataFrame,
        *,
        run_date: date,
        fence_days: int,
        categories: pd.DataFrame | None = None,
    ) -> None:
        self.valid, self.skipped = split_stored_overrides(
            stored, series=series, run_date=run_date, categories=categories
        )
        self.run_date, self.fence_days, self.categories = run_date, fence_days, categories
        self.by_parts = bool(self.valid["sku"].notna().all()) if len(self.valid) else True
        self.units_statistical = 0.0
        self.units_final = 0.0
        self.rows_overridden = 0
        self.fenced_rows = 0
        self._effects: list[pd.DataFrame] = []

    def apply(self, forecasts: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
        """The final rows of one part (`forecasts`: its rows of `seam_forecasts`; `previous`: the
        latest earlier night's final rows of its SKUs, or None)."""
        if not self.by_parts:
            raise ValueError("an aggregate override is in force: adjust the night whole (adjust_forecasts)")
        skus = set(forecasts["sku"].unique())
        mine = self.valid[self.valid["sku"].isin(skus)].reset_index(drop=True)
        final = build_final_forecast(
            forecasts,
            mine,
            previous,
            run_date=self.run_date,
            fence_days=self.fence_days,
            categories=self.categories,
        )
        self.units_statistical += float(final["yhat"].sum())
        self.units_final += float(final["yhat_final"].sum())
        self.rows_overridden += int(final["override_ids"].notna().sum())
        self.fenced_rows += _fenced(final, previous, self.run_date, self.fence_days)
        effect = summarize_overrides(final, mine)
        self._effects.append(effect[["override_id", "rows", "units_statistical", "units_final"]])
        return final

    def notes(self) -> dict[str, Any]:
        """A JSON-able summary of the night (as `Adjusted.notes`)."""
        effect = pd.concat(self._effects, ignore_index=True) if self._effects else None
        active = self.valid.copy()
        if effect is not None and len(effect):
            sums = effect.groupby("override_id")[["rows", "units_statistical", "units_final"]].sum()
            active = active.merge(sums, left_on="override_id", right_index=True, how="left")
        for column in ("rows", "units_statistical", "units_final"):
            if column not in active:
                active[column] = 0
        active["rows"] = active["rows"].fillna(0).astype(int)
        active[["units_statistical", "units_final"]] = (
            active[["units_statistical", "units_final"]].fillna(0.0).astype(float)
        )
        active["units_change"] = active["units_final"] - active["units_statistical"]
        return {
            "units_statistical": self.units_statistical,
            "units_final": self.units_final,
            "rows_overridden": self.rows_overridden,
            "fenced_rows": self.fenced_rows,
            "active": [_jsonable(r) for r in active.to_dict("records")],
            "skipped": [_jsonable(r) for r in self.skipped.to_dict("records")],
            "shortfalls": [],
        }


def _fenced(final: pd.DataFrame, previous: pd.DataFrame | None, run_date: date, fence_days: int) -> int:
    """Rows inside the time fence whose final forecast is the previous night's."""
    if fence_days <= 0 or previous is None or not len(previous):
        return 0
    fence_end = pd.Timestamp(run_date) + pd.Timedelta(days=fence_days)
    keys = previous[KEY].assign(target_date=pd.to_datetime(previous["target_date"]))
    return len(final[final["target_date"] <= fence_end][KEY].merge(keys, on=KEY))


def build_value_added(by_lag: pd.DataFrame, *, week: int = 7) -> pd.DataFrame:
    """Forecast value added per lag week (lags 1-7, 8-14, ...) from per-lag sums
    (`read_value_added`): WAPE and bias of the naive, statistical and final forecasts and the
    deltas (`fva_statistical` = WAPE naive - statistical, `fva_final` = WAPE statistical - final;
    > 0: the step made the forecast better)."""
    if by_lag.empty:
        return pd.DataFrame()
    start = ((by_lag["lag_days"] - 1) // week) * week + 1
    g = by_lag.assign(lags=start.astype(str) + "-" + (start + week - 1).astype(str), first=start)
    s = g.groupby(["first", "lags"], as_index=False).sum(numeric_only=True).sort_values("first")
    actual = s["sum_actual"].where(s["sum_actual"] != 0)
    out = pd.DataFrame({"lags": s["lags"], "n_points": s["n_points"].astype(int)})
    out["n_overridden"] = s["n_overridden"].astype(int)
    for kind in ("naive", "statistical", "final"):
        out[f"wape_{kind}"] = s[f"sum_abs_error_{kind}"] / actual
        out[f"bias_{kind}"] = (s[f"sum_{kind}"] - s["sum_actual"]) / actual
    out["fva_statistical"] = out["wape_naive"] - out["wape_statistical"]
    out["fva_final"] = out["wape_statistical"] - out["wape_final"]
    return out.reset_index(drop=True)
