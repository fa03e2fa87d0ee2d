"""Cost and coherence of aggregate planner overrides in the nightly adjust step.

A synthetic night (``--skus`` SKUs x ``--warehouses`` warehouses x ``--horizon`` days, gamma
demand, ``--categories`` categories) is adjusted by `adjust_forecasts` (checks, final forecast,
summary) with: no override (the reference), ``--overrides`` series overrides, and ``--overrides``
aggregate overrides (category x warehouse, each a value over 7 days, shared by the statistical
forecast).  Each case is timed ``--reps`` times (median, and ratio to the reference in the same
run); for the aggregate case the largest gap between an override's value and the sum of its
children's final forecast on a date is reported (coherence).

Usage (from the repository root):
    .venv/bin/python benchmarks/aggregate_overrides.py [--skus 2000] [--warehouses 5] [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.overrides import adjust_forecasts

NIGHT = date(2026, 11, 22)


def night(skus: int, warehouses: int, horizon: int, categories: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    grid = pd.MultiIndex.from_product(
        [
            [f"S{i:05d}" for i in range(skus)],
            [f"W{i}" for i in range(warehouses)],
            pd.date_range(pd.Timestamp(NIGHT) + pd.Timedelta(days=1), periods=horizon),
        ],
        names=["sku", "warehouse", "target_date"],
    ).to_frame(index=False)
    grid.insert(0, "run_date", pd.Timestamp(NIGHT))
    grid["yhat"] = rng.gamma(2.0, 5.0, len(grid))
    cats = pd.DataFrame({"sku": [f"S{i:05d}" for i in range(skus)]})
    cats["category"] = [f"C{i % categories:03d}" for i in range(skus)]
    return grid, cats


def overrides(kind: str, n: int, categories: int, warehouses: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        start = pd.Timestamp(NIGHT) + pd.Timedelta(days=1 + 7 * (i // (categories * warehouses)))
        base = {
            "override_id": i + 1,
            "sku": None,
            "category": None,
            "warehouse": f"W{i % warehouses}",
            "start_date": start,
            "end_date": start + pd.Timedelta(days=6),
            "value": 100.0 + i,
            "relative_change": None,
            "author": "bench",
            "reason": "bench",
            "created_at": pd.Timestamp("2026-11-20", tz="UTC"),
            "expires_on": None,
        }
        if kind == "series":
            base["sku"] = f"S{i:05d}"
            del base["category"]
        else:
            base["category"] = f"C{(i // warehouses) % categories:03d}"
        rows.append(base)
    return pd.DataFrame(rows)


def timed(fc, stored, cats, reps: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        kw = {} if cats is None else {"categories": cats}
        out = adjust_forecasts(fc, stored, None, run_date=NIGHT, fence_days=0, **kw)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skus", type=int, default=2000)
    ap.add_argument("--warehouses", type=int, default=5)
    ap.add_argument("--horizon", type=int, default=28)
    ap.add_argument("--categories", type=int, default=20)
    ap.add_argument("--overrides", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument(
        "--series-only",
        action="store_true",
        help="only the reference and series overrides, without categories (also runs on versions "
        "without aggregate overrides)",
    )
    a = ap.parse_args()
    fc, cats = night(a.skus, a.warehouses, a.horizon, a.categories)
    empty = overrides("series", 0, a.categories, a.warehouses)
    if a.series_only:
        cats = None
    ref, _ = timed(fc, empty, cats, a.reps)
    ser, _ = timed(fc, overrides("series", a.overrides, a.categories, a.warehouses), cats, a.reps)
    if a.series_only:
        print(f"rows: {len(fc):,}; median of {a.reps}")
        print(f"no override (reference): {ref:.3f} s")
        print(f"{a.overrides} series overrides: {ser:.3f} s ({ser / ref:.2f}x)")
        return
    agg_rows = overrides("aggregate", a.overrides, a.categories, a.warehouses)
    agg, adjusted = timed(fc, agg_rows, cats, a.reps)
    final = adjusted.final.merge(cats, on="sku")  # type: ignore[attr-defined]
    gap = 0.0
    for o in agg_rows.itertuples(index=False):
        hit = final[
            (final.category == o.category)
            & (final.warehouse == o.warehouse)
            & final.target_date.between(o.start_date, o.end_date)
        ]
        gap = max(gap, float((hit.groupby("target_date").yhat_final.sum() - o.value).abs().max()))
    print(f"rows: {len(fc):,}; median of {a.reps}")
    print(f"no override (reference): {ref:.3f} s")
    print(f"{a.overrides} series overrides: {ser:.3f} s ({ser / ref:.2f}x)")
    print(f"{a.overrides} category x warehouse overrides: {agg:.3f} s ({agg / ref:.2f}x)")
    print(f"coherence: largest |sum of children - value| = {gap:.2e} units")


if __name__ == "__main__":
    main()
