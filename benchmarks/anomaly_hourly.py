"""Accuracy and speed of pipelines.anomaly.score on hourly series.

Accuracy: a labelled synthetic hourly panel of four kinds of series: web-traffic-like counts (a daily
profile with quiet nights, other weekends, a trend and AR(1) multiplicative noise), business-hours
order counts (weekdays 8:00-18:00, nearly nothing otherwise), amounts (the traffic shape, not whole
numbers) and sparse counts (a few events a day). After five weeks of history, outages (zeros for 2-6
hours), spikes (3-6x one hour, or a burst of 8-20 events on a sparse series), level shifts (x0.3-0.6
or x1.7-2.5 from an hour on) and missing hours are injected and labelled. The scorer is not tuned to
this generator. Figures: incident-level precision, recall and F1, median detection delay in hours
per kind, and false alarms (incidents) per 1,000 series-days on the same panel without anomalies.

Speed: ``--speed-series`` hourly series x ``--days`` days scored in full, then the last 24 hours
alone from a trailing window of ``required_history("h")``, as a nightly run would; the two must give
the same rows.

Usage:
    .venv/bin/python benchmarks/anomaly_hourly.py [--series 300] [--seed 3] [--speed-series 5000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.anomaly import ScoreOptions, build_incidents, required_history, score

logger = logging.getLogger(__name__)
START = pd.Timestamp("2024-01-01")  # a Monday
DAYS = 90
WARMUP_DAYS = 35
SHIFT_CREDIT = pd.Timedelta(days=7)  # time the model needs to adopt a new level (one weekly level)


@dataclass
class Panel:
    """A synthetic hourly panel: clean values, values with anomalies and labels."""

    clean: pd.DataFrame
    dirty: pd.DataFrame
    labels: pd.DataFrame


def build_panel(n_series: int, seed: int, days: int = DAYS, inject: bool = True) -> Panel:
    """Generate the labelled hourly panel (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(START, periods=24 * days, freq="h")
    n_t = len(ds)
    hour, dow = ds.hour.to_numpy(), ds.day_of_week.to_numpy()
    kind = rng.choice(["traffic", "business", "amount", "sparse"], n_series, p=[0.35, 0.3, 0.2, 0.15])
    level = np.exp(rng.uniform(np.log(20), np.log(2000), n_series))
    biz = kind == "business"
    sparse = kind == "sparse"
    level[biz] = np.exp(rng.uniform(np.log(5), np.log(200), biz.sum()))
    level[sparse] = rng.uniform(0.03, 0.4, sparse.sum())
    peak = rng.uniform(11, 17, n_series)
    width = rng.uniform(3, 6, n_series)
    night = rng.uniform(0.05, 0.4, n_series)
    bump = np.exp(-0.5 * ((hour[None, :] - peak[:, None]) / width[:, None]) ** 2)
    daily = night[:, None] + (1 - night[:, None]) * bump
    weekend = np.where(dow[None, :] >= 5, rng.uniform(0.3, 1.1, n_series)[:, None], 1.0)
    mean = level[:, None] * daily * weekend
    open_hours = (dow < 5) & (hour >= 8) & (hour < 18)
    office = 0.7 + 0.3 * np.exp(-0.5 * ((hour - 11) / 2.5) ** 2)
    mean[biz] = level[biz, None] * np.where(open_hours, 1.0, 0.01)[None, :] * office[None, :]
    mean *= np.exp(rng.normal(0, 0.15, n_series)[:, None] * np.arange(n_t)[None, :] / n_t)
    ar = np.zeros((n_series, n_t))
    eps = rng.normal(0, 1, (n_series, n_t))
    for j in range(1, n_t):
        ar[:, j] = 0.5 * ar[:, j - 1] + eps[:, j]
    cv = rng.uniform(0.03, 0.12, n_series)
    noisy = mean * np.exp(cv[:, None] * ar * np.sqrt(1 - 0.25))
    counts = kind != "amount"

    dirty_mean = noisy.copy()
    zero = np.zeros((n_series, n_t), dtype=bool)
    missing = np.zeros((n_series, n_t), dtype=bool)
    labels: list[tuple[int, int, int, str, float]] = []
    for i in range(n_series if inject else 0):
        for _ in range(int(rng.integers(1, 4))):
            t = int(rng.integers(24 * WARMUP_DAYS, n_t - 48))
            if biz[i] and not open_hours[t]:
                continue  # business series: anomalies in business hours only
            if any(lab[0] == i and abs(lab[1] - t) < 24 * 7 for lab in labels):
                continue
            what = str(rng.choice(["outage", "spike", "level_shift", "missing"], p=[0.3, 0.35, 0.2, 0.15]))
            if sparse[i] and what in ("outage", "level_shift"):
                what = "spike"
            if what == "outage":
                n = int(rng.integers(2, 7))
                zero[i, t : t + n] = True
                labels.append((i, t, t + n - 1, what, float(n)))
            elif what == "spike":
                if sparse[i]:
                    dirty_mean[i, t] += rng.uniform(8, 20)
                    mag = float(dirty_mean[i, t])
                else:
                    mag = float(rng.uniform(3, 6))
                    dirty_mean[i, t] *= mag
                labels.append((i, t, t, what, mag))
            elif what == "level_shift":
                mag = float(rng.choice([rng.uniform(0.3, 0.6), rng.uniform(1.7, 2.5)]))
                dirty_mean[i, t:] *= mag
                labels.append((i, t, n_t - 1, what, mag))
                break  # one level shift per series keeps labels unambiguous
            else:
                n = int(rng.integers(1, 4))
                missing[i, t : t + n] = True
                labels.append((i, t, t + n - 1, what, float(n)))
    state = rng.bit_generator.state

    def realise(m: np.ndarray) -> np.ndarray:
        return np.where(counts[:, None], rng.poisson(np.maximum(m, 0)).astype(float), np.round(m, 2))

    clean = realise(noisy)
    rng.bit_generator.state = state  # the same noise draws for the clean and the dirty panel
    dirty = realise(dirty_mean)
    dirty[zero] = 0.0
    dirty[missing] = np.nan
    ids = np.array([f"h{i:05d}_{kind[i]}" for i in range(n_series)])

    def long(values: np.ndarray) -> pd.DataFrame:
        df = pd.DataFrame(
            {"unique_id": np.repeat(ids, n_t), "ds": np.tile(ds.to_numpy(), n_series), "y": values.ravel()}
        )
        return df[~np.isnan(df["y"])].reset_index(drop=True)  # missing hours are absent rows

    lab = pd.DataFrame(labels, columns=["series", "start", "end", "kind", "magnitude"])
    lab = lab.astype({"series": np.int64, "start": np.int64, "end": np.int64})
    lab["unique_id"] = ids[lab["series"]]
    lab["start_ds"] = ds[lab["start"]]
    lab["end_ds"] = ds[lab["end"]]
    return Panel(clean=long(clean), dirty=long(dirty), labels=lab)


def evaluate_incidents(incidents: pd.DataFrame, labels: pd.DataFrame, after: pd.Timestamp) -> dict:
    """Incident-level precision/recall/F1 and detection delays in hours.

    A label is detected by an incident of its series overlapping its detection window: the labelled
    hours for outages, spikes and missing hours, the first 24 hours of a level shift. An incident is
    a true positive if it overlaps a label's credit window: the labelled hours and the hour after,
    or the first 7 days of a level shift.
    """
    hour = pd.Timedelta(hours=1)
    inc = incidents[incidents["start"] >= after - pd.Timedelta(days=1)].copy()
    inc["tp"] = False
    by_kind: dict[str, dict] = {}
    delays: dict[str, list[float]] = {}
    detected = []
    for lab in labels.itertuples():
        s = lab.start_ds
        shift = lab.kind == "level_shift"
        det_end = s + pd.Timedelta(hours=23) if shift else lab.end_ds
        credit_end = s + SHIFT_CREDIT if shift else lab.end_ds + hour
        mine = inc["unique_id"] == lab.unique_id
        hit = mine & (inc["start"] <= det_end) & (inc["end"] >= s)
        inc.loc[mine & (inc["start"] <= credit_end) & (inc["end"] >= s), "tp"] = True
        ok = bool(hit.any())
        detected.append(ok)
        if ok:
            first = max(inc.loc[hit, "start"].min(), s)
            delays.setdefault(lab.kind, []).append((first - s) / hour)
        d = by_kind.setdefault(lab.kind, {"labels": 0, "detected": 0})
        d["labels"] += 1
        d["detected"] += int(ok)
    recall = float(np.mean(detected)) if detected else float("nan")
    precision = float(inc["tp"].mean()) if len(inc) else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    for k, d in by_kind.items():
        d["recall"] = d["detected"] / d["labels"]
        d["median_delay_hours"] = float(np.median(delays[k])) if delays.get(k) else None
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "incidents": len(inc),
        "false_incidents": int((~inc["tp"]).sum()),
        "labels": len(labels),
        "by_kind": by_kind,
    }


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the scoring workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure_speed(n_series: int, days: int, jobs: int, chunk: int) -> dict:
    """Full and incremental (last 24 hours) scoring of an anomaly-free hourly panel."""
    df = build_panel(n_series, seed=0, days=days, inject=False).clean
    opts = ScoreOptions(n_jobs=jobs, chunk_size=chunk)
    load_before = os.getloadavg()
    t0, c0 = time.perf_counter(), cpu_seconds()
    full = score(df, options=opts)
    full_s, full_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    only_after = df["ds"].max() - pd.Timedelta(hours=24)
    window = df[df["ds"] > only_after - required_history("h")]
    t0, c0 = time.perf_counter(), cpu_seconds()
    inc = score(window, options=ScoreOptions(n_jobs=jobs, chunk_size=chunk, only_after=only_after))
    inc_s, inc_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    ref = full[full["ds"] > only_after].reset_index(drop=True)
    cols = ["expected", "lower", "upper", "score"]
    diff = np.abs(ref[cols].to_numpy() - inc[cols].to_numpy())
    return {
        "series": n_series,
        "days": days,
        "values": len(df),
        "full_seconds": round(full_s, 1),
        "full_cpu_seconds": round(full_cpu, 1),
        "incremental_input_rows": len(window),
        "incremental_rows_out": len(inc),
        "incremental_seconds": round(inc_s, 1),
        "incremental_cpu_seconds": round(inc_cpu, 1),
        "incremental_max_abs_diff_vs_full": float(np.nanmax(diff)) if len(inc) else 0.0,
        "incremental_same_flags": bool((ref["is_anomaly"].to_numpy() == inc["is_anomaly"].to_numpy()).all()),
        "required_history": str(required_history("h")),
        "load_average_before_after": [round(x, 2) for x in load_before + os.getloadavg()],
    }


def main() -> None:
    """Run the benchmark and write results/anomaly_hourly.{json,md}."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=300)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--speed-series", type=int, default=5000, help="0 = skip the speed run")
    ap.add_argument("--days", type=int, default=DAYS)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    panel = build_panel(args.series, args.seed, days=args.days)
    after = START + pd.Timedelta(days=WARMUP_DAYS)
    opts = ScoreOptions(n_jobs=args.jobs, chunk_size=args.chunk)
    t0 = time.perf_counter()
    scored = score(panel.dirty, options=opts)
    secs = time.perf_counter() - t0
    metrics = evaluate_incidents(build_incidents(scored), panel.labels, after)
    clean = score(panel.clean, options=opts)
    clean = clean[clean["ds"] >= after]
    clean_inc = build_incidents(clean)
    series_days = len(clean) / 24.0
    kinds = (
        clean_inc["unique_id"].str.rsplit("_", n=1).str[1].value_counts().to_dict() if len(clean_inc) else {}
    )
    result: dict = {
        "command": f"python benchmarks/anomaly_hourly.py --series {args.series} --seed {args.seed} "
        f"--speed-series {args.speed_series} --days {args.days} --jobs {args.jobs} --chunk {args.chunk}",
        "series": args.series,
        "days": args.days,
        "scoring_seconds": round(secs, 2),
        "metric": metrics,
        "false_alarms_per_1000_series_days": 1000 * len(clean_inc) / series_days,
        "false_incidents_by_series_kind": {str(k): int(v) for k, v in kinds.items()},
        "clean_point_alarm_rate_per_hour": float(clean["is_anomaly"].mean()),
    }
    if args.speed_series:
        result["speed"] = measure_speed(args.speed_series, args.days, args.jobs, args.chunk)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "anomaly_hourly.json").write_text(json.dumps(result, indent=2, default=float))
    (args.out / "anomaly_hourly.md").write_text(to_markdown(result))
    logger.info(json.dumps(result, indent=2, default=float))


def to_markdown(r: dict) -> str:
    """Render the result as a small Markdown report."""
    m = r["metric"]
    lines = [
        "# Anomaly scoring of hourly series (synthetic labelled panel)",
        "",
        f"Command: `{r['command']}`  ",
        f"{r['series']} hourly series x {r['days']} days, scored in {r['scoring_seconds']} s; anomalies after "
        f"day {WARMUP_DAYS}.",
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
        "| kind | labels | recall | median delay (hours) |",
        "|---|---|---|---|",
    ]
    for k, d in sorted(m["by_kind"].items()):
        lines.append(f"| {k} | {d['labels']} | {d['recall']:.3f} | {d['median_delay_hours']} |")
    lines += [
        "",
        f"False incidents on the anomaly-free panel by kind of series: {r['false_incidents_by_series_kind']}.",
    ]
    if "speed" in r:
        s = r["speed"]
        lines += [
            "",
            f"Speed, {s['series']:,} hourly series x {s['days']} days ({s['values']:,} values), "
            f"load average before/after {s['load_average_before_after']}:",
            "",
            "| run | rows in | wall seconds | CPU seconds |",
            "|---|---|---|---|",
            f"| full | {s['values']:,} | {s['full_seconds']} | {s['full_cpu_seconds']} |",
            f"| incremental (last 24 hours, {s['required_history']} of history) | "
            f"{s['incremental_input_rows']:,} | {s['incremental_seconds']} | {s['incremental_cpu_seconds']} |",
            "",
            f"Incremental vs full: max abs difference {s['incremental_max_abs_diff_vs_full']:.3g}, "
            f"identical flags: {s['incremental_same_flags']}.",
        ]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
