"""Memory and time of reading a night's dataset shard after shard, as the plan, forecast and
score steps do: `Lake.read_table`'s reader (one thread, a column chunk at a time, no
pre-buffering) against pyarrow's default dataset reader (row groups decoded by threads, column
chunks buffered ahead), each in a fresh process with seam's allocator settings.

    .venv/bin/python benchmarks/lake_shard_reads.py --lake /tmp/tm/x64/lake --dataset order_lines \
        --date 2026-11-22 --reps 3 --out benchmarks/results/lake_shard_reads.json

The shards are the night's shard plan's SKU ranges (the filter each shard pushes down).  Per
reader: the process's RSS before reading, its peak (VmHWM) after the first shard, after a quarter
of them and after all, the seconds of the shard reads, and the seconds of one read of the whole
night into pandas; medians over `--reps` runs, alternating which reader goes first.
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

CHILD = """
import json, sys, time
from datetime import date
import pyarrow.parquet as pq
from pipelines.lake import Lake
from pipelines.lake.store import prunable
from pipelines.process import set_up_process
from pipelines.state import shard_assignment

set_up_process()

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

lake, source, table, day, reader = Lake(sys.argv[1]), sys.argv[2], sys.argv[3], date.fromisoformat(sys.argv[4]), sys.argv[5]
files = list(lake.table_files(source, table, day))
plan = shard_assignment(lake, day)

def read(filters):
    if reader == "seam":
        return lake.read_table(source, table, day, filters=filters)
    return pq.ParquetDataset(files, partitioning=None, filters=prunable(filters)).read()

start = status("VmRSS")
peaks, t0 = {}, time.perf_counter()
for k, skus in enumerate(plan):
    read([("sku", "in", skus)]).to_pandas()
    if k + 1 in (1, len(plan) // 4, len(plan)):
        peaks[k + 1] = status("VmHWM")
shard_s = time.perf_counter() - t0
t0 = time.perf_counter()
read(None).to_pandas()
whole_s = time.perf_counter() - t0
print(json.dumps({"start_mb": start, "peaks_mb": peaks, "shard_s": shard_s, "whole_s": whole_s, "shards": len(plan)}))
"""

READERS = ("seam", "pyarrow default")


def _run(lake: str, source: str, table: str, day: str, reader: str) -> dict[str, Any]:
    mode = "seam" if reader == "seam" else "default"
    return run_json(CHILD, [lake, source, table, day, mode], cwd=ROOT, what=f"the {reader} reader")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--source", default="erp")
    ap.add_argument("--dataset", default="order_lines", help="the table of the source")
    ap.add_argument("--date", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lake_shard_reads.json")
    args = ap.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {r: [] for r in READERS}
    for rep in range(args.reps):
        for reader in READERS if rep % 2 == 0 else tuple(reversed(READERS)):
            runs[reader].append(_run(args.lake, args.source, args.dataset, args.date, reader))
            print(json.dumps({"reader": reader, **runs[reader][-1]}), flush=True)
    lines = [
        "| reader | RSS before MB | peak after 1 shard | after 1/4 | after all | shard reads s | whole night s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for reader, rs in runs.items():
        marks = list(rs[0]["peaks_mb"])
        peaks = [statistics.median(r["peaks_mb"][m] for r in rs) for m in marks]
        cells = " | ".join(f"{p:,.0f}" for p in peaks)
        start = statistics.median(r["start_mb"] for r in rs)
        shard_s = statistics.median(r["shard_s"] for r in rs)
        whole_s = statistics.median(r["whole_s"] for r in rs)
        lines.append(f"| {reader} | {start:,.0f} | {cells} | {shard_s:.2f} | {whole_s:.2f} |")
    table = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=2))
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
