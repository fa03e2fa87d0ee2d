"""Task-seconds of the night's sharded steps as the night grows, every task run as a worker runs it.

On the nights `task_memory.py --work DIR` keeps (`DIR/x<size>/`: the demo's databases and the
night's lake after a whole `seam run`), the `--steps` (`plan` and `reconcile`: one task each;
`forecast` and `score`: one task per shard of the night's plan) run again with `--checkout`, each
task in a process forked from one that has imported seam, set itself up (`set_up_process`) and
imported what a seam Celery worker preloads (`pipelines.airflow.celery.PRELOAD`), as such a worker
runs the DAG's tasks.  Each repetition works
on a fresh copy of the night's databases (the run ledger is written) and a hard-linked copy of
its lake (the lake stages and renames every file it writes, so the kept night is not touched).
Sizes alternate which goes first.  Per task: wall seconds, CPU seconds (user + system of the
forked process) and peak RSS; per step: the sums over its tasks, medians over `--reps`, and the
larger size over the smaller.

    .venv/bin/python benchmarks/shard_steps.py --work /tmp/tm --sizes 16 64 --reps 2 \
        --out benchmarks/results/shard_steps.json

Writes the JSON and a markdown table next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from child import run_json  # noqa: E402

NIGHT = "2026-11-22"
STEPS = ("plan", "forecast", "score", "reconcile")

# run in the checkout: imports and set-up once, then each task in a forked process
_TASKS = """
import importlib, json, os, resource, sys, time
from datetime import date
from pipelines.airflow.celery import PRELOAD
from pipelines.config import load_config
from pipelines.lake import Lake
from pipelines.process import set_up_process
from pipelines.run_context import RunContext
from pipelines.state import shard_plan
from pipelines.steps import run_forecast, run_plan, run_reconcile, run_score

set_up_process()
for module in PRELOAD:  # what a seam Celery worker imports before it forks its tasks
    importlib.import_module(module)
cfg = load_config(sys.argv[1])
ctx = RunContext(date.fromisoformat(sys.argv[2]))
shards = shard_plan(Lake(cfg.lake), "forecasts", ctx.run_date)  # the plan, run again, keeps it
calls = {
    "plan": [lambda: run_plan(cfg, ctx)],
    "forecast": [lambda k=k: run_forecast(cfg, ctx, shard=k) for k in range(shards)],
    "score": [lambda k=k: run_score(cfg, ctx, shard=k) for k in range(shards)],
    "reconcile": [lambda: run_reconcile(cfg, ctx)],
}
out = {"shards": shards, "steps": {}}
for step in sys.argv[3:]:
    tasks = []
    for call in calls[step]:
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            try:
                call()
            except BaseException:
                import traceback
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
        if status != 0:
            raise SystemExit(f"{step} task {len(tasks)} failed")
        tasks.append({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024})
    out["steps"][step] = tasks
print(json.dumps(out))
"""


# run in the checkout: what the night holds (its order lines, series and the plan's expected cost)
_FACTS = """
import json, sys
from datetime import date
import pyarrow.parquet as pq
from pipelines.config import load_config
from pipelines.lake import Lake
from pipelines.sharding import sku_costs

cfg = load_config(sys.argv[1])
d = date.fromisoformat(sys.argv[2])
lines = sum(pq.ParquetFile(f).metadata.num_rows for f in Lake(cfg.lake).table_files("erp", "order_lines", d))
costs, series, _ = sku_costs(cfg, d)
print(json.dumps({"order_lines": lines, "series": series, "expected_cost": sum(costs.values())}))
"""


def night_facts(work: Path, size: int, checkout: Path) -> dict[str, Any]:
    """The kept night's order lines, series and the plan's expected cost of forecasting them
    (`pipelines.sharding.sku_costs`): what the steps' work grows with besides the series."""
    config = work / f"x{size}" / "base" / "seam.yml"
    return run_json(_FACTS, [str(config), NIGHT], cwd=checkout, what=f"{size}x facts", pythonpath=checkout)


def _copy_night(work: Path, size: int, rep: int) -> Path:
    """A copy of the kept night of `size` (databases copied, lake hard-linked); its config."""
    run_dir = work / f"x{size}"
    config = run_dir / "base" / "seam.yml"
    if not config.is_file():
        raise SystemExit(f"no night of size {size} in {work}: run task_memory.py --work {work} first")
    copy = run_dir / f"shard-steps-{rep}"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(run_dir / "base", copy, ignore=shutil.ignore_patterns("reports"))
    subprocess.run(["cp", "-al", str(run_dir / "lake"), str(copy / "lake")], check=True)
    raw = yaml.safe_load(config.read_text())
    for name in ("erp", "crm"):
        raw["sources"][name]["url"] = f"sqlite:///{copy / f'{name}.db'}"
    raw["lake"] = str(copy / "lake")
    raw["report"] = {**raw.get("report", {}), "directory": str(copy / "reports")}
    own = copy / "seam.yml"
    own.write_text(yaml.safe_dump(raw, sort_keys=False))
    # the copy's pages on disk before any task runs: else the first task that commits to the
    # night's SQLite database pays for writing back the whole copied file (0.6 s at 64x)
    os.sync()
    return own


def measure(
    work: Path, sizes: list[int], steps: list[str], reps: int, checkout: Path, out: Path
) -> dict[str, Any]:
    """Every size `reps` times; the results so far written to `out` (and its markdown table)
    after each run, so a run cut short keeps what it measured."""
    runs: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
    nights = {size: night_facts(work, size, checkout) for size in sizes}
    result: dict[str, Any] = {}
    for rep in range(reps):
        for size in sizes if rep % 2 == 0 else list(reversed(sizes)):
            config = _copy_night(work, size, rep)
            run = run_json(
                _TASKS, [str(config), NIGHT, *steps], cwd=checkout, what=f"{size}x", pythonpath=checkout
            )
            shutil.rmtree(config.parent)
            runs[size].append(run)
            summary = {s: round(sum(t["cpu_s"] for t in ts), 1) for s, ts in run["steps"].items()}
            print(json.dumps({"size": size, "rep": rep, "cpu_s": summary}), flush=True)
            measured = [s for s in sizes if runs[s]]
            result = {
                "sizes": measured,
                "nights": nights,
                "runs": runs,
                "median": _medians(runs, measured, steps),
            }
            out.write_text(json.dumps(result, indent=2, default=str))
            out.with_suffix(".md").write_text(render(result))
    return result


def _medians(runs: dict[int, list[dict[str, Any]]], sizes: list[int], steps: list[str]) -> dict[int, Any]:
    """Per size and step: the medians over the runs of the tasks' summed wall and CPU seconds,
    the tasks, and the median of the largest task's peak RSS."""
    median: dict[int, Any] = {}
    for size in sizes:
        rs = runs[size]
        median[size] = {
            step: {
                key: statistics.median(sum(t[key] for t in r["steps"][step]) for r in rs)
                for key in ("wall_s", "cpu_s")
            }
            | {
                "tasks": len(rs[0]["steps"][step]),
                "runs": len(rs),
                "peak_mb": statistics.median(max(t["peak_mb"] for t in r["steps"][step]) for r in rs),
            }
            for step in steps
        }
    return median


def render(result: dict[str, Any]) -> str:
    # keys are sizes, as numbers in this process and as text once read back from the JSON
    sizes = [int(x) for x in result["sizes"]]
    median = {int(k): v for k, v in result["median"].items()}
    nights = {int(k): v for k, v in (result.get("nights") or {}).items()}
    small, large = sizes[0], sizes[-1]
    out = [
        "| step | "
        + " | ".join(f"{s}x tasks | {s}x task-s (CPU s) | {s}x peak MB" for s in sizes)
        + f" | {large}x / {small}x task-s (CPU) |",
        "|---|" + "---:|---:|---:|" * len(sizes) + "---:|",
    ]
    for step in median[small]:
        cells = " | ".join(
            f"{median[s][step]['tasks']} | {median[s][step]['wall_s']:.1f} ({median[s][step]['cpu_s']:.1f}) "
            f"| {median[s][step]['peak_mb']:.0f}"
            for s in sizes
        )
        wall = median[large][step]["wall_s"] / median[small][step]["wall_s"]
        cpu = median[large][step]["cpu_s"] / median[small][step]["cpu_s"]
        out.append(f"| {step} | {cells} | {wall:.2f} ({cpu:.2f}) |")
    if nights:
        out += ["", "| night | series | order lines | expected cost (plan) |", "|---|---:|---:|---:|"]
        for s in sizes:
            n = nights[s]
            out.append(f"| {s}x | {n['series']:,} | {n['order_lines']:,} | {n['expected_cost']:,.0f} |")
        a, b = nights[small], nights[large]
        out.append(
            f"| {large}x / {small}x | {b['series'] / a['series']:.2f} | {b['order_lines'] / a['order_lines']:.2f} "
            f"| {b['expected_cost'] / a['expected_cost']:.2f} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="task_memory.py's --work folder")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS, help="in the order they run")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--checkout", type=Path, default=ROOT, help="the checkout of seam to run")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "shard_steps.json")
    ap.add_argument(
        "--facts-only",
        action="store_true",
        help="add the nights' facts to the results already in --out (no step runs) and render them again",
    )
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.facts_only:
        result = json.loads(args.out.read_text())
        result["nights"] = {
            str(s): night_facts(args.work, int(s), args.checkout.resolve()) for s in result["sizes"]
        }
        args.out.write_text(json.dumps(result, indent=2, default=str))
        args.out.with_suffix(".md").write_text(render(result))
        print(render(result))
        return
    result = measure(args.work, args.sizes, args.steps, args.reps, args.checkout.resolve(), args.out)
    print(render(result))


if __name__ == "__main__":
    main()
