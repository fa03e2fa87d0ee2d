"""Peak memory of validating order lines in batches, at growing table sizes.

Writes a synthetic order-lines Parquet file of each size (three lines per order, 1,000 SKUs, 500
customers, two years of dates), then validates it with the `order_lines` suite from
`expectations/` in a fresh process per size and reports that process's peak RSS (VmHWM) and time.
The suite's references to other datasets (SKUs, customers, warehouses of the night) are dropped,
since there are no other datasets here; every other expectation runs, key uniqueness included.

    .venv/bin/python benchmarks/validate_memory.py --rows 2000000 4000000 8000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from pipelines.quality import run_suite_batched
from pipelines.quality.batches import BatchSource

def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmHWM"))

suite = json.load(open({suite!r}))
suite["expectations"] = [
    e for e in suite["expectations"]
    if not (e["type"].endswith("_in_set") and "value_set" not in e["kwargs"])
]
before = hwm()
t0 = time.perf_counter()
results = run_suite_batched("order_lines", suite, BatchSource(files=({path!r},)))
print(json.dumps({{"seconds": time.perf_counter() - t0, "imports_mb": before, "peak_mb": hwm(),
                  "failed": sum(not r.success for r in results), "checks": len(results)}}))
"""


def write_lines(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    writer = None
    step = 1_000_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        i = np.arange(start, start + n)
        table = pa.table(
            {
                "order_id": pa.array([f"SO-{o:09d}" for o in i // 3]),
                "line_no": pa.array((i % 3 + 1).astype(np.int32)),
                "order_date": pa.array(
                    np.datetime64("2024-11-23") + (i * 730 // rows).astype("timedelta64[D]")
                ),
                "customer_id": pa.array([f"C{c:05d}" for c in rng.integers(0, 500, n)]),
                "warehouse": pa.array([f"W{w}" for w in rng.integers(0, 5, n)]),
                "channel": pa.array(["web"] * n),
                "sku": pa.array([f"SKU-{s:05d}" for s in rng.integers(0, 1000, n)]),
                "quantity": pa.array(rng.integers(1, 5, n).astype(np.float64)),
                "returned_quantity": pa.array(np.zeros(n)),
                "unit_price": pa.array(rng.uniform(1, 100, n)),
                "discount": pa.array(rng.uniform(0, 0.3, n)),
                "currency": pa.array(["EUR"] * n),
                "status": pa.array(["shipped"] * n),
                "updated_at": pa.array(np.full(n, np.datetime64("2026-11-22T00:00:00", "us"))),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=step)
    if writer is not None:
        writer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 4_000_000, 8_000_000])
    args = ap.parse_args()
    print("| rows | seconds | peak RSS MB | after imports MB | checks failed |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="seam-vmem-") as tmp:
        for rows in args.rows:
            path = Path(tmp) / f"order_lines_{rows}.parquet"
            write_lines(path, rows)
            code = WORKER.format(
                root=str(ROOT), suite=str(ROOT / "expectations" / "order_lines.json"), path=str(path)
            )
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"| {rows:,} | {res['seconds']:.1f} | {res['peak_mb']} | {res['imports_mb']} | "
                f"{res['failed']} of {res['checks']} |",
                flush=True,
            )
            path.unlink()


if __name__ == "__main__":
    main()
