"""What one `score_records` task pays to gather its partition of customers from every score shard:
the Arrow IPC exchange (`Lake.write_exchange`, one record batch per partition) against the Parquet
file it replaced (each shard's fits sorted by partition in 16 row groups, read with a filter).

Every one of the night's `shards` partitions reads every shard, so a night of S shards makes S x S
reads: the cost of one read decides how the step grows.  This writes S shard files of fitted order
lines (the real columns of `pipelines.anomaly.records.record_fits`, on the synthetic lines of
`anomaly_accuracy.py`; `--rows-per-shard` rows each, customers spread over the S partitions), then
times a sample of partition tasks gathering their rows both ways (`--tasks` tasks, each reading all
S shards), interleaved, `--reps` times, medians reported.  The two ways must give the same rows.

    .venv/bin/python benchmarks/records_exchange.py --shards 32 128 --rows-per-shard 20000 \
        --tasks 16 --reps 3 --out benchmarks/results/records_exchange.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from anomaly_accuracy import build_orders  # noqa: E402

from pipelines.anomaly.records import record_fits  # noqa: E402
from pipelines.lake import Lake  # noqa: E402

NIGHT = date(2026, 11, 22)
ROW_GROUPS = 16  # what the Parquet layout used


def _fits(rows: int) -> pd.DataFrame:
    lines, _ = build_orders(rows, seed=7)
    return record_fits(lines).lines.head(rows).reset_index(drop=True)


def _write(folder: Path, fits: pd.DataFrame, shards: int) -> Lake:
    lake = Lake(folder / "lake")
    lake.write_shard_plan("record_fits", NIGHT, shards)
    rng = np.random.default_rng(shards)
    for k in range(shards):
        parted = fits.assign(customer_part=rng.integers(0, shards, len(fits)))
        lake.write_exchange("record_fits", NIGHT, k, parted, by="customer_part", parts=shards, manifest={})
        ordered = pa.Table.from_pandas(
            parted.sort_values("customer_part", kind="stable", ignore_index=True), preserve_index=False
        )
        pq.write_table(
            ordered,
            folder / f"parquet-{k:05d}.parquet",
            compression="zstd",
            row_group_size=max(1, math.ceil(ordered.num_rows / min(ROW_GROUPS, shards))),
        )
    return lake


def _gather_ipc(lake: Lake, shards: int, part: int) -> pd.DataFrame:
    return lake.read_exchange("record_fits", NIGHT, range(shards), part)


def _gather_parquet(folder: Path, shards: int, part: int) -> pd.DataFrame:
    frames = [
        pq.read_table(folder / f"parquet-{k:05d}.parquet", filters=[("customer_part", "=", part)])
        .to_pandas(date_as_object=False)
        .drop(columns=["customer_part"])
        for k in range(shards)
    ]
    return pd.concat(frames, ignore_index=True)


def run(shards: int, rows: int, tasks: int, reps: int) -> dict[str, Any]:
    fits = _fits(rows)
    parts = sorted({int(p) for p in np.linspace(0, shards - 1, min(tasks, shards))})
    with tempfile.TemporaryDirectory(prefix="seam-exchange-") as tmp:
        folder = Path(tmp)
        lake = _write(folder, fits, shards)
        ipc_bytes = sum(p.stat().st_size for p in lake.output_partition("record_fits", NIGHT).glob("*.arrow"))
        parquet_bytes = sum(p.stat().st_size for p in folder.glob("parquet-*.parquet"))
        for part in parts[:2]:  # the same rows either way
            pd.testing.assert_frame_equal(
                _gather_ipc(lake, shards, part), _gather_parquet(folder, shards, part), check_dtype=False
            )
        seconds: dict[str, list[float]] = {"ipc": [], "parquet": []}
        for _ in range(reps):
            for name in ("parquet", "ipc"):
                t0 = time.perf_counter()
                for part in parts:
                    if name == "ipc":
                        _gather_ipc(lake, shards, part)
                    else:
                        _gather_parquet(folder, shards, part)
                seconds[name].append((time.perf_counter() - t0) / len(parts))
    per_task = {k: statistics.median(v) for k, v in seconds.items()}
    return {
        "shards": shards,
        "rows_per_shard": len(fits),
        "columns": len(fits.columns),
        "tasks_timed": len(parts),
        "reps": reps,
        "seconds_per_task": {k: round(v, 4) for k, v in per_task.items()},
        "ms_per_read": {k: round(1000 * v / shards, 3) for k, v in per_task.items()},
        "step_read_seconds": {k: round(v * shards, 2) for k, v in per_task.items()},
        "ipc_x_faster": round(per_task["parquet"] / per_task["ipc"], 2),
        "bytes": {"ipc": ipc_bytes, "parquet": parquet_bytes},
        "each_seconds_per_task": {k: [round(x, 4) for x in v] for k, v in seconds.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--rows-per-shard", type=int, default=20_000)
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    load_before = os.getloadavg()
    results = [run(s, args.rows_per_shard, args.tasks, args.reps) for s in args.shards]
    for r in results:
        print(json.dumps({k: v for k, v in r.items() if k != "each_seconds_per_task"}))
    if len(results) > 1:
        first, last = results[0], results[-1]
        growth = {
            k: round(last["step_read_seconds"][k] / first["step_read_seconds"][k], 2)
            for k in ("ipc", "parquet")
        }
        print(json.dumps({"step_read_seconds_growth": growth, "shards": [first["shards"], last["shards"]]}))
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "command": "python benchmarks/records_exchange.py " + " ".join(sys.argv[1:]),
                    "cpus": os.cpu_count(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()],
                    "results": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
