"""Accuracy of the forecast with and without known-future demand drivers (promotions) on the demo.

Builds the demo ERP (busy retail demand: about one promotion of 7-14 days every 90 days per SKU,
lifting demand 1.4-2.2x, 10-30% off; stock-outs; injected anomalies), and for each of
``--origins`` cutoffs (the last ``--horizon`` days held out, then the ``--horizon`` days before
those, ...) builds the daily demand series up to the cutoff as the nightly run does
(``build_demand_series``), and forecasts ``--horizon`` days ahead:

- ``without drivers``: ``run_forecast(history, ...)``, the forecaster before drivers;
- ``with drivers``: the same with ``Drivers(build_driver_frame(...))``: the promotions table,
  whose promotions inside the holdout are the ERP's planned ones.

On the held-out series-days (stock-out days excluded: their sales are censored) it reports
WAPE = sum |actual - forecast| / sum actual and bias = (sum forecast - sum actual) / sum actual,
on promotion days and on the other days, and the coverage of the 80% / 95% intervals, at three
levels: series-day; SKU-day (summed over the warehouses); series-horizon (a series' promotion
days, or other days, of one horizon summed: the volume a planner stocks for a promotion). Targets:
WAPE on promotion days >= 30% lower with drivers, no worse on the other days.
Writes ``benchmarks/results/forecast_drivers.json`` and ``.md``.

Usage (from the repository root):
    .venv/bin/python benchmarks/forecast_drivers.py [--skus 200] [--warehouses 5] [--days 730]
        [--horizon 28] [--origins 2] [--seed 42] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.demo import DemoSize, build_erp, build_order_lines
from pipelines.forecasting import Drivers, build_options, run_forecast
from pipelines.forecasting.inputs import build_driver_frame
from pipelines.series import build_demand_series

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
END = date(2026, 11, 22)


def score(points: pd.DataFrame, column: str) -> dict[str, float]:
    """WAPE, bias and interval coverage of one forecast against `actual`."""
    actual = float(points["actual"].sum())
    out = {
        "wape": round(float((points["actual"] - points[column]).abs().sum()) / actual, 4),
        "bias": round((float(points[column].sum()) - actual) / actual, 4),
    }
    for level in (80, 95):
        lo, hi = points[f"{column}_lo_{level}"], points[f"{column}_hi_{level}"]
        out[f"coverage_{level}"] = round(
            float(((points["actual"] >= lo) & (points["actual"] <= hi)).mean()), 4
        )
    return out


def holdout_points(
    erp: dict[str, pd.DataFrame], lines: pd.DataFrame, cutoff: date, args: argparse.Namespace
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Forecasts with and without drivers from `cutoff`, joined with the held-out actuals."""
    stockouts = erp["stock_outs"].rename(columns={"warehouse_code": "warehouse", "stockout_date": "day"})
    promotions = erp["promotions"].rename(columns={"discount_rate": "discount"})
    series = build_demand_series(
        lines, stockouts, end=cutoff, history_days=args.days - args.horizon * args.origins
    )
    history = series[["unique_id", "ds", "y", "censored"]]
    end = cutoff + timedelta(days=args.horizon)
    after = build_demand_series(lines, stockouts, end=end, history_days=args.days)
    after = after[(after["ds"] > pd.Timestamp(cutoff)) & ~after["censored"]][["unique_id", "ds", "y"]]
    frame = build_driver_frame(series, promotions=promotions, holidays=(), freq="D")
    options = build_options("D", n_jobs=args.jobs)
    seconds = {}
    t0 = time.perf_counter()
    plain = run_forecast(history, args.horizon, "D", (80, 95), options)
    seconds["without"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    driven = run_forecast(history, args.horizon, "D", (80, 95), options, drivers=Drivers(frame))
    seconds["with"] = time.perf_counter() - t0
    cols = ["yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"]
    pts = plain[["unique_id", "ds", *cols]].rename(columns={c: c.replace("yhat", "without") for c in cols})
    pts = pts.merge(
        driven[["unique_id", "ds", *cols, "drivers"]].rename(
            columns={c: c.replace("yhat", "with") for c in cols}
        ),
        on=["unique_id", "ds"],
    )
    pts = pts.merge(after.rename(columns={"y": "actual"}), on=["unique_id", "ds"], how="inner")
    on = frame[frame["promotion"] > 0][["unique_id", "ds"]].assign(promotion=True)
    pts = pts.merge(on, on=["unique_id", "ds"], how="left")
    pts["promotion"] = pts["promotion"].fillna(False).astype(bool)
    pts["cutoff"] = str(cutoff)
    pts = pts.merge(series[["unique_id", "sku"]].drop_duplicates("unique_id"), on="unique_id")
    return pts, seconds


def summed(pts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The points summed by `keys` (and promotion or not)."""
    cols = [c for c in pts.columns if c.startswith(("with", "without")) and c != "drivers"]
    return pts.groupby([*keys, "promotion"], as_index=False)[[*cols, "actual"]].sum()


def main() -> None:
    """Generate, forecast with and without drivers from each origin, score, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--warehouses", type=int, default=5)
    parser.add_argument("--days", type=int, default=730, help="days of demo (history and holdouts)")
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--origins", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "forecast_drivers"), help="results path stem")
    parser.add_argument("--points", default=None, help="also write the scored points (parquet) here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    size = DemoSize(
        days=args.days,
        skus=args.skus,
        warehouses=args.warehouses,
        customers=max(100, args.skus * 2),
        seed=args.seed,
    )
    erp = build_erp(size)
    lines = build_order_lines(erp)
    parts, timing = [], []
    for k in range(args.origins, 0, -1):
        cutoff = END - timedelta(days=args.horizon * k)
        pts, seconds = holdout_points(erp, lines, cutoff, args)
        parts.append(pts)
        timing.append({"cutoff": str(cutoff), **{f"seconds_{m}": round(s, 1) for m, s in seconds.items()}})
    pts = pd.concat(parts, ignore_index=True)
    if args.points:
        pts.to_parquet(args.points)
    figures: dict[str, dict[str, dict[str, Any]]] = {}
    reduction, ratio = {}, {}
    levels = (
        ("series-day", pts),
        # a promotion is the SKU's, in every warehouse
        ("SKU-day", summed(pts, ["sku", "ds"])),
        # what a planner stocks: a series' promotion days (other days) of one horizon together
        ("series-horizon", summed(pts, ["unique_id", "cutoff"])),
    )
    for level, frame in levels:
        figures[level] = {}
        for days, mask in (("promotion days", frame["promotion"]), ("other days", ~frame["promotion"])):
            part = frame[mask]
            figures[level][days] = {
                "points": len(part),
                "without drivers": score(part, "without"),
                "with drivers": score(part, "with"),
            }
        promo, other = figures[level]["promotion days"], figures[level]["other days"]
        reduction[level] = round(1 - promo["with drivers"]["wape"] / promo["without drivers"]["wape"], 4)
        ratio[level] = round(other["with drivers"]["wape"] / other["without drivers"]["wape"], 4)
    noted = pts.loc[pts["promotion"], "drivers"]
    result = {
        "command": " ".join(sys.argv),
        "args": vars(args),
        "series": int(pts["unique_id"].nunique()),
        "figures": figures,
        "promotion_wape_reduction": reduction,
        "other_days_wape_ratio": ratio,
        "targets_met": {k: bool(reduction[k] >= 0.30 and ratio[k] <= 1.0) for k in figures},
        "promotion_days_explained": round(float(noted.notna().mean()), 4),
        "example_explanation": str(noted.dropna().iloc[0]) if noted.notna().any() else None,
        "timing": timing,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    rows = [
        "| level | days | points | model | WAPE | bias | 80% cov. | 95% cov. |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for level, by_days in figures.items():
        for days, fig in by_days.items():
            for model in ("without drivers", "with drivers"):
                sc = fig[model]
                rows.append(
                    f"| {level} | {days} | {fig['points']} | {model} | {sc['wape']:.3f} | {sc['bias']:+.3f} "
                    f"| {sc['coverage_80']:.3f} | {sc['coverage_95']:.3f} |"
                )
    lines_md = [
        f"{level}: promotion-day WAPE {reduction[level]:.1%} lower with drivers (target >= 30%); "
        f"other days' WAPE ratio {ratio[level]:.3f} (target <= 1)."
        for level in figures
    ]
    md = "\n".join(
        [
            f"`{result['command']}`",
            "",
            *rows,
            "",
            *lines_md,
            f"Explained promotion days: {result['promotion_days_explained']:.1%}, "
            f'e.g. "{result["example_explanation"]}".',
        ]
    )
    out.with_suffix(".md").write_text(md + "\n")
    print(md)
    print(json.dumps(timing))


if __name__ == "__main__":
    main()
