"""What the night's `score_records` tasks cost together as the night grows, read and scoring apart.

On the nights `task_memory.py --work DIR` keeps (`DIR/x<size>/`: the demo's databases and the
night's lake after a whole `seam run`), every partition of customers is gathered from every score
shard's exchange (`pipelines.inputs.customer_fits`) and scored (`score_night_records`), one
partition after another in one fresh process per checkout, size and repetition, as the step's
tasks do (nothing is written).  Reported per size: the partitions, the seconds of the gathering and
of the scoring summed over them, the lines gathered and the lines scored, medians over `--reps`.
Checkouts alternate which goes first.

    .venv/bin/python benchmarks/records_partitions.py --work /tmp/tm --sizes 16 64 \
        --before /tmp/seam-before --after . --reps 3 --out benchmarks/results/records_partitions.json

Writes the JSON and a markdown table next to it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from child import run_json  # noqa: E402

NIGHT = "2026-11-22"

# run in the checkout's process: every partition, gathered then scored, timed apart
_ONE_RUN = """
import json, sys, time
from datetime import date
from pipelines.anomaly.nightly import score_night_records
from pipelines.config import load_config
from pipelines.inputs import customer_fits
from pipelines.lake import Lake
from pipelines.process import set_up_process
from pipelines.run_context import RunContext
from pipelines.state import shard_plan
from pipelines.steps import night_context

set_up_process()
cfg = load_config(sys.argv[1])
ctx = RunContext(date.fromisoformat(sys.argv[2]))
lake = Lake(cfg.lake)
shards = shard_plan(lake, "forecasts", ctx.run_date)
read = score = 0.0
lines = scored = 0
for part in range(shards):
    t0 = time.perf_counter()
    fits, pairs = customer_fits(lake, ctx.run_date, part, shards)
    t1 = time.perf_counter()
    night = score_night_records(fits, pairs, night_context(cfg, ctx))
    t2 = time.perf_counter()
    read, score, lines = read + t1 - t0, score + t2 - t1, lines + len(fits)
print(json.dumps({"partitions": shards, "read_s": read, "score_s": score, "lines": lines}))
"""


def _run(checkout: Path, config: Path) -> dict[str, Any]:
    what = f"score_records partitions ({checkout}, {config})"
    return run_json(_ONE_RUN, [str(config), NIGHT], cwd=checkout, what=what, pythonpath=checkout)


def measure(work: Path, sizes: list[int], checkouts: dict[str, Path], reps: int) -> list[dict[str, Any]]:
    results = []
    for size in sizes:
        config = work / f"x{size}" / "base" / "seam.yml"
        if not config.is_file():
            raise SystemExit(f"no night of size {size} in {work}: run task_memory.py --work {work} first")
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in checkouts}
        for rep in range(reps):
            order = list(checkouts) if rep % 2 == 0 else list(reversed(checkouts))
            for version in order:
                runs[version].append(_run(checkouts[version], config))
                print(json.dumps({"size": size, "version": version, **runs[version][-1]}), flush=True)
        median = {
            v: {k: statistics.median(r[k] for r in rs) for k in ("read_s", "score_s", "lines")}
            | {"partitions": rs[0]["partitions"]}
            for v, rs in runs.items()
        }
        results.append({"size": size, "runs": runs, "median": median})
    return results


def render(results: list[dict[str, Any]]) -> str:
    out = [
        "| size | checkout | partitions | lines gathered | gather s | score s | task-s |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for version, m in r["median"].items():
            total = m["read_s"] + m["score_s"]
            out.append(
                f"| {r['size']}x | {version} | {m['partitions']} | {m['lines']:,.0f} | {m['read_s']:.2f} "
                f"| {m['score_s']:.2f} | {total:.2f} |"
            )
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="task_memory.py's --work folder")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--before", type=Path, required=True, help="checkout of the code before the change")
    ap.add_argument("--after", type=Path, default=ROOT, help="checkout of the code after it")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "records_partitions.json")
    args = ap.parse_args()
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    results = measure(args.work, args.sizes, checkouts, args.reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
