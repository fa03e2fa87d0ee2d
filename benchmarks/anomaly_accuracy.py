"""Accuracy of pipelines.anomaly on a labelled synthetic panel (and optionally the demo data).

Builds daily series with weekly and yearly seasonality, trend, AR(1) noise, count and intermittent
series, promotions and holidays given as known events, then injects labelled spikes, dips, level shifts
and missing days in the second year. The scorer and its default thresholds are NOT tuned to this
generator; magnitudes are chosen to be clearly visible to a person looking at the chart.

Figures: incident-level precision, recall, F1, median detection delay per kind, and the false-alarm
rate (incidents per 1,000 series-days) on the same panel without injected anomalies. Order lines:
record-level precision/recall of mispriced lines, wrong discounts and duplicates.

Usage:
    .venv/bin/python benchmarks/anomaly_accuracy.py [--series 600] [--seed 7] [--out benchmarks/results]
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

from pipelines.anomaly import ScoreOptions, build_incidents, score, score_records

logger = logging.getLogger(__name__)
START = pd.Timestamp("2023-01-02")
DAYS = 730
WARMUP = 400  # anomalies only after a year of history


@dataclass
class Panel:
    """A synthetic panel: clean values, values with anomalies, events and labels."""

    clean: pd.DataFrame
    dirty: pd.DataFrame
    events: pd.DataFrame
    labels: pd.DataFrame


def build_panel(n_series: int, seed: int, days: int = DAYS) -> Panel:
    """Generate the labelled panel (vectorised; deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(START, periods=days, freq="D")
    t = np.arange(days)
    dow = ds.day_of_week.to_numpy()
    doy = ds.day_of_year.to_numpy()
    kind = rng.choice(["count", "amount", "intermittent"], size=n_series, p=[0.5, 0.35, 0.15])
    level = np.exp(rng.uniform(np.log(20), np.log(5000), n_series))
    level[kind == "intermittent"] = rng.uniform(0.05, 0.6, (kind == "intermittent").sum())
    weekly = np.exp(rng.normal(0, 0.25, (n_series, 7)))
    weekly[rng.random(n_series) < 0.5, 5:] *= 0.4  # closed-ish weekends for half the series
    amp = rng.uniform(0, 0.3, n_series)
    phase = rng.uniform(0, 2 * np.pi, n_series)
    trend = rng.normal(0, 0.2, n_series) / 365.0
    mean = (
        level[:, None]
        * weekly[:, dow]
        * (1 + amp[:, None] * np.sin(2 * np.pi * doy[None, :] / 365.25 + phase[:, None]))
        * np.exp(trend[:, None] * t[None, :])
    )
    # Known events: Christmas (all series, demand drops), promotions (per series, demand rises).
    xmas = np.isin(ds.strftime("%m-%d"), ["12-25", "12-26", "01-01"])
    mean[:, xmas] *= 0.2
    promo = np.zeros((n_series, days), dtype=bool)
    for i in range(n_series):
        for s in rng.choice(days - 7, size=rng.integers(2, 8), replace=False):
            promo[i, s : s + rng.integers(1, 5)] = True
    mean = np.where(promo, mean * rng.uniform(1.5, 3.0, (n_series, 1)), mean)
    ar = np.zeros((n_series, days))
    eps = rng.normal(0, 1, (n_series, days))
    for j in range(1, days):
        ar[:, j] = 0.4 * ar[:, j - 1] + eps[:, j]
    cv = rng.uniform(0.04, 0.15, n_series)
    noisy = mean * np.exp(cv[:, None] * ar * np.sqrt(1 - 0.4**2))
    counts = kind != "amount"

    def realise(m: np.ndarray) -> np.ndarray:
        out = np.where(counts[:, None], rng.poisson(np.maximum(m, 0)).astype(float), np.round(m, 2))
        return out

    rng_state = rng.bit_generator.state
    clean = realise(noisy)
    dirty_mean = noisy.copy()
    labels = []
    missing = np.zeros((n_series, days), dtype=bool)
    for i in range(n_series):
        for _ in range(rng.integers(1, 4)):
            day = int(rng.integers(WARMUP, days - 20))
            if promo[i, max(0, day - 1) : day + 8].any() or xmas[max(0, day - 1) : day + 8].any():
                continue
            if any(lab[0] == i and abs(lab[1] - day) < 30 for lab in labels):
                continue
            what = rng.choice(["spike", "dip", "level_shift", "missing"], p=[0.35, 0.2, 0.25, 0.2])
            if kind[i] == "intermittent" and what in ("dip", "level_shift"):
                what = "spike"
            if what == "spike":
                if kind[i] == "intermittent":
                    dirty_mean[i, day] += rng.uniform(8, 20)
                    mag = float(dirty_mean[i, day])
                else:
                    mag = float(rng.uniform(2.0, 5.0))
                    dirty_mean[i, day] *= mag
                labels.append((i, day, day, what, mag))
            elif what == "dip":
                mag = float(rng.uniform(0.0, 0.4))
                dirty_mean[i, day] *= mag
                labels.append((i, day, day, what, mag))
            elif what == "level_shift":
                mag = float(rng.choice([rng.uniform(0.4, 0.65), rng.uniform(1.5, 2.2)]))
                dirty_mean[i, day:] *= mag
                labels.append((i, day, days - 1, what, mag))
                break  # one level shift per series keeps labels unambiguous
            else:
                n = int(rng.integers(1, 4))
                missing[i, day : day + n] = True
                labels.append((i, day, day + n - 1, what, float(n)))
    rng.bit_generator.state = rng_state  # same noise draws for clean and dirty
    dirty = realise(dirty_mean)
    dirty[missing] = np.nan
    ids = np.array([f"s{i:05d}_{kind[i]}" for i in range(n_series)])

    def long(values: np.ndarray) -> pd.DataFrame:
        df = pd.DataFrame(
            {"unique_id": np.repeat(ids, days), "ds": np.tile(ds.to_numpy(), n_series), "y": values.ravel()}
        )
        return df[~np.isnan(df["y"])].reset_index(drop=True)  # missing days are absent rows

    pi, pj = np.nonzero(promo)
    events = pd.concat(
        [
            pd.DataFrame({"unique_id": ids[pi], "ds": ds[pj], "event": "promotion"}),
            pd.DataFrame({"unique_id": "*", "ds": ds[xmas], "event": "holiday: Christmas/New Year"}),
        ],
        ignore_index=True,
    )
    lab = pd.DataFrame(labels, columns=["series", "start", "end", "kind", "magnitude"])
    lab["unique_id"] = ids[lab["series"]]
    lab["start_ds"] = ds[lab["start"]]
    lab["end_ds"] = ds[lab["end"]]
    return Panel(clean=long(clean), dirty=long(dirty), events=events, labels=lab)


def evaluate_incidents(incidents: pd.DataFrame, labels: pd.DataFrame, after: pd.Timestamp) -> dict:
    """Incident-level precision/recall/F1 and detection delays.

    A label is detected by an incident of its series that overlaps its detection window: the labelled
    days for spikes, dips and missing days; the first 7 days for level shifts. An incident is a true
    positive if it overlaps a label's credit window (the labelled days, or the first 35 days of a
    level shift, the time the model needs to adopt the new level).
    """
    inc = incidents[incidents["start"] >= after - pd.Timedelta(days=30)].copy()
    inc["tp"] = False
    by_kind: dict[str, dict] = {}
    delays: dict[str, list[int]] = {}
    detected = []
    for lab in labels.itertuples():
        s = lab.start_ds
        det_end = s + pd.Timedelta(days=6) if lab.kind == "level_shift" else lab.end_ds
        credit_end = (
            s + pd.Timedelta(days=35) if lab.kind == "level_shift" else lab.end_ds + pd.Timedelta(days=1)
        )
        mine = inc["unique_id"] == lab.unique_id
        hit = mine & (inc["start"] <= det_end) & (inc["end"] >= s)
        inc.loc[mine & (inc["start"] <= credit_end) & (inc["end"] >= s), "tp"] = True
        ok = bool(hit.any())
        detected.append(ok)
        if ok:
            first = max(inc.loc[hit, "start"].min(), s)
            delays.setdefault(lab.kind, []).append(int((first - s).days))
        d = by_kind.setdefault(lab.kind, {"labels": 0, "detected": 0})
        d["labels"] += 1
        d["detected"] += int(ok)
    recall = float(np.mean(detected)) if detected else float("nan")
    precision = float(inc["tp"].mean()) if len(inc) else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    for k, d in by_kind.items():
        d["recall"] = d["detected"] / d["labels"]
        d["median_delay_days"] = float(np.median(delays[k])) if delays.get(k) else None
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "incidents": len(inc),
        "false_incidents": int((~inc["tp"]).sum()),
        "labels": len(labels),
        "by_kind": by_kind,
    }


def build_orders(n_lines: int, seed: int) -> tuple[pd.DataFrame, set[str]]:
    """Synthetic order lines with labelled mispriced lines, wrong discounts and duplicates."""
    rng = np.random.default_rng(seed)
    n_sku, n_cust = 300, 400
    base_price = np.exp(rng.uniform(np.log(2), np.log(500), n_sku))
    cust_disc = np.where(rng.random(n_cust) < 0.3, rng.choice([0.05, 0.1, 0.2], n_cust), 0.0)
    cust_price = np.where(rng.random(n_cust) < 0.1, rng.uniform(0.7, 0.9, n_cust), 1.0)
    n_orders = n_lines // 3
    order_day = np.sort(rng.integers(0, 730, n_orders))
    order_cust = rng.integers(0, n_cust, n_orders)
    per = rng.integers(1, 6, n_orders)
    oi = np.repeat(np.arange(n_orders), per)
    line_no = np.concatenate([np.arange(1, p + 1) for p in per])
    sku = rng.integers(0, n_sku, len(oi))
    c = order_cust[oi]
    day = order_day[oi]
    price = base_price[sku] * cust_price[c] * (1 + 0.1 * day / 730) * np.exp(rng.normal(0, 0.02, len(oi)))
    disc = np.clip(cust_disc[c] + rng.choice([0, 0, 0, 0.05], len(oi)), 0, 1)
    qty = np.ceil(rng.lognormal(1.0, 0.8, len(oi)))
    lines = pd.DataFrame(
        {
            "order_id": [f"SO{o:07d}" for o in oi],
            "line_no": line_no,
            "order_date": START + pd.to_timedelta(day, unit="D"),
            "sku": [f"SKU{s:04d}" for s in sku],
            "customer_id": [f"C{x:05d}" for x in c],
            "quantity": qty,
            "unit_price": np.round(price, 2),
            "discount": disc,
        }
    )
    bad: set[str] = set()
    cand = rng.choice(np.flatnonzero(day > 120), size=max(10, len(lines) // 500), replace=False)
    for j in cand:
        rid = f"{lines.at[j, 'order_id']}-{lines.at[j, 'line_no']}"
        what = rng.choice(["price_x10", "price_div10", "discount", "quantity"])
        if what == "price_x10":
            lines.at[j, "unit_price"] *= 10
        elif what == "price_div10":
            lines.at[j, "unit_price"] /= 10
        elif what == "discount":
            lines.at[j, "discount"] = 0.9
        else:
            lines.at[j, "quantity"] *= 100
        bad.add(rid)
    dups = lines.iloc[rng.choice(np.flatnonzero(day > 120), size=max(5, len(lines) // 2000), replace=False)]
    dups = dups[~dups.apply(lambda r: f"{r.order_id}-{r.line_no}" in bad, axis=1)].copy()
    dups["line_no"] = dups["line_no"] + 100
    bad |= {f"{r.order_id}-{r.line_no}" for r in dups.itertuples()}
    return pd.concat([lines, dups], ignore_index=True), bad


def evaluate_records(n_lines: int, seed: int) -> dict:
    """Record-level precision and recall of score_records on synthetic order lines."""
    lines, bad = build_orders(n_lines, seed)
    t0 = time.perf_counter()
    out = score_records(lines)
    secs = time.perf_counter() - t0
    flagged = set(out.loc[out["is_anomaly"], "record_id"])
    tp = len(flagged & bad)
    p = tp / len(flagged) if flagged else float("nan")
    r = tp / len(bad)
    return {
        "lines": len(lines),
        "labelled_bad": len(bad),
        "flagged": len(flagged),
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "seconds": round(secs, 2),
    }


def main() -> None:
    """Run the benchmark and write results/anomaly_accuracy.{json,md}."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=600)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--lines", type=int, default=60_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    panel = build_panel(args.series, args.seed)
    after = START + pd.Timedelta(days=WARMUP)
    opts = ScoreOptions(n_jobs=2)
    t0 = time.perf_counter()
    scored = score(panel.dirty, events=panel.events, options=opts)
    secs = time.perf_counter() - t0
    metrics = evaluate_incidents(build_incidents(scored), panel.labels, after)
    clean = score(panel.clean, events=panel.events, options=opts)
    clean = clean[clean["ds"] >= after]
    clean_inc = build_incidents(clean)
    series_days = len(clean)
    result = {
        "command": "python benchmarks/anomaly_accuracy.py "
        + f"--series {args.series} --seed {args.seed} --lines {args.lines}",
        "model": str(scored["model"].iloc[0]),
        "series": args.series,
        "scoring_seconds": round(secs, 2),
        "metric": metrics,
        "false_alarms_per_1000_series_days": 1000 * len(clean_inc) / series_days,
        "clean_point_alarm_rate": float(clean["is_anomaly"].mean()),
        "records": evaluate_records(args.lines, args.seed),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "anomaly_accuracy.json").write_text(json.dumps(result, indent=2, default=float))
    (args.out / "anomaly_accuracy.md").write_text(to_markdown(result))
    logging.getLogger(__name__).info(json.dumps(result, indent=2, default=float))


def to_markdown(r: dict) -> str:
    """Render the result as a small Markdown report."""
    m = r["metric"]
    lines = [
        "# Anomaly accuracy (synthetic labelled panel)",
        "",
        f"Command: `{r['command']}`  ",
        f"Model: `{r['model']}`, {r['series']} series x {DAYS} days, scored in {r['scoring_seconds']} s.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| incident precision | {m['precision']:.3f} |",
        f"| incident recall | {m['recall']:.3f} |",
        f"| incident F1 | {m['f1']:.3f} |",
        f"| incidents / labels | {m['incidents']} / {m['labels']} |",
        "| false alarms per 1,000 series-days (anomaly-free panel) | "
        f"{r['false_alarms_per_1000_series_days']:.3f} |",
        "",
        "| kind | labels | recall | median delay (days) |",
        "|---|---|---|---|",
    ]
    for k, d in sorted(m["by_kind"].items()):
        lines.append(f"| {k} | {d['labels']} | {d['recall']:.3f} | {d['median_delay_days']} |")
    rec = r["records"]
    lines += [
        "",
        f"Order lines: {rec['lines']} lines, {rec['labelled_bad']} labelled bad, {rec['flagged']} flagged: "
        f"precision {rec['precision']:.3f}, recall {rec['recall']:.3f}, F1 {rec['f1']:.3f} "
        f"({rec['seconds']} s).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
