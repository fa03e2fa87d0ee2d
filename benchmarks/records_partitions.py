"""What the night's `score_records` tasks cost together as the night grows, read and scoring apart.

On the nights `task_memory.py --work DIR` keeps (`DIR/x<size>/`: the demo's databases and the
night's lake after a whole `seam run`), every partition of customers is gathered from every score
shard's exchange (`pipelines.inputs.customer_fits`) and scored (`score_night_records`), one
partition after another in one fresh process per checkout, size and repetition, as the step's
tasks do (nothing is written).  A checkout whose plan cuts the customers into fewer partitions
than the kept night's (`pipelines.state.partition_count`) reads a copy of the night's lake (hard
links) whose exchange is cut again into its partitions: the same lines each score shard sent (and,
for a checkout whose plan records each customer's cut-off day, with the plan's cut-offs counted
on that copy and the lines older than them put in the batches of their own a score shard writes).
Reported per size: the partitions, the seconds of the gathering and of the scoring summed over
them, and the lines the gathering hands to the scoring, medians over `--reps`.
Checkouts alternate which goes first.

    .venv/bin/python benchmarks/records_partitions.py --work /tmp/tm --sizes 16 64 \
        --before /tmp/seam-before --after . --reps 3 --out benchmarks/results/records_partitions.json

Writes the JSON and a markdown table next to it.
"""

from __future__ import annotations

import argparse
import json
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

# run in the checkout's process: every partition, gathered then scored, timed apart
_ONE_RUN = """
import inspect, json, sys, time
from datetime import date
from pipelines.anomaly.nightly import score_night_records, window_start_of
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
try:
    from pipelines.state import record_partitions
except ImportError:  # a checkout with a partition per shard
    parts = shards
else:
    parts = record_partitions(lake, ctx.run_date)
# a checkout that keeps, as it gathers, only the earlier lines a line's history can hold
trims = "after" in inspect.signature(customer_fits).parameters
def trim(context):
    return {"after": window_start_of(context)} if trims else {}
read = score = 0.0
lines = scored = 0
for part in range(parts):
    t0 = time.perf_counter()
    context = night_context(cfg, ctx)
    fits, pairs = customer_fits(lake, ctx.run_date, part, shards, **trim(context))
    t1 = time.perf_counter()
    night = score_night_records(fits, pairs, context)
    t2 = time.perf_counter()
    read, score, lines = read + t1 - t0, score + t2 - t1, lines + len(fits)
print(json.dumps({"partitions": parts, "read_s": read, "score_s": score, "lines": lines}))
"""

# run in the checkout's process, on a copy of the night's lake: the night's plan and exchange as
# the checkout's plan step and score shards would have written them from the same lines
_RECUT = """
import json, sys
from datetime import date
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
from pipelines.config import load_config
from pipelines.lake import Lake
from pipelines.sharding import partition_of
from pipelines.state import partition_count, shard_plan

cfg = load_config(sys.argv[1])
d = date.fromisoformat(sys.argv[2])
lake = Lake(cfg.lake)
shards = shard_plan(lake, "forecasts", d)
parts = partition_count(shards, cfg.scale.worker_slots)
try:  # a checkout whose plan records each customer's cut-off day
    from pipelines.anomaly.records import HistoryCutoffs, left_out
    from pipelines.state import record_cutoffs, write_record_cutoffs
    from pipelines.steps import window_start
    from pipelines.run_context import RunContext
except ImportError:
    left_out = None


def count_cutoffs(after):
    try:  # the cut-offs in the plan's notes, counted in a pass of their own
        from pipelines.sharding import history_cutoffs
    except ImportError:  # in a file of the exchange, counted in the plan's pass over the lines
        from pipelines.lake import iter_source_batches

        counted = HistoryCutoffs(pd.Timestamp(after))
        for batch in iter_source_batches(cfg, "order_lines", d, columns=["customer_id", "order_date"]):
            counted.add(batch.column("customer_id"), batch.column("order_date"))
        table = counted.finish()
        table["customer_part"] = partition_of(table["customer_id"], parts)
        write_record_cutoffs(lake, d, after, table, parts)
        return record_cutoffs(lake, d, after)
    cutoffs = history_cutoffs(cfg, d, after)
    write_record_cutoffs(lake, d, after, cutoffs)
    return cutoffs


if lake.read_shard_plan("anomalies", d) != shards + parts:
    lake.write_shard_plan("anomalies", d, shards + parts)
    cutoffs, after = {}, None
    if left_out is not None:
        after = window_start(cfg, RunContext(d))
        cutoffs = count_cutoffs(after)
    folder = lake.exchange_partition("record_fits", d)
    for k in range(shards):
        with pa.OSFile(str(folder / f"part-shard-{k:05d}.arrow"), "rb") as f:
            reader = ipc.open_file(f)
            batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        table = pa.Table.from_batches(batches)
        frame = table.to_pandas(date_as_object=False)
        manifest = {k2: v for k2, v in lake.shard_manifest("record_fits", d, k).items() if k2 not in ("rows", "parts")}
        cut = partition_of(frame["customer_id"], parts)
        if left_out is None:
            lake.write_exchange("record_fits", d, k, frame.assign(customer_part=cut), by="customer_part", parts=parts, manifest=manifest)
            continue
        older = left_out(frame, after=pd.Timestamp(after), cutoffs=cutoffs)
        frame = frame.assign(customer_part=np.where(older, cut + parts, cut))
        lake.write_exchange("record_fits", d, k, frame, by="customer_part", parts=2 * parts, manifest=manifest)
print(json.dumps({"shards": shards, "partitions": parts}))
"""


def _run(checkout: Path, config: Path) -> dict[str, Any]:
    what = f"score_records partitions ({checkout}, {config})"
    return run_json(_ONE_RUN, [str(config), NIGHT], cwd=checkout, what=what, pythonpath=checkout)


def _own_night(checkout: Path, config: Path, version: str) -> Path:
    """The night as `checkout` would have made it: the kept night when its plan has the same
    partitions, else a hard-linked copy of the lake with the exchange cut into its partitions."""
    has_partitions = (checkout / "pipelines" / "state" / "shard_plans.py").read_text()
    if "def partition_count" not in has_partitions:
        return config
    raw = yaml.safe_load(config.read_text())
    lake = Path(raw["lake"])
    copy = lake.with_name(f"lake-{version}")
    if not copy.exists():
        subprocess.run(["cp", "-al", str(lake), str(copy)], check=True)
    raw["lake"] = str(copy)
    own = config.with_name(f"seam-{version}.yml")
    own.write_text(yaml.safe_dump(raw, sort_keys=False))
    print(
        json.dumps(
            {
                "version": version,
                **run_json(_RECUT, [str(own), NIGHT], cwd=checkout, what="re-cut", pythonpath=checkout),
            }
        )
    )
    return own


def measure(work: Path, sizes: list[int], checkouts: dict[str, Path], reps: int) -> list[dict[str, Any]]:
    results = []
    for size in sizes:
        config = work / f"x{size}" / "base" / "seam.yml"
        if not config.is_file():
            raise SystemExit(f"no night of size {size} in {work}: run task_memory.py --work {work} first")
        configs = {v: _own_night(checkouts[v], config, v) for v in checkouts}
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in checkouts}
        for rep in range(reps):
            order = list(checkouts) if rep % 2 == 0 else list(reversed(checkouts))
            for version in order:
                runs[version].append(_run(checkouts[version], configs[version]))
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
        "| size | checkout | partitions | lines out of the gathering | gather s | score s | task-s |",
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
