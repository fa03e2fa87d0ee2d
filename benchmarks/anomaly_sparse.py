"""False alarms and recall of pipelines.anomaly.score on sparse product x location demand.

The panel is what an ERP with slow movers looks like: ``--products`` x ``--locations`` daily demand
series, weekday-only trading, a handful of orders a year per series (products sell 1 to 60 times a
year, locations differ), each order of a size drawn from the product's own size distribution (a
log-normal around a typical size, some products in packs of 6 or 12), several orders on one day
adding up. In the second year a few anomalies are injected and labelled:

* burst: many orders on one day (10-30 usual orders);
* size: one order 20-50 times the product's typical size (a unit or typing error);
* run: orders on five weekdays in a row for a series that sells about monthly or less.

The scorer and its thresholds are not tuned to this generator. Figures: false alarms (incidents) per
1,000 series-days on the same panel without the anomalies, the share of ordinary orders flagged and
flagged critical, and incident recall per kind (with precision) on the panel with anomalies.

Usage:
    .venv/bin/python benchmarks/anomaly_sparse.py [--products 150] [--locations 6] [--seed 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.anomaly import DEFAULT_SEVERITIES, ScoreOptions, build_incidents, score

logger = logging.getLogger(__name__)
START = pd.Timestamp("2024-01-01")  # a Monday
DAYS = 730
FIRST_ANOMALY_DAY = 400


@dataclass
class Panel:
    """The sparse panel without and with anomalies, and the labels."""

    clean: pd.DataFrame
    dirty: pd.DataFrame
    labels: pd.DataFrame


def build_panel(n_products: int, n_locations: int, seed: int, days: int = DAYS) -> Panel:
    """Generate the panel (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(START, periods=days, freq="D")
    weekday = np.asarray(ds.day_of_week < 5)
    per_year = np.exp(rng.uniform(np.log(1.0), np.log(60.0), n_products))
    typical = np.exp(rng.uniform(np.log(1.0), np.log(50.0), n_products))
    spread = rng.uniform(0.2, 1.0, n_products)
    pack = rng.choice([1, 1, 1, 6, 12], n_products)
    loc_factor = np.exp(rng.normal(0.0, 0.5, (n_products, n_locations)))
    # Orders per weekday: Poisson, with a mild yearly cycle.
    season = 1.0 + 0.3 * np.sin(2 * np.pi * np.arange(days) / 365.25 + rng.uniform(0, 2 * np.pi))
    rate = (per_year[:, None] * loc_factor / (365.25 * 5 / 7))[:, :, None] * season * weekday
    n_orders = rng.poisson(rate)  # (product, location, day)

    def size(p: np.ndarray) -> np.ndarray:
        raw = typical[p] * np.exp(spread[p] * rng.standard_normal(len(p)))
        return np.maximum(pack[p], pack[p] * np.round(raw / pack[p]))

    def totals(orders: np.ndarray) -> np.ndarray:
        pi, li, di = np.nonzero(orders)
        reps = orders[pi, li, di]
        amounts = size(np.repeat(pi, reps))
        out = np.zeros(orders.shape)
        np.add.at(out, (np.repeat(pi, reps), np.repeat(li, reps), np.repeat(di, reps)), amounts)
        return out

    clean = totals(n_orders)
    dirty = clean.copy()
    labels = []
    pairs = [(p, loc) for p in range(n_products) for loc in range(n_locations)]
    picks = rng.choice(len(pairs), size=max(6, len(pairs) // 20), replace=False)
    candidates = np.flatnonzero(weekday & (np.arange(days) >= FIRST_ANOMALY_DAY))
    for k in picks:
        p, loc = pairs[k]
        day = int(rng.choice(candidates[:-7]))
        what = str(rng.choice(["burst", "size", "run"]))
        if what == "run" and rate[p, loc].max() * 5 / 7 * 365.25 > 15:
            what = "burst"  # a run of orders is only unusual for a series that sells rarely
        if what == "burst":
            n = int(rng.integers(10, 31))
            dirty[p, loc, day] += size(np.full(n, p)).sum()
            labels.append((p, loc, day, day, what, float(n)))
        elif what == "size":
            mag = float(rng.uniform(20, 50))
            dirty[p, loc, day] += max(pack[p], pack[p] * np.round(typical[p] * mag / pack[p]))
            labels.append((p, loc, day, day, what, mag))
        else:
            run = candidates[candidates >= day][:5]
            dirty[p, loc, run] += size(np.full(len(run), p))
            labels.append((p, loc, int(run[0]), int(run[-1]), what, float(len(run))))
    ids = np.array([f"demand:P{p:04d}|L{loc:02d}" for p in range(n_products) for loc in range(n_locations)])

    def long(values: np.ndarray) -> pd.DataFrame:
        flat = values.reshape(-1, days)
        return pd.DataFrame(
            {"unique_id": np.repeat(ids, days), "ds": np.tile(ds.to_numpy(), len(ids)), "y": flat.ravel()}
        )

    lab = pd.DataFrame(labels, columns=["product", "location", "start", "end", "kind", "magnitude"])
    lab["unique_id"] = ids[lab["product"] * n_locations + lab["location"]]
    lab["start_ds"] = ds[lab["start"]]
    lab["end_ds"] = ds[lab["end"]]
    return Panel(clean=long(clean), dirty=long(dirty), labels=lab)


def evaluate(incidents: pd.DataFrame, labels: pd.DataFrame, after: pd.Timestamp) -> dict:
    """Incident recall per kind and precision; a label is found by an incident of its series that
    overlaps its days (a run: its five days), which also makes that incident a true positive."""
    inc = incidents[incidents["start"] >= after].copy()
    inc["tp"] = False
    by_kind: dict[str, dict] = {}
    for lab in labels.itertuples():
        hit = (
            (inc["unique_id"] == lab.unique_id) & (inc["start"] <= lab.end_ds) & (inc["end"] >= lab.start_ds)
        )
        inc.loc[hit, "tp"] = True
        d = by_kind.setdefault(lab.kind, {"labels": 0, "detected": 0})
        d["labels"] += 1
        d["detected"] += int(hit.any())
    for d in by_kind.values():
        d["recall"] = d["detected"] / d["labels"]
    found = sum(d["detected"] for d in by_kind.values())
    return {
        "labels": len(labels),
        "recall": found / max(len(labels), 1),
        "precision": float(inc["tp"].mean()) if len(inc) else float("nan"),
        "incidents": len(inc),
        "by_kind": by_kind,
    }


def main() -> None:
    """Run the benchmark and write results/anomaly_sparse.{json,md}."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--products", type=int, default=150)
    ap.add_argument("--locations", type=int, default=6)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="anomaly_sparse", help="stem of the result files")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    panel = build_panel(args.products, args.locations, args.seed)
    opts = ScoreOptions(n_jobs=args.jobs)
    after = START + pd.Timedelta(days=365)  # a year of history before anything is judged
    t0 = time.perf_counter()
    clean = score(panel.clean, options=opts)
    secs = time.perf_counter() - t0
    clean = clean[clean["ds"] >= after]
    clean_inc = build_incidents(clean)
    orders = clean[clean["y"] > 0]
    flagged = orders["is_anomaly"]
    critical = flagged & (orders["score"] >= DEFAULT_SEVERITIES["critical"])
    dirty = score(panel.dirty, options=opts)
    metric = evaluate(build_incidents(dirty), panel.labels, after)
    days_with_orders = float((panel.clean["y"] > 0).mean())
    sev = clean_inc["severity"].value_counts().to_dict() if len(clean_inc) else {}
    result = {
        "command": f"python benchmarks/anomaly_sparse.py --products {args.products} "
        f"--locations {args.locations} --seed {args.seed}",
        "series": args.products * args.locations,
        "days": DAYS,
        "share_of_days_with_orders": days_with_orders,
        "scoring_seconds": round(secs, 2),
        "series_days_judged": len(clean),
        "false_alarms_per_1000_series_days": 1000 * len(clean_inc) / len(clean),
        "false_alarm_severities": {str(k): int(v) for k, v in sev.items()},
        "ordinary_orders": len(orders),
        "ordinary_orders_flagged_share": float(flagged.mean()),
        "ordinary_orders_flagged_critical_share": float(critical.mean()),
        "median_score_of_ordinary_orders": float(orders["score"].median()),
        "min_lower_band": float(clean["lower"].min()),
        "model_of_order_days": {str(k): int(v) for k, v in orders["model"].value_counts().items()},
        "anomalies": metric,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=float))
    (args.out / f"{args.name}.md").write_text(to_markdown(result))
    logger.info(json.dumps(result, indent=2, default=float))


def to_markdown(r: dict) -> str:
    """Render the result as a small Markdown report."""
    a = r["anomalies"]
    lines = [
        "# Anomaly scoring of sparse product x location demand",
        "",
        f"Command: `{r['command']}`  ",
        f"{r['series']} weekday-only series x {r['days']} days, orders on {100 * r['share_of_days_with_orders']:.1f}% "
        f"of days; judged from the second year on ({r['series_days_judged']:,} series-days), scored in "
        f"{r['scoring_seconds']} s.",
        "",
        "| figure (panel without anomalies) | value | target |",
        "|---|---|---|",
        f"| false alarms per 1,000 series-days | {r['false_alarms_per_1000_series_days']:.3f} | < 1 |",
        f"| their severities | {r['false_alarm_severities']} | |",
        f"| ordinary orders flagged / flagged critical | {100 * r['ordinary_orders_flagged_share']:.2f}% / "
        f"{100 * r['ordinary_orders_flagged_critical_share']:.2f}% of {r['ordinary_orders']:,} | |",
        f"| median score of an ordinary order | {r['median_score_of_ordinary_orders']:.4f} | |",
        f"| lowest lower band | {r['min_lower_band']:.3g} | >= 0 |",
        "",
        f"Anomalies: {a['labels']} labelled, recall {a['recall']:.3f}, precision {a['precision']:.3f} "
        f"({a['incidents']} incidents).",
        "",
        "| kind | labels | recall |",
        "|---|---|---|",
    ]
    for k, d in sorted(a["by_kind"].items()):
        lines.append(f"| {k} | {d['labels']} | {d['recall']:.3f} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
