"""Memory and time of reading a lake output in record batches: `Lake.iter_output(batch_rows=)`
against pyarrow's default `ParquetFile.iter_batches` (every column chunk of a row group fetched
whole, decoded by threads), each in a fresh process with seam's allocator settings.

    .venv/bin/python benchmarks/lake_batch_read.py --lake /tmp/tm/x64/lake --output forecast_hierarchy \
        --date 2026-11-22 --reps 5 --out benchmarks/results/lake_batch_read.json

Per reader: the growth of the process's peak RSS (VmHWM) over its RSS before reading, and the
seconds to read every batch into pandas; medians over `--reps` runs, alternating which goes first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
from datetime import date
import pyarrow.parquet as pq
from pipelines.lake import Lake
from pipelines.process import set_up_process

set_up_process()

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) // 1024

lake, output, day, reader, rows = sys.argv[1], sys.argv[2], date.fromisoformat(sys.argv[3]), sys.argv[4], int(sys.argv[5])
store = Lake(lake)
paths = sorted(store.output_partition(output, day).glob("*.parquet"))
start = status("VmRSS")
t = time.perf_counter()
n = 0
if reader == "iter_output":
    for frame in store.iter_output(output, day, batch_rows=rows):
        n += len(frame)
else:
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            n += len(batch.to_pandas())
print(n, time.perf_counter() - t, status("VmHWM") - start)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--output", default="forecast_hierarchy")
    ap.add_argument("--date", required=True)
    ap.add_argument("--rows", type=int, default=50_000, help="rows per batch (the load's BATCH_ROWS)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lake_batch_read.json")
    args = ap.parse_args()
    readers = ["pyarrow_default", "iter_output"]
    runs: dict[str, list[tuple[int, float, int]]] = {r: [] for r in readers}
    for rep in range(args.reps):
        for reader in readers if rep % 2 == 0 else readers[::-1]:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, args.lake, args.output, args.date, reader, str(args.rows)],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            runs[reader].append((int(out[0]), float(out[1]), int(out[2])))
    summary = {
        r: {
            "rows": runs[r][0][0],
            "median_seconds": round(statistics.median(x[1] for x in runs[r]), 3),
            "median_peak_growth_mb": statistics.median(x[2] for x in runs[r]),
        }
        for r in readers
    }
    result = {
        "command": " ".join(sys.argv),
        "args": vars(args) | {"out": str(args.out)},
        "runs": runs,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
