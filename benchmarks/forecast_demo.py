"""Speed and accuracy of pipelines.forecasting on a synthetic daily SKU x warehouse demand panel.

Generates ``--series`` daily series of two years plus a ``--horizon``-day holdout: about two thirds
smooth demand (log-normal levels, weekly profile, yearly cycle, trend, Poisson noise) and one third
intermittent (Bernoulli occurrences with Poisson sizes, some with a weekly profile); 5% of the
smooth series have stock-out runs in the history, flagged ``censored``. The forecast of the
history is timed (wall and CPU seconds including worker processes, load average before and
after), then compared on the holdout with seasonal naive (the last week repeated):
MASE (scale: in-sample mean absolute weekly difference), WAPE and the coverage of the 80% / 95%
intervals, overall and per demand class.

Writes ``benchmarks/results/forecasting_demo.json`` and the "Daily demand demo" section of
``benchmarks/results/forecasting.md``.

Usage (from the repository root):
    .venv/bin/python benchmarks/forecast_demo.py [--series 20000] [--horizon 28] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.m4_weekly import RESULTS, write_section
from pipelines.forecasting import forecast

logger = logging.getLogger(__name__)
HISTORY_DAYS = 730
SECTION = "forecast_demo"


def build_panel(n_series: int, days: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Long panel (with `censored`), the demand matrix (series x days) and the class labels."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    dow = (t + 0) % 7  # the panel starts on a Monday
    intermittent = rng.random(n_series) < 0.33
    level = np.exp(rng.uniform(np.log(3), np.log(300), n_series))
    weekly = np.exp(rng.normal(0, 0.3, (n_series, 7)))
    weekly /= weekly.mean(axis=1, keepdims=True)
    amp = rng.uniform(0, 0.35, n_series)
    phase = rng.uniform(0, 2 * np.pi, n_series)
    yearly = 1 + amp[:, None] * np.sin(2 * np.pi * t[None, :] / 365.25 + phase[:, None])
    trend = 1 + rng.normal(0, 0.15, n_series)[:, None] * t[None, :] / 365.0
    mean = level[:, None] * weekly[:, dow] * yearly * np.clip(trend, 0.2, None)
    demand = rng.poisson(mean).astype(np.float64)
    # intermittent: occurrence probability 3-40% (weekly profile on half of them), sizes Poisson
    prob = rng.uniform(0.03, 0.4, n_series)[:, None] * np.where(
        rng.random(n_series)[:, None] < 0.5, weekly[:, dow], 1.0
    )
    sizes = 1 + rng.poisson(rng.uniform(0.5, 8, n_series)[:, None], (n_series, days))
    sparse = np.where(rng.random((n_series, days)) < np.clip(prob, 0, 1), sizes, 0).astype(float)
    demand[intermittent] = sparse[intermittent]
    observed = demand.copy()
    censored = np.zeros_like(demand, dtype=bool)
    hit = np.flatnonzero(~intermittent & (rng.random(n_series) < 0.05))
    for i in hit:  # one or two stock-out runs of 3-20 days inside the history
        for _ in range(rng.integers(1, 3)):
            start = int(rng.integers(30, HISTORY_DAYS - 25))
            censored[i, start : start + int(rng.integers(3, 21))] = True
    observed[censored] = 0.0
    ids = np.array([f"sku{i:06d}|wh{i % 7}" for i in range(n_series)], dtype=object)
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, days),
            "ds": np.tile(pd.date_range("2023-01-02", periods=days, freq="D").to_numpy(), n_series),
            "y": observed.ravel(),
            "censored": censored.ravel(),
        }
    )
    return frame, demand, np.where(intermittent, "intermittent", "smooth")


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def score(
    fc: pd.DataFrame, history: np.ndarray, actual: np.ndarray, classes: np.ndarray, horizon: int
) -> dict[str, dict[str, float]]:
    """MASE / WAPE of the forecast and of seasonal naive, and interval coverage, per class."""
    n = len(actual)
    yhat = fc["yhat"].to_numpy().reshape(n, horizon)
    snaive = history[:, -7:][:, np.arange(horizon) % 7]
    scale = np.abs(history[:, 7:] - history[:, :-7]).mean(axis=1)
    scale = np.where(scale > 0, scale, 1.0)
    out: dict[str, dict[str, float]] = {}
    for name, mask in (("all", np.ones(n, bool)), *((c, classes == c) for c in np.unique(classes))):
        a = actual[mask]
        row = {"series": float(mask.sum())}
        for label, pred in (("model", yhat[mask]), ("snaive", snaive[mask])):
            err = np.abs(a - pred)
            row[f"mase_{label}"] = float(np.mean(err.mean(axis=1) / scale[mask]))
            row[f"wape_{label}"] = float(err.sum() / max(np.abs(a).sum(), 1e-9))
        for level in (80, 95):
            lo = fc[f"yhat_lo_{level}"].to_numpy().reshape(n, horizon)[mask]
            hi = fc[f"yhat_hi_{level}"].to_numpy().reshape(n, horizon)[mask]
            row[f"coverage_{level}"] = float(((a >= lo) & (a <= hi)).mean())
        out[name] = {k: round(v, 4) for k, v in row.items()}
    return out


def build_markdown(result: dict[str, object], command: str) -> str:
    """Markdown section with the speed figures and the accuracy table."""
    acc: dict[str, dict[str, float]] = result["accuracy"]  # type: ignore[assignment]
    lines = [
        "## Daily demand demo (synthetic SKU x warehouse panel)",
        "",
        "Command (from the repository root):",
        "",
        f"    {command}",
        "",
        f"{result['series']} series x {HISTORY_DAYS} days of history, horizon {result['horizon']}: "
        f"{result['seconds']} s wall, {result['series_per_s']} series/s, "
        f"{result['cpu_seconds']} CPU seconds ({result['cpu_ms_per_series']} ms per series), "
        f"{result['cpus']} cpus, 1-minute load average before/after {result['loadavg_1m']}; "
        f"{result['fallback_series']} series flagged fallback. "
        "The machine is shared with other engineers' test runs, so wall time is noisy; the CPU "
        "time per series is the steadier figure.",
        "",
        "| class | series | MASE | MASE seasonal naive | ratio | WAPE | WAPE seasonal naive "
        "| coverage 80% | coverage 95% |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in acc.items():
        ratio = row["mase_model"] / row["mase_snaive"] if row["mase_snaive"] else float("nan")
        lines.append(
            f"| {name} | {int(row['series'])} | {row['mase_model']:.3f} | {row['mase_snaive']:.3f} "
            f"| {ratio:.2f} | {row['wape_model']:.3f} | {row['wape_snaive']:.3f} "
            f"| {row['coverage_80']:.3f} | {row['coverage_95']:.3f} |"
        )
    models: dict[str, int] = result["top_models"]  # type: ignore[assignment]
    lines += ["", "Most chosen models: " + ", ".join(f"{k} ({v})" for k, v in models.items())]
    return "\n".join(lines)


def main() -> None:
    """Generate the panel, time the forecast, score it and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=20000)
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    days = HISTORY_DAYS + args.horizon
    panel, demand, classes = build_panel(args.series, days, args.seed)
    cutoff = pd.Timestamp("2023-01-02") + pd.Timedelta(days=HISTORY_DAYS)
    history = panel[panel["ds"] < cutoff].reset_index(drop=True)
    load0, cpu0, t0 = os.getloadavg()[0], _cpu_seconds(), time.perf_counter()
    fc = forecast(history, horizon=args.horizon, freq="D")
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    load1 = os.getloadavg()[0]
    observed_history = demand[:, :HISTORY_DAYS].copy()
    result: dict[str, object] = {
        "series": args.series,
        "horizon": args.horizon,
        "seconds": round(seconds, 1),
        "series_per_s": round(args.series / seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "cpu_ms_per_series": round(1000 * cpu / args.series, 1),
        "cpus": os.cpu_count(),
        "loadavg_1m": [round(load0, 2), round(load1, 2)],
        "fallback_series": int(fc.groupby("unique_id")["fallback"].first().sum()),
        "accuracy": score(fc, observed_history, demand[:, HISTORY_DAYS:], classes, args.horizon),
        "top_models": fc.groupby("unique_id")["model"].first().value_counts().head(6).to_dict(),
    }
    command = " ".join([".venv/bin/python", "benchmarks/forecast_demo.py", *sys.argv[1:]])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "forecasting_demo.json").write_text(json.dumps(result) + "\n")
    write_section(RESULTS / "forecasting.md", SECTION, build_markdown(result, command))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
