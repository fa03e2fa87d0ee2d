"""Peak memory of single steps as the night grows, for two (or three) checkouts of seam.

For each size (a multiple of the default demo's 200 SKUs x 5 warehouses, `--days` of history) the
SQLite demo is generated once and one night runs through `seam run` with this checkout (500 series
per shard, so the plan's shard count grows with the size).  Then, on that night's lake, the
`--steps` (default: `seam report` and `seam load`) run in fresh processes, in the order given,
with each checkout (`--before`, `--after`, and `--between` if given), alternating which goes
first, each on a fresh copy of the demo's databases (so every load writes) and, with
`--copy-lake`, of the night's lake (so a step reads what the same checkout's earlier steps
wrote).  Steps: `report`, `load`, `reconcile`, `adjust`, `validate` (the order lines) and `plan` (the
shard plan and the panel's figures, through `pipelines.steps.run_plan`, after `set_up_process`
as the DAG's task does).  Each step's peak RSS is the process's VmHWM (`/usr/bin/time -f %M`),
imports included.

    .venv/bin/python benchmarks/task_memory.py --before /tmp/seam-before --after . \
        --sizes 1 4 8 --days 120 --reps 2 --out benchmarks/results/task_memory.json

Writes the JSON and a markdown table next to it.  With `--work DIR` each size's demo and night stay
in DIR, and a later run with the same DIR measures the steps again without re-running the night.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.demo import DemoSize, generate  # noqa: E402

NIGHT = date(2026, 11, 22)
BASE_SKUS, BASE_WAREHOUSES, SERIES_PER_SHARD = 200, 5, 500
STEPS = ("plan", "validate", "reconcile", "adjust", "report", "load")


def _config(run_dir: Path, dbs: Path, shards: int, lake: Path | None = None) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
    for name in ("erp", "crm"):
        raw["sources"][name]["url"] = f"sqlite:///{dbs / f'{name}.db'}"
        raw["sources"][name].pop("url_env", None)
    raw["lake"] = str(lake or run_dir / "lake")
    raw["report"] = {**raw.get("report", {}), "directory": str(dbs / "reports"), "data_docs": False}
    raw.pop("notifications", None)
    raw["scale"] = {"shards": shards, "processes_per_task": 1}
    path = dbs / "seam.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _step(checkout: Path, config: Path, step: str) -> dict[str, float]:
    """One `seam <step>` of the night in a fresh process of `checkout`: wall seconds and peak RSS
    (MB); exits naming the step when it fails."""
    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        step,
        "--config",
        str(config),
        "--date",
        NIGHT.isoformat(),
    ]
    if step == "validate":
        command += ["--dataset", "order_lines"]
    if step == "plan":  # no command of its own: the step function, as the DAG's task calls it
        script = (
            "import sys; from datetime import date; from pipelines.config import load_config; "
            "from pipelines.run_context import RunContext; from pipelines.steps import run_plan; "
            "from pipelines.process import set_up_process; set_up_process(); "
            "run_plan(load_config(sys.argv[1]), RunContext(date.fromisoformat(sys.argv[2])))"
        )
        command = [sys.executable, "-c", script, str(config), NIGHT.isoformat()]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"seam {step} ({checkout}, {config}) failed:\n{proc.stderr[-3000:]}")
    return {"seconds": seconds, "peak_mb": int(proc.stderr.strip().splitlines()[-1]) / 1024}


def measure(
    size: int, days: int, reps: int, checkouts: dict[str, Path], work: Path, steps: list[str], copy_lake: bool
) -> dict[str, Any]:
    run_dir = work / f"x{size}"
    base = run_dir / "base"
    demo = DemoSize(days=days, skus=BASE_SKUS * size, warehouses=BASE_WAREHOUSES, end_date=NIGHT)
    series = demo.skus * demo.warehouses
    shards = max(1, math.ceil(series / SERIES_PER_SHARD))
    if (base / "night.json").is_file():  # a kept night of an earlier run (--work)
        earlier = json.loads((base / "night.json").read_text())
        return _measure_steps(run_dir, base, shards, reps, checkouts, earlier, steps, copy_lake)
    base.mkdir(parents=True)
    generate(f"sqlite:///{base / 'erp.db'}", f"sqlite:///{base / 'crm.db'}", demo)
    night = _config(run_dir, base, shards)
    night_seconds = _step(checkouts["after"], night, "run")["seconds"]
    for name in ("erp", "crm"):  # forget the night's loads, so that every measured load writes
        with sqlite3.connect(base / f"{name}.db") as conn:
            conn.execute("DELETE FROM seam_load_batches")
    lines = sum(p.stat().st_size for p in (run_dir / "lake").rglob("*.parquet") if "order_lines" in str(p))
    night_facts = {
        "size": size,
        "series": series,
        "shards": shards,
        "days": days,
        "order_lines_parquet_mb": lines / 2**20,
        "night_seconds": night_seconds,
    }
    (base / "night.json").write_text(json.dumps(night_facts))
    return _measure_steps(run_dir, base, shards, reps, checkouts, night_facts, steps, copy_lake)


def _measure_steps(
    run_dir: Path,
    base: Path,
    shards: int,
    reps: int,
    checkouts: dict[str, Path],
    night: dict[str, Any],
    steps: list[str],
    copy_lake: bool,
) -> dict[str, Any]:
    """The `steps` of the night in `base`, with each checkout, `reps` times each."""
    runs: dict[str, dict[str, list[dict[str, float]]]] = {v: {s: [] for s in steps} for v in checkouts}
    for rep in range(reps):
        order = list(checkouts) if rep % 2 == 0 else list(reversed(checkouts))
        for version in order:
            copy = run_dir / f"{version}-{rep}"
            shutil.copytree(base, copy, ignore=shutil.ignore_patterns("reports"))
            lake = None
            if copy_lake:
                lake = copy / "lake"
                shutil.copytree(run_dir / "lake", lake)
            config = _config(run_dir, copy, shards, lake)
            for step in steps:
                runs[version][step].append(_step(checkouts[version], config, step))
                print(
                    json.dumps(
                        {
                            "size_dir": str(run_dir),
                            "version": version,
                            "step": step,
                            **runs[version][step][-1],
                        }
                    ),
                    flush=True,
                )
            shutil.rmtree(copy)
    return {
        **night,
        "runs": runs,
        "median_peak_mb": {
            v: {s: statistics.median(r["peak_mb"] for r in runs[v][s]) for s in runs[v]} for v in runs
        },
    }


def render(results: list[dict[str, Any]]) -> str:
    versions = list(results[0]["median_peak_mb"]) if results else ["before", "after"]
    out = [
        "| size | series | shards | step | "
        + " | ".join(f"{v}: peak MB (median)" for v in versions)
        + " | after / before |",
        "|---:|---:|---:|---|" + "---:|" * (len(versions) + 1),
    ]
    for r in results:
        peaks = r["median_peak_mb"]
        for step in peaks["after"]:
            cells = " | ".join(f"{peaks[v][step]:,.0f}" for v in versions)
            ratio = peaks["after"][step] / peaks["before"][step]
            out.append(f"| {r['size']}x | {r['series']:,} | {r['shards']} | {step} | {cells} | {ratio:.2f} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="checkout of the code before the change")
    ap.add_argument(
        "--after", type=Path, default=ROOT, help="checkout of the code after it (default: this one)"
    )
    ap.add_argument(
        "--between",
        type=Path,
        help="a checkout between the two (an intermediate commit), measured the same way",
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument(
        "--steps", nargs="+", default=["report", "load"], choices=STEPS, help="in the order they run"
    )
    ap.add_argument(
        "--copy-lake", action="store_true", help="each checkout's steps on a copy of the night's lake"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "task_memory.json")
    ap.add_argument(
        "--work",
        type=Path,
        help="keep each size's night here (and measure a kept night again without re-running it)",
    )
    args = ap.parse_args()
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    if args.between:
        checkouts = {
            "before": checkouts["before"],
            "between": args.between.resolve(),
            "after": checkouts["after"],
        }
    results = []
    with tempfile.TemporaryDirectory(prefix="seam-taskmem-") as tmp:
        work = args.work or Path(tmp)
        for size in args.sizes:
            results.append(measure(size, args.days, args.reps, checkouts, work, args.steps, args.copy_lake))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "runs"}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    args.out.with_suffix(".md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
