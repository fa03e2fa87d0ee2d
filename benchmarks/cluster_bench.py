"""What laying an extracted partition out by SKU costs: time and peak memory of writing a night of
order lines with `PartitionWriter`, clustered by SKU against written as read.

Each measurement runs in a fresh process that generates the night (order lines with the demo's
column types, SKUs in random order), then writes it in batches of 50,000 rows as extraction does;
the process's peak RSS (`ru_maxrss`) is taken after the write, the generated night included.  The
two ways are run interleaved, `--reps` times each, medians reported.

    .venv/bin/python benchmarks/cluster_bench.py --rows 250000 1000000 3000000 --reps 3 \
        --out benchmarks/results/cluster.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _night(rows: int) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(7)
    skus = rows // 150 + 1
    return pa.table(
        {
            "order_id": pa.array([f"SO{i // 4:09d}" for i in range(rows)]),
            "line_no": pa.array(np.arange(rows) % 4 + 1),
            "order_date": pa.array(
                np.datetime64("2026-01-01") + rng.integers(0, 60, rows).astype("timedelta64[D]")
            ),
            "customer_id": pa.array([f"C{i:06d}" for i in rng.integers(0, rows // 40 + 1, rows)]),
            "sku": pa.array([f"SKU-{i:06d}" for i in rng.integers(0, skus, rows)]),
            "warehouse": pa.array([f"WH{i:02d}" for i in rng.integers(0, 5, rows)]),
            "quantity": pa.array(rng.integers(1, 12, rows).astype(float)).cast(pa.decimal128(12, 3)),
            "unit_price": pc.round(pa.array(rng.random(rows) * 100), 2).cast(pa.decimal128(12, 2)),
            "currency": pa.array(["EUR"] * rows),
            "status": pa.array(["shipped"] * rows),
        }
    )


def _worker(rows: int, cluster: str | None, folder: Path) -> dict[str, Any]:
    from pipelines.extract.cluster import PartitionWriter

    night = _night(rows)
    batches = night.to_batches(max_chunksize=50_000)
    path = folder / "part-00000.parquet"
    t0 = time.perf_counter()
    writer = PartitionWriter(path, night.schema, compression="zstd", cluster=cluster)
    for batch in batches:
        writer.write_batch(batch)
    writer.close()
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "night_mb": night.nbytes / 2**20,
        "spilled": writer.spilled,
        "bytes": path.stat().st_size,
    }


def _measure(rows: int, cluster: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="seam-cluster-") as tmp:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", str(rows), cluster or "-", tmp],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[250_000, 1_000_000])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        rows, cluster, folder = args.worker
        print(json.dumps(_worker(int(rows), None if cluster == "-" else cluster, Path(folder))))
        return
    results = []
    for rows in args.rows:
        runs: dict[str, list[dict[str, Any]]] = {"as read": [], "by sku": []}
        for _ in range(args.reps):
            runs["as read"].append(_measure(rows, None))
            runs["by sku"].append(_measure(rows, "sku"))
        entry: dict[str, Any] = {"rows": rows, "load": os.getloadavg()[0]}
        for way, reps in runs.items():
            entry[way] = {
                "seconds": statistics.median(r["seconds"] for r in reps),
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in reps),
                "night_mb": reps[0]["night_mb"],
                "spilled": reps[0]["spilled"],
                "all_seconds": [round(r["seconds"], 2) for r in reps],
            }
        entry["time_ratio"] = entry["by sku"]["seconds"] / entry["as read"]["seconds"]
        entry["extra_rss_mb"] = entry["by sku"]["peak_rss_mb"] - entry["as read"]["peak_rss_mb"]
        results.append(entry)
        print(json.dumps(entry), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
