"""Accuracy of pipelines.forecasting on a sparse order book (many SKU x warehouse series, few orders).

Builds the demo's sparse ERP (``DemoSize(demand="sparse")``: lumpy order lines, a handful per
SKU x warehouse, no weekend trading, products launched during the history), holds out the last
``--holdout`` days, builds the daily demand series of the rest with ``build_demand_series`` as the
nightly run does, forecasts ``--holdout`` days ahead and scores the forecast against the held-out
net demand of the same series (0 on days without sales), next to seasonal naive (the last week
repeated):

- MASE as seam's accuracy view computes it: the mean over all points of |actual - forecast|
  divided by the series' in-sample mean |y_t - y_(t-7)| (``pipelines.forecasting.accuracy.build_mase_scale``),
  and seam's MASE relative to seasonal naive's on the same points (target < 1). On lumpy demand
  an unbiased forecast has a MASE near 1 or above by construction (the error-minimising point
  forecast of a day that is usually 0 is 0), so the relative figure is the one to read;
- bias = (sum forecast - sum actual) / sum |actual| (the accuracy view's bias; target within
  +-10%), and the ratio of the sums;
- WAPE = sum |actual - forecast| / sum |actual|;
- the units forecast on weekend days (the demo never trades then), coverage of the 80% / 95%
  intervals, and wall time of the forecast.

Series first sold inside the holdout cannot be forecast; their units are reported, not scored.
Writes ``benchmarks/results/forecast_sparse.json`` and ``benchmarks/results/forecast_sparse.md``.

Usage (from the repository root):
    .venv/bin/python benchmarks/forecast_sparse.py [--skus 80] [--warehouses 20] [--days 730]
        [--holdout 28] [--seed 11] [--lines-per-series 6]

``--save-lines PATH`` writes the generated order lines to Parquet; ``--lines PATH`` scores a
forecaster on saved lines instead of generating them (to compare two checkouts on the same data).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.forecasting import forecast
from pipelines.forecasting.accuracy import build_mase_scale
from pipelines.series import build_demand_series

logger = logging.getLogger(__name__)
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
END = date(2026, 11, 22)


def build_lines(args: argparse.Namespace) -> pd.DataFrame:
    """The sparse demo's order lines (canonical `order_lines`), generated or read from Parquet."""
    if args.lines:
        lines = pd.read_parquet(args.lines)
        lines["order_date"] = pd.to_datetime(lines["order_date"])
        return lines
    from pipelines.demo import DemoSize, build_erp, build_order_lines

    size = DemoSize(
        days=args.days + args.holdout,
        skus=args.skus,
        warehouses=args.warehouses,
        customers=max(50, args.skus * 4),
        end_date=END,
        seed=args.seed,
        anomalies=False,
        demand="sparse",
        sparse_orders_per_series=args.lines_per_series,
    )
    lines = build_order_lines(build_erp(size))
    if args.save_lines:
        lines.to_parquet(args.save_lines, index=False)
    return lines


def score(
    fc: pd.DataFrame, history: pd.DataFrame, actual: pd.DataFrame, holdout: int
) -> dict[str, dict[str, float]]:
    """Accuracy of the forecast and of seasonal naive on the held-out days."""
    key = ["unique_id", "ds"]
    pts = fc[[*key, "yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"]].merge(
        actual, on=key, how="left"
    )
    pts["actual"] = pts["actual"].fillna(0.0)
    last = history["ds"].max()
    week = history[history["ds"] > last - pd.Timedelta(days=7)]
    week = week.assign(dow=week["ds"].dt.dayofweek)[["unique_id", "dow", "y"]]
    pts["dow"] = pts["ds"].dt.dayofweek
    pts = pts.merge(week.rename(columns={"y": "snaive"}), on=["unique_id", "dow"], how="left")
    pts["snaive"] = pts["snaive"].fillna(0.0)
    parts = history["unique_id"].str.split("|", n=1, expand=True)
    scale = build_mase_scale(history.assign(sku=parts[0], warehouse=parts[1]))
    scale.index = scale.index.map(lambda k: f"{k[0]}|{k[1]}")
    pts["scale"] = pts["unique_id"].map(scale)
    abs_actual = float(pts["actual"].abs().sum())
    out: dict[str, dict[str, float]] = {}
    for name, col in (("seam", "yhat"), ("seasonal_naive", "snaive")):
        err = (pts["actual"] - pts[col]).abs()
        scaled = (err / pts["scale"]).replace([np.inf, -np.inf], np.nan)
        row = {
            "mase": float(scaled.mean()),
            "wape": float(err.sum() / abs_actual),
            "bias": float((pts[col].sum() - pts["actual"].sum()) / abs_actual),
            "sum_forecast": float(pts[col].sum()),
            "sum_actual": float(pts["actual"].sum()),
            "forecast_to_actual": float(pts[col].sum() / pts["actual"].sum()),
            "weekend_forecast": float(pts.loc[pts["dow"] >= 5, col].sum()),
            "lag1_bias": float(
                (pts.loc[pts["ds"] == pts["ds"].min(), col].sum() - _first_day(pts)["actual"].sum())
                / max(_first_day(pts)["actual"].abs().sum(), 1e-9)
            ),
        }
        if col == "yhat":
            for level in (80, 95):
                inside = (pts["actual"] >= pts[f"yhat_lo_{level}"]) & (
                    pts["actual"] <= pts[f"yhat_hi_{level}"]
                )
                row[f"coverage_{level}"] = float(inside.mean())
        out[name] = {k: round(v, 4) for k, v in row.items()}
    out["seam"]["relative_mase"] = round(out["seam"]["mase"] / out["seasonal_naive"]["mase"], 4)
    out["points"] = {
        "points": float(len(pts)),
        "mase_points": float(pts["scale"].notna().sum()),
        "series": float(pts["unique_id"].nunique()),
        "holdout_days": float(holdout),
    }
    return out


def _first_day(pts: pd.DataFrame) -> pd.DataFrame:
    return pts[pts["ds"] == pts["ds"].min()]


def build_markdown(result: dict[str, object], command: str) -> str:
    """Markdown section: the figures of seam and seasonal naive."""
    acc: dict[str, dict[str, float]] = result["accuracy"]  # type: ignore[assignment]
    seam, snaive = acc["seam"], acc["seasonal_naive"]
    lines = [
        '## Sparse order book (demo, `DemoSize(demand="sparse")`)',
        "",
        "Command (from the repository root):",
        "",
        f"    {command}",
        "",
        f"{result['series']} series with history ({result['lines']} order lines, median "
        f"{result['lines_per_series_median']} per series, weekdays only), {result['holdout']}-day "
        f"holdout; forecast in {result['seconds']} s ({result['series_per_s']} series/s), "
        f"1-minute load average before/after {result['loadavg_1m']}. Units of series first sold in the "
        f"holdout (not forecastable): {result['unforecast_units']}.",
        "",
        "| figure | seam | seasonal naive | target |",
        "|---|---:|---:|---|",
        f"| MASE relative to seasonal naive (seam MASE / seasonal naive MASE) | {seam['relative_mase']:.3f} "
        "| 1 | < 1 |",
        f"| MASE (accuracy view: scale = in-sample mean weekly-naive error) | {seam['mase']:.3f} "
        f"| {snaive['mase']:.3f} | |",
        f"| bias (sum forecast - sum actual) / sum actual | {seam['bias']:+.3f} | {snaive['bias']:+.3f} "
        "| within +-0.10 |",
        f"| WAPE | {seam['wape']:.3f} | {snaive['wape']:.3f} | |",
        f"| units forecast / sold in the holdout | {seam['sum_forecast']:.0f} / {seam['sum_actual']:.0f} "
        f"| {snaive['sum_forecast']:.0f} / {snaive['sum_actual']:.0f} | |",
        f"| units forecast on weekend days | {seam['weekend_forecast']:.1f} "
        f"| {snaive['weekend_forecast']:.1f} | 0 |",
        f"| lag-1 bias | {seam['lag1_bias']:+.3f} | {snaive['lag1_bias']:+.3f} | |",
        f"| coverage of the 80% / 95% intervals | {seam['coverage_80']:.3f} / {seam['coverage_95']:.3f} "
        "| | |",
    ]
    return "\n".join(lines)


def main() -> None:
    """Generate the sparse order book, forecast its history, score the holdout, write results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=80)
    parser.add_argument("--warehouses", type=int, default=20)
    parser.add_argument("--days", type=int, default=730, help="days of history")
    parser.add_argument("--holdout", type=int, default=28)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--lines-per-series", type=float, default=6.0)
    parser.add_argument("--lines", help="read the order lines from this Parquet file")
    parser.add_argument("--save-lines", help="write the generated order lines to this Parquet file")
    parser.add_argument("--out", default=str(RESULTS / "forecast_sparse"), help="results path stem")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    lines = build_lines(args)
    cutoff = END - timedelta(days=args.holdout)
    series = build_demand_series(lines, None, end=cutoff, history_days=args.days)
    history = series[["unique_id", "ds", "y", "censored"]]
    future = build_demand_series(lines, None, end=END, history_days=args.days + args.holdout)
    future = future[future["ds"] > pd.Timestamp(cutoff)]
    known = set(history["unique_id"])
    actual = future[future["unique_id"].isin(known)][["unique_id", "ds", "y"]].rename(columns={"y": "actual"})
    unforecast = float(future.loc[~future["unique_id"].isin(known), "y"].sum())
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    fc = forecast(history, horizon=args.holdout, freq="D")
    seconds = time.perf_counter() - t0
    n_series = history["unique_id"].nunique()
    in_history = lines[lines["order_date"] <= pd.Timestamp(cutoff)]
    per_series = in_history.groupby(["sku", "warehouse"]).size()
    result: dict[str, object] = {
        "series": int(n_series),
        "lines": len(in_history),
        "lines_per_series_median": float(per_series.median()),
        "holdout": args.holdout,
        "seconds": round(seconds, 1),
        "series_per_s": round(n_series / seconds, 1),
        "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "unforecast_units": unforecast,
        "accuracy": score(fc, history, actual, args.holdout),
        "top_models": fc.groupby("unique_id")["model"].first().value_counts().head(6).to_dict(),
    }
    command = " ".join([".venv/bin/python", "benchmarks/forecast_sparse.py", *sys.argv[1:]])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result) + "\n")
    out.with_suffix(".md").write_text(build_markdown(result, command) + "\n")
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
