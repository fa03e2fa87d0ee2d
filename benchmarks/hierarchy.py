"""Coverage and accuracy of the reconciled forecast hierarchy on the demo, per level, base vs reconciled.

The demo ERP (``DemoSize()``: 200 SKUs x 5 warehouses, two years of daily demand, in memory) is
forecast as the nightly run does at ``--origins`` nights, ``--horizon`` days apart, ending
``--horizon`` days before the last day (each night's holdout is the ``--horizon`` days after it):
the SKU x warehouse series by `run_forecast` (with new products from their peers), then
`forecast_hierarchy` (aggregates forecast from their summed history, MinT reconciliation).  On each
holdout, per level (total, category, category x warehouse, SKU, SKU x warehouse):

- coverage of the 80% / 95% intervals: the level's own base bands, the reconciled bands, and for the
  aggregates the sum of the SKU x warehouse bands (what the report showed before);
- WAPE (sum |error| / sum actual) and MASE (mean over series of the mean absolute error scaled by
  the series' in-sample mean absolute weekly difference) of base and reconciled forecasts;
- the time of the bottom forecast and of the reconcile stage (aggregates' forecasts + MinT).

Writes ``benchmarks/results/hierarchy.json`` and ``benchmarks/results/hierarchy.md``.

Usage (from the repository root):
    .venv/bin/python benchmarks/hierarchy.py [--origins 4] [--horizon 28] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.demo import DemoSize, build_erp, build_order_lines
from pipelines.forecasting import Peers, build_options, run_forecast
from pipelines.forecasting.hierarchy import (
    LEVEL_KEYS,
    LEVELS,
    NO_CATEGORY,
    HierarchyShards,
    HierarchySpec,
    forecast_hierarchy,
    forecast_hierarchy_by_shard,
)
from pipelines.forecasting.inputs import build_history
from pipelines.forecasting.peers import build_peer_keys
from pipelines.forecasting.reconcile import contain_bounds
from pipelines.forecasting.rows import build_forecast_rows
from pipelines.lake import Lake
from pipelines.series import build_demand_series, join_keys
from pipelines.sharding import shard_of

RESULTS = Path(__file__).resolve().parent / "results"
log = logging.getLogger(__name__)


def level_frame(bottom: pd.DataFrame, level: str, value: str = "y") -> pd.DataFrame:
    """Bottom rows (`category, sku, warehouse, ds, <value>`) summed to a level's nodes."""
    keys = list(LEVEL_KEYS[level])
    return bottom.groupby([*keys, "ds"], as_index=False, dropna=False)[value].sum()


def mase_scales(series: pd.DataFrame, level: str) -> pd.DataFrame:
    """Per node of a level: the in-sample mean absolute weekly difference (MASE's scale)."""
    keys = list(LEVEL_KEYS[level])
    hist = level_frame(series, level)
    if keys:
        diff = hist.groupby(keys, dropna=False)["y"].diff(7).abs()
        return hist.assign(d=diff).groupby(keys, as_index=False, dropna=False)["d"].mean()
    return pd.DataFrame({"d": [hist["y"].diff(7).abs().mean()]})


def evaluate(
    rows: pd.DataFrame,
    base: pd.DataFrame,
    bottom_rows: pd.DataFrame,
    actual: pd.DataFrame,
    history: pd.DataFrame,
    by_shard: dict[str, pd.DataFrame] | None = None,
) -> list[dict[str, object]]:
    """Per level: coverage and accuracy of base, reconciled (and summed bottom bands) on the holdout;
    `by_shard`: also of these reconciled rows made shard by shard (name -> rows)."""
    out = []
    summed_cols = ["yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"]
    for level in LEVELS:
        keys = list(LEVEL_KEYS[level])
        act = level_frame(actual, level).rename(columns={"ds": "target_date", "y": "actual"})
        rec = rows[rows["level"] == level][[*keys, "target_date", *summed_cols]]
        bas = base[base["level"] == level][[*keys, "target_date", *summed_cols]]
        summed = bottom_rows.groupby([*keys, "target_date"], as_index=False, dropna=False)[summed_cols].sum()
        entry: dict[str, object] = {"level": level}
        scales = mase_scales(history, level)
        own = rec.merge(bas, on=[*keys, "target_date"], suffixes=("", "_b"))
        for lv in ("80", "95"):
            lo, hi = contain_bounds(own["yhat"], own[f"yhat_lo_{lv}_b"], own[f"yhat_hi_{lv}_b"])
            own[f"yhat_lo_{lv}"], own[f"yhat_hi_{lv}"] = lo, hi
        variants = (
            ("base", bas),
            ("reconciled", rec),
            ("rec_own_bands", own[[*keys, "target_date", *summed_cols]]),
            ("summed_bottom", summed),
            *(
                (name, frame[frame["level"] == level][[*keys, "target_date", *summed_cols]])
                for name, frame in (by_shard or {}).items()
            ),
        )
        for name, frame in variants:
            if name == "summed_bottom" and level == "sku_warehouse":
                continue
            on = [*keys, "target_date"]
            m = frame.merge(act, on=on, how="inner")
            err = (m["actual"] - m["yhat"]).abs()
            entry[f"{name}_points"] = len(m)
            entry[f"{name}_cov80"] = float(
                ((m["actual"] >= m["yhat_lo_80"]) & (m["actual"] <= m["yhat_hi_80"])).mean()
            )
            entry[f"{name}_cov95"] = float(
                ((m["actual"] >= m["yhat_lo_95"]) & (m["actual"] <= m["yhat_hi_95"])).mean()
            )
            entry[f"{name}_wape"] = float(err.sum() / m["actual"].abs().sum())
            per = m.assign(e=err).groupby(keys, dropna=False)["e"].mean() if keys else pd.Series([err.mean()])
            sc = scales.set_index(keys)["d"] if keys else scales["d"]
            ratio = (per / sc.reindex(per.index)) if keys else per / sc.iloc[0]
            ratio = ratio[np.isfinite(ratio)]
            entry[f"{name}_mase"] = float(ratio.mean())
        out.append(entry)
    return out


def time_mint(skus: int, warehouses: int, categories: int, horizon: int, periods: int) -> dict[str, object]:
    """Seconds of MinT alone (means only, the nightly default) on a synthetic hierarchy of
    skus x warehouses bottom series: shows how the reconciliation scales, whichever path it takes."""
    from pipelines.forecasting.hierarchy import build_hierarchy, build_residuals
    from pipelines.forecasting.reconcile import reconcile_mint

    rng = np.random.default_rng(0)
    cat = rng.integers(0, categories, skus)
    bottom = pd.DataFrame(
        {
            "sku": np.repeat([f"S{i:05d}" for i in range(skus)], warehouses),
            "warehouse": np.tile([f"W{j}" for j in range(warehouses)], skus),
            "category": np.repeat([f"C{c:03d}" for c in cat], warehouses),
        }
    )
    tree = build_hierarchy(bottom)
    n = len(tree.nodes)
    y_b = rng.poisson(3.0, (len(bottom), periods + 28)).astype(float)
    values = np.vstack([tree.aggregation @ y_b, y_b])
    t0 = time.perf_counter()
    z = build_residuals(values, 7, periods=periods)
    base = values[:, -horizon:] * rng.uniform(0.8, 1.2, (n, horizon))
    scale = np.sqrt(values[:, -horizon:] + 1.0)
    rec = reconcile_mint(base, {80.0: scale}, tree.aggregation, z, variances=False)
    return {
        "bottom": len(bottom),
        "aggregates": tree.n_aggregates,
        "horizon": horizon,
        "method": rec.method,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def sweep_covariance(horizon: int, jobs: int) -> list[dict[str, object]]:
    """WAPE per level on the last holdout of the demo for the same base forecasts reconciled with
    MinT-shrink (estimated lambda, then fixed lambdas), MinT-diagonal and bottom-up."""
    from pipelines.forecasting.hierarchy import build_hierarchy, build_residuals
    from pipelines.forecasting.reconcile import reconcile_mint
    from pipelines.series import join_keys

    size = DemoSize()
    erp = build_erp(size)
    lines = build_order_lines(erp)
    products = erp["products"][["sku", "category"]]
    night = size.end_date - timedelta(days=horizon)
    series = build_demand_series(
        lines[lines["order_date"] < pd.Timestamp(night + timedelta(days=1))],
        None,
        end=night,
        history_days=size.days,
    )
    history, _ = build_history(series, "D")
    options = replace(build_options("D", new_product_periods=28), n_jobs=jobs)
    fc = run_forecast(
        history, horizon, "D", (80, 95), options, None, Peers(build_peer_keys(series, products), None)
    )
    bottom = build_forecast_rows(fc, series, run_date=night, model_version="bench", levels=(80, 95))
    result = forecast_hierarchy(
        bottom, series, products, HierarchySpec("D", horizon, (80.0, 95.0), options), keep_base=True
    )
    assert result.base is not None
    base = result.base
    nodes = base.drop_duplicates("series_key")[["series_key", "level", "category", "sku", "warehouse"]]
    nodes = nodes.reset_index(drop=True)
    low = nodes[nodes["level"] == "sku_warehouse"]
    tree = build_hierarchy(low[["category", "sku", "warehouse"]])
    n = len(nodes)
    yhat = base["yhat"].to_numpy().reshape(n, horizon)
    s80 = (base["yhat_hi_80"].to_numpy().reshape(n, horizon) - yhat) / 1.2815515655446004
    ids = pd.Index(join_keys(low["sku"], low["warehouse"]))
    dates = pd.DatetimeIndex(sorted(history["ds"].unique()))
    wide = history.pivot_table(index="unique_id", columns="ds", values="y", aggfunc="sum")
    y_b = wide.reindex(index=ids, columns=dates).fillna(0.0).to_numpy()
    z = build_residuals(np.vstack([tree.aggregation @ y_b, y_b]), 7, periods=364)
    cat = dict(zip(products["sku"], products["category"], strict=True))
    full = build_demand_series(lines, None, end=size.end_date, history_days=size.days)
    full = full[full["ds"] > pd.Timestamp(night)].assign(
        category=lambda f: f["sku"].map(cat).fillna(NO_CATEGORY)
    )
    days = pd.date_range(pd.Timestamp(night) + pd.Timedelta(days=1), periods=horizon)

    def wape(mean: np.ndarray) -> dict[str, float]:
        frame = nodes.loc[nodes.index.repeat(horizon)].reset_index(drop=True)
        frame = frame.assign(target_date=np.tile(days.to_numpy(), n), f=mean.ravel())
        out = {}
        for level in LEVELS:
            keys = list(LEVEL_KEYS[level])
            act = full.groupby([*keys, "ds"], as_index=False)["y"].sum()
            m = frame[frame["level"] == level].merge(
                act.rename(columns={"ds": "target_date"}), on=[*keys, "target_date"]
            )
            out[level] = round(float((m["f"] - m["y"]).abs().sum() / m["y"].abs().sum()), 4)
        return out

    rows: list[dict[str, object]] = [{"method": "base (unreconciled)", **wape(yhat)}]
    for lam in (None, 0.5, 0.25, 0.1):
        rec = reconcile_mint(yhat, {80.0: s80}, tree.aggregation, z, variances=False, shrinkage=lam)
        rows.append({"method": rec.method, **wape(rec.mean)})
    rec = reconcile_mint(yhat, {80.0: s80}, tree.aggregation, None, variances=False)
    rows.append({"method": rec.method, **wape(rec.mean)})
    b = np.maximum(yhat[tree.n_aggregates :], 0.0)
    rows.append({"method": "bottom-up", **wape(np.vstack([tree.aggregation @ b, b]))})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--origins", type=int, default=4)
    p.add_argument("--horizon", type=int, default=28)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--skus", type=int, default=200)
    p.add_argument("--warehouses", type=int, default=5)
    p.add_argument(
        "--mint-only",
        metavar="SKUSxWAREHOUSES",
        help="only time MinT on a synthetic hierarchy, e.g. 4000x5 (40 categories), and exit",
    )
    p.add_argument(
        "--sweep", action="store_true", help="only compare covariances on the last holdout, and exit"
    )
    p.add_argument(
        "--shards",
        type=int,
        nargs="*",
        default=[],
        help="also reconcile as the nightly step does, shard by shard, with the SKUs in this many "
        "shards (`shard_of`), e.g. --shards 2 8; reported beside the whole night's figures",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.sweep:
        found = sweep_covariance(args.horizon, args.jobs)
        (RESULTS / "hierarchy_covariance.json").write_text(json.dumps(found, indent=1))
        print(pd.DataFrame(found).to_markdown(index=False))
        return
    if args.mint_only:
        skus, warehouses = (int(x) for x in args.mint_only.split("x"))
        print(json.dumps(time_mint(skus, warehouses, 40, args.horizon, 364)))
        return
    size = DemoSize(skus=args.skus, warehouses=args.warehouses)
    erp = build_erp(size)
    lines = build_order_lines(erp)
    products = erp["products"][["sku", "category"]]
    end = size.end_date
    everything = build_demand_series(lines, None, end=end, history_days=size.days)
    everything = everything.assign(
        category=everything["sku"]
        .map(dict(zip(products["sku"], products["category"], strict=True)))
        .fillna(NO_CATEGORY)
    )
    options = build_options("D", new_product_periods=28)
    options = replace(options, n_jobs=args.jobs)
    # Gaussian bands computed, and the own (default) bands derived from the same run in `evaluate`
    spec = HierarchySpec("D", args.horizon, (80.0, 95.0), options, bands="gaussian")
    per_origin, timings = [], []
    for k in range(args.origins, 0, -1):
        night = end - timedelta(days=k * args.horizon)
        series = build_demand_series(
            lines[lines["order_date"] < pd.Timestamp(night + timedelta(days=1))],
            None,
            end=night,
            history_days=size.days,
        )
        history, _ = build_history(series, "D")
        peers = Peers(build_peer_keys(series, products), None)
        t0 = time.perf_counter()
        fc = run_forecast(history, args.horizon, "D", (80, 95), options, None, peers)
        bottom_seconds = time.perf_counter() - t0
        bottom = build_forecast_rows(fc, series, run_date=night, model_version="bench", levels=(80, 95))
        t1 = time.perf_counter()
        result = forecast_hierarchy(bottom, series, products, spec, keep_base=True)
        reconcile_seconds = time.perf_counter() - t1
        default_timing = {}
        if k == 1:  # the nightly default (own bands: MinT means only), timed on the last night
            t2 = time.perf_counter()
            nightly = forecast_hierarchy(bottom, series, products, replace(spec, bands="own"))
            default_timing = {
                "default_reconcile_seconds": round(time.perf_counter() - t2, 1),
                "default_mint_seconds": nightly.notes["seconds_reconcile"],
                "default_method": nightly.notes["method"],
            }
        by_shard = {}
        for count in args.shards:
            of = bottom["sku"].map(lambda sku, n=count: shard_of(sku, n))
            sku_of = series["unique_id"].map(
                dict(zip(join_keys(bottom["sku"], bottom["warehouse"]), of, strict=True))
            )
            shards = HierarchyShards(
                count,
                lambda k, of=of, rows=bottom: rows[of == k],
                lambda k, sku_of=sku_of, demand=series: demand[sku_of == k],
            )
            t3 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp, Lake(Path(tmp)).spill() as spill:
                made = forecast_hierarchy_by_shard(shards, products, replace(spec, bands="own"), spill)
                made_rows = made.rows
            default_timing[f"by_{count}_shards_seconds"] = round(time.perf_counter() - t3, 1)
            by_shard[f"shards{count}"] = made_rows.assign(
                target_date=pd.to_datetime(made_rows["target_date"])
            )
        window = everything[
            (everything["ds"] > pd.Timestamp(night))
            & (everything["ds"] <= pd.Timestamp(night + timedelta(days=args.horizon)))
        ]
        hist = everything[everything["ds"] <= pd.Timestamp(night)]
        bottom_rows = bottom.assign(
            category=bottom["sku"]
            .map(dict(zip(products["sku"], products["category"], strict=True)))
            .fillna(NO_CATEGORY),
            target_date=pd.to_datetime(bottom["target_date"]),
        )
        rows = result.rows.assign(target_date=pd.to_datetime(result.rows["target_date"]))
        assert result.base is not None
        base = result.base.assign(target_date=pd.to_datetime(result.base["target_date"]))
        for entry in evaluate(rows, base, bottom_rows, window, hist, by_shard):
            per_origin.append({"night": night.isoformat(), **entry})
        timings.append(
            {
                "night": night.isoformat(),
                "bottom_series": int(series["unique_id"].nunique()),
                "bottom_forecast_seconds": round(bottom_seconds, 1),
                "reconcile_seconds": round(reconcile_seconds, 1),
                **{k2: v for k2, v in result.notes.items() if k2 != "series"},
                "series": result.notes["series"],
                **default_timing,
            }
        )
        print(json.dumps(timings[-1]), flush=True)
    frame = pd.DataFrame(per_origin)
    # pooled over origins: coverage and WAPE weighted by points / actuals are close to these means
    summary = frame.drop(columns=["night"]).groupby("level", sort=False).mean(numeric_only=True)
    summary = summary.reindex(list(LEVELS))
    for col in [c for c in summary.columns if c.endswith("_points")]:
        summary[col] = frame.groupby("level")[col].sum().reindex(list(LEVELS))
    out = {
        "command": "python benchmarks/hierarchy.py " + " ".join(sys.argv[1:]),
        "size": {"skus": size.skus, "warehouses": size.warehouses, "days": size.days},
        "horizon": args.horizon,
        "origins": args.origins,
        "jobs": args.jobs,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "timings": timings,
        "per_origin": per_origin,
        "summary": summary.reset_index().to_dict("records"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hierarchy.json").write_text(json.dumps(out, indent=1, default=str))
    md = [
        "| level | points | cov80 base | cov80 rec gaussian | cov80 rec own bands | cov80 summed SKU bands "
        "| cov95 base | cov95 rec gaussian | cov95 rec own bands | cov95 summed SKU bands "
        "| WAPE base | WAPE rec | MASE base | MASE rec |",
        "|---" * 14 + "|",
    ]
    for lv, r in summary.iterrows():

        def f(c: str, pct: bool = True, r: pd.Series = r) -> str:
            v = r.get(c)
            return "–" if v is None or pd.isna(v) else (f"{v:.1%}" if pct else f"{v:.3f}")

        md.append(
            f"| {lv} | {int(r['reconciled_points'])} | {f('base_cov80')} | {f('reconciled_cov80')} | {f('rec_own_bands_cov80')} | {f('summed_bottom_cov80')} | "
            f"{f('base_cov95')} | {f('reconciled_cov95')} | {f('rec_own_bands_cov95')} | {f('summed_bottom_cov95')} | {f('base_wape')} | {f('reconciled_wape')} | "
            f"{f('base_mase', False)} | {f('reconciled_mase', False)} |"
        )
    md.append("")
    md.append(
        "| night | bottom series | bottom forecast s | reconcile s | of which aggregates' forecast s | MinT s | method |"
    )
    md.append("|---|---|---|---|---|---|---|")
    for t in timings:
        md.append(
            f"| {t['night']} | {t['bottom_series']} | {t['bottom_forecast_seconds']} | {t['reconcile_seconds']} | {t['seconds_forecast_aggregates']} | {t['seconds_reconcile']} | {t['method']} |"
        )
    last = timings[-1]
    md.append("")
    md.append(
        f"Nightly default (own bands, MinT means only) on {last['night']}: reconcile step "
        f"{last.get('default_reconcile_seconds')} s, of which MinT {last.get('default_mint_seconds')} s; "
        f"bottom forecast {last['bottom_forecast_seconds']} s."
    )
    for count in args.shards:
        name = f"shards{count}"
        md += [
            "",
            f"Reconciled shard by shard ({count} shards of SKUs, `forecast_hierarchy_by_shard`, own bands) "
            "against the whole night (own bands):",
            "",
            "| level | cov80 whole | cov80 by shard | cov95 whole | cov95 by shard | WAPE whole | WAPE by shard "
            "| MASE whole | MASE by shard |",
            "|---" * 9 + "|",
        ]
        for lv, r in summary.iterrows():
            cells = [
                f"{r[c]:.1%}" if c.endswith(("cov80", "cov95", "wape")) else f"{r[c]:.3f}"
                for metric in ("cov80", "cov95", "wape", "mase")
                for c in (f"rec_own_bands_{metric}", f"{name}_{metric}")
            ]
            md.append(f"| {lv} | " + " | ".join(cells) + " |")
        md.append("")
        md.append(
            "Seconds shard by shard, per night: "
            + ", ".join(f"{t['night']} {t.get(f'by_{count}_shards_seconds')}" for t in timings)
        )
    (RESULTS / "hierarchy.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
