"""Accuracy of new-product forecasts (series with less than `--new-days` of history) from peers.

Builds the demo ERP with a share of its SKUs launched late (``DemoSize(late_launches=...,
launch_days=--new-days + --holdout)``: each launched on a day drawn evenly from the last
``--new-days + --holdout`` days, nothing sold before), holds out the last ``--holdout`` days, builds
the daily demand series of the rest with ``build_demand_series`` as the nightly run does, and
forecasts ``--holdout`` days ahead. The new products are the series whose SKU first sold less than
``--new-days`` days before the cutoff. On the new products' held-out days (0 on days without sales)
it compares:

- ``seam (peers)``: ``run_forecast(..., peers=Peers(keys))`` with the products' categories, what
  the nightly step does;
- ``seam (own history)``: the public ``forecast(history, horizon, "D")``, which has no categories
  (how every series was forecast before new products had peers);
- ``zero``;
- ``category average``: the mean daily demand of the category's established series (every
  warehouse) over their last ``--new-days`` days, flat.

Figures: WAPE = sum |actual - forecast| / sum actual; bias = (sum forecast - sum actual) / sum
actual; per age at the cutoff (days since launch) too, and the coverage of seam's 80% / 95%
intervals. It also checks that the established series' forecasts are bit-identical with and
without peers. Writes ``benchmarks/results/new_products.json`` and ``.md``.

Launches: the SKUs whose first sale falls inside the holdout have no series at the cutoff. Given
that first day as their ERP launch date (``products.launch_date``), the nightly run forecasts them
(``pipelines.launches``) in every warehouse where their category sells, from their peers, 0 before
the launch date; scored on the held-out days against zero and against the category average from
the launch date on (0 before), over the same launch series (0 where the SKU did not sell).

Usage (from the repository root):
    .venv/bin/python benchmarks/new_products.py [--skus 200] [--warehouses 5] [--days 400]
        [--holdout 28] [--new-days 28] [--late-launches 0.3] [--seed 3] [--demand dense]
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

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.demo import DemoSize, build_erp, build_order_lines
from pipelines.forecasting import Peers, build_options, forecast, run_forecast
from pipelines.forecasting.peers import build_peer_keys
from pipelines.launches import Launch, hold_until_launch, launch_series
from pipelines.series import build_demand_series

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
END = date(2026, 11, 22)
AGES = ((1, 7), (8, 14), (15, 27))


def build_panel(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The demo's canonical order lines and products, with late launches."""
    size = DemoSize(
        days=args.days + args.holdout,
        skus=args.skus,
        warehouses=args.warehouses,
        customers=max(100, args.skus * 2),
        end_date=END,
        seed=args.seed,
        anomalies=False,
        demand=args.demand,
        late_launches=args.late_launches,
        launch_days=args.new_days + args.holdout,
    )
    erp = build_erp(size)
    products = erp["products"][["sku", "category"]]
    return build_order_lines(erp), products


def category_average(
    history: pd.DataFrame, keys: pd.DataFrame, established: set[str], days: int
) -> pd.Series:
    """Per category: mean daily demand of its established series over their last `days` days."""
    last = history["ds"].max()
    recent = history[
        (history["ds"] > last - pd.Timedelta(days=days)) & history["unique_id"].isin(established)
    ]
    rate = recent.groupby("unique_id")["y"].mean()
    category = keys.set_index("unique_id")["category"]
    return rate.groupby(category.reindex(rate.index)).mean()


def score(points: pd.DataFrame, column: str) -> dict[str, float]:
    """WAPE and bias of one forecast column against `actual`."""
    actual = float(points["actual"].sum())
    err = float((points["actual"] - points[column]).abs().sum())
    return {
        "wape": round(err / actual, 4),
        "bias": round((float(points[column].sum()) - actual) / actual, 4),
        "sum_forecast": round(float(points[column].sum()), 1),
    }


def interval_coverage(points: pd.DataFrame) -> dict[str, float]:
    """Share of `actual` inside seam's 80% and 95% intervals."""
    return {
        str(level): round(
            float(
                (
                    (points["actual"] >= points[f"yhat_lo_{level}"])
                    & (points["actual"] <= points[f"yhat_hi_{level}"])
                ).mean()
            ),
            4,
        )
        for level in (80, 95)
    }


def main() -> None:
    """Generate, forecast with and without peers, score the new products, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--warehouses", type=int, default=5)
    parser.add_argument("--days", type=int, default=400, help="days of history")
    parser.add_argument("--holdout", type=int, default=28)
    parser.add_argument("--new-days", type=int, default=28)
    parser.add_argument("--late-launches", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--demand", choices=("dense", "sparse"), default="dense")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "new_products"), help="results path stem")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    lines, products = build_panel(args)
    cutoff = END - timedelta(days=args.holdout)
    series = build_demand_series(lines, None, end=cutoff, history_days=args.days)
    history = series[["unique_id", "ds", "y", "censored"]]
    future = build_demand_series(lines, None, end=END, history_days=args.days + args.holdout)
    future = future[future["ds"] > pd.Timestamp(cutoff)][["unique_id", "ds", "y"]]
    keys = build_peer_keys(series, products)
    age = history.groupby("unique_id")["ds"].agg(lambda d: (d.max() - d.min()).days + 1)
    new_ids = set(age[age < args.new_days].index)
    established = set(age.index) - new_ids

    options = build_options("D", n_jobs=args.jobs, new_product_periods=args.new_days)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    with_peers = run_forecast(history, args.holdout, "D", (80, 95), options, peers=Peers(keys))
    seconds_peers = time.perf_counter() - t0
    own = forecast(history, args.holdout, "D")
    same_established = bool(
        with_peers.loc[with_peers["unique_id"].isin(established), "yhat"].to_numpy().tobytes()
        == own.loc[own["unique_id"].isin(established), "yhat"].to_numpy().tobytes()
    )

    pts = with_peers[with_peers["unique_id"].isin(new_ids)][
        ["unique_id", "ds", "yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95", "new_product"]
    ]
    pts = pts.merge(own[["unique_id", "ds", "yhat"]].rename(columns={"yhat": "own"}), on=["unique_id", "ds"])
    pts = pts.merge(future.rename(columns={"y": "actual"}), on=["unique_id", "ds"], how="left")
    pts["actual"] = pts["actual"].fillna(0.0)
    pts["zero"] = 0.0
    cat_avg = category_average(history, keys, established, args.new_days)
    category = keys.set_index("unique_id")["category"]
    pts["category_average"] = pts["unique_id"].map(category).map(cat_avg).fillna(0.0)
    pts["age"] = pts["unique_id"].map(age)
    methods = {
        "seam (peers)": "yhat",
        "seam (own history)": "own",
        "zero": "zero",
        "category average": "category_average",
    }
    table = {name: score(pts, col) for name, col in methods.items()}
    by_age = {
        f"{lo}-{hi} days": {
            "series": int(pts.loc[pts["age"].between(lo, hi), "unique_id"].nunique()),
            **{name: score(pts[pts["age"].between(lo, hi)], col) for name, col in methods.items()},
        }
        for lo, hi in AGES
        if pts["age"].between(lo, hi).any() and pts.loc[pts["age"].between(lo, hi), "actual"].sum() > 0
    }
    coverage = interval_coverage(pts)
    launches = score_launches(lines, products, series, keys, cutoff, args, options)
    notes = pts.groupby("unique_id")["new_product"].first()
    result: dict[str, object] = {
        "series": int(history["unique_id"].nunique()),
        "new_series": len(new_ids),
        "new_skus": int(
            keys[keys["unique_id"].isin(new_ids)]["unique_id"]
            .map(series.drop_duplicates("unique_id").set_index("unique_id")["sku"])
            .nunique()
        ),
        "new_from_peers": int(notes.str.contains("median level", na=False).sum()),
        "new_zero_no_peers": int(notes.str.contains("forecasting 0", na=False).sum()),
        "holdout": args.holdout,
        "units_actual_new": round(float(pts["actual"].sum()), 1),
        "accuracy": table,
        "by_age": by_age,
        "coverage_peers": coverage,
        "established_identical_with_and_without_peers": same_established,
        "launches": launches,
        "seconds_with_peers": round(seconds_peers, 1),
        "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    command = " ".join([".venv/bin/python", "benchmarks/new_products.py", *sys.argv[1:]])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(build_markdown(result, command) + "\n")
    sys.stdout.write(json.dumps(result) + "\n")


def score_launches(
    lines: pd.DataFrame,
    products: pd.DataFrame,
    series: pd.DataFrame,
    keys: pd.DataFrame,
    cutoff: date,
    args: argparse.Namespace,
    options: object,
) -> dict[str, object]:
    """The SKUs first sold inside the holdout, forecast as launches (their first sale day as the
    launch date) with the panel's peers, against zero and the category average from launch."""
    first_sale = pd.to_datetime(lines["order_date"]).dt.date.groupby(lines["sku"]).min()
    launched = first_sale[first_sale > cutoff]
    category = dict(zip(products["sku"], products["category"], strict=True))
    sold = series.drop_duplicates("unique_id")[["sku", "warehouse"]]
    where = sold.assign(category=sold["sku"].map(category)).groupby("category")["warehouse"].unique()
    items = [
        Launch(str(sku), str(wh), day)
        for sku, day in launched.items()
        for wh in sorted(where.get(category[sku], []))
    ]
    if not items:
        return {"series": 0}
    extra = launch_series(items, cutoff, args.days)
    panel = pd.concat([series, extra], ignore_index=True)
    history = panel[["unique_id", "ds", "y", "censored"]]
    keys = build_peer_keys(panel, products)
    fc = run_forecast(history, args.holdout, "D", (80, 95), options, peers=Peers(keys))  # type: ignore[arg-type]
    ids = set(extra["unique_id"])
    fc = hold_until_launch(fc[fc["unique_id"].isin(ids)], items, "D")
    future = build_demand_series(lines, None, end=END, history_days=args.days + args.holdout)
    pts = fc[["unique_id", "ds", "yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"]].merge(
        future[["unique_id", "ds", "y"]].rename(columns={"y": "actual"}), on=["unique_id", "ds"], how="left"
    )
    pts["actual"] = pts["actual"].fillna(0.0)
    pts["zero"] = 0.0
    established = set(series["unique_id"])
    cat_avg = category_average(
        series[["unique_id", "ds", "y"]], build_peer_keys(series, products), established, args.new_days
    )
    launch_day = {x.sku: pd.Timestamp(x.launch_date) for x in items}
    sku = extra.drop_duplicates("unique_id").set_index("unique_id")["sku"]
    on_sale = pts["ds"] >= pts["unique_id"].map(sku).map(launch_day)
    pts["category_average"] = pts["unique_id"].map(sku).map(category).map(cat_avg).fillna(0.0) * on_sale
    coverage = interval_coverage(pts)
    return {
        "skus": len(launched),
        "series": len(ids),
        "units_actual": round(float(pts["actual"].sum()), 1),
        "units_before_launch": round(float(pts.loc[~on_sale, "yhat"].sum()), 1),
        "accuracy": {
            name: score(pts, col)
            for name, col in (
                ("seam (launch from peers)", "yhat"),
                ("zero", "zero"),
                ("category average", "category_average"),
            )
        },
        "coverage": coverage,
    }


def build_markdown(result: dict[str, object], command: str) -> str:
    """Markdown table of the new products' WAPE and bias per method."""
    acc: dict[str, dict[str, float]] = result["accuracy"]  # type: ignore[assignment]
    rows = [
        f"    {command}",
        "",
        f"{result['new_series']} new series ({result['new_skus']} SKUs; {result['new_from_peers']} from peers, "
        f"{result['new_zero_no_peers']} at 0 without peers) of {result['series']}; "
        f"{result['units_actual_new']} units sold by them in the {result['holdout']}-day holdout. "
        f"Established series identical with and without peers: {result['established_identical_with_and_without_peers']}. "
        f"Coverage of seam's 80% / 95% intervals on the new products: "
        f"{result['coverage_peers']['80']} / {result['coverage_peers']['95']}.",  # type: ignore[index]
        "",
        "| method | WAPE | bias |",
        "|---|---:|---:|",
        *(f"| {name} | {v['wape']:.3f} | {v['bias']:+.3f} |" for name, v in acc.items()),
    ]
    launches: dict[str, object] = result["launches"]  # type: ignore[assignment]
    if launches.get("series"):
        lacc: dict[str, dict[str, float]] = launches["accuracy"]  # type: ignore[assignment]
        rows += [
            "",
            f"Launches inside the holdout: {launches['skus']} SKUs, {launches['series']} launch series, "
            f"{launches['units_actual']} units sold; seam's forecast before the launch dates: "
            f"{launches['units_before_launch']} units; coverage of its 80% / 95% intervals: "
            f"{launches['coverage']['80']} / {launches['coverage']['95']}.",  # type: ignore[index]
            "",
            "| method | WAPE | bias |",
            "|---|---:|---:|",
            *(f"| {name} | {v['wape']:.3f} | {v['bias']:+.3f} |" for name, v in lacc.items()),
        ]
    return "\n".join(rows)


if __name__ == "__main__":
    main()
