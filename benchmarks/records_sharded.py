"""Order-line anomalies of a night in shards against the whole night at once.

The nightly run fits the order lines one shard of SKUs at a time (`record_fits`) and scores them
one partition of customers at a time (`score_fitted`). On the labelled synthetic order lines of
`anomaly_accuracy.py` (mispriced lines, unit errors, double entries), this checks that the two
halves give the whole night's scores row for row, and measures precision, recall, time and the
largest piece either half holds:

    .venv/bin/python benchmarks/records_sharded.py --lines 60000 --seeds 7 8 --shards 4 \
        --out benchmarks/results/records_sharded.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from anomaly_accuracy import build_orders  # noqa: E402

from pipelines.anomaly.records import night_fits, record_fits, score_fitted, score_records  # noqa: E402

KEY = ["record_id", "field"]


def _part(values: pd.Series, parts: int) -> pd.Series:
    return values.map(lambda v: zlib.crc32(str(v).encode()) % parts)


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.sort_values(KEY).reset_index(drop=True)
    return out.assign(reason=out["reason"].astype(object).where(out["reason"].notna(), None))


def run(n_lines: int, seed: int, shards: int, window_days: int = 7) -> dict[str, object]:
    lines, bad = build_orders(n_lines, seed)
    t0 = time.perf_counter()
    whole = _rows(score_records(lines))
    whole_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sku_part = _part(lines["sku"], shards)
    fits = [record_fits(lines[sku_part == k]) for k in range(shards)]
    every = pd.concat([f.lines for f in fits], ignore_index=True)
    cust_part = _part(every["customer_id"], shards)
    pieces = [every[cust_part == j] for j in range(shards)]
    sharded = _rows(pd.concat([score_fitted(p, [f.pairs for f in fits]) for p in pieces], ignore_index=True))
    sharded_s = time.perf_counter() - t0
    pd.testing.assert_frame_equal(whole, sharded)
    # the nightly run: each shard keeps the window's lines (the last `window_days`) and each
    # customer's history before them; the window's rows are the same
    after = lines["order_date"].max().normalize() - pd.Timedelta(days=window_days)
    kept = pd.concat([night_fits(f.lines, after=after) for f in fits], ignore_index=True)
    kept_part = _part(kept["customer_id"], shards)
    night = _rows(
        pd.concat(
            [
                score_fitted(kept[kept_part == j], [f.pairs for f in fits], only_after=after)
                for j in range(shards)
            ],
            ignore_index=True,
        )
    )
    pd.testing.assert_frame_equal(
        night, whole[whole["order_date"] > after].reset_index(drop=True), check_dtype=False
    )
    flagged = set(sharded.loc[sharded["is_anomaly"], "record_id"])
    tp = len(flagged & bad)
    return {
        "seed": seed,
        "lines": len(lines),
        "labelled_bad": len(bad),
        "flagged": len(flagged),
        "precision": round(tp / len(flagged), 4) if flagged else None,
        "recall": round(tp / len(bad), 4),
        "identical_rows": True,
        "whole_s": round(whole_s, 2),
        "sharded_s": round(sharded_s, 2),
        "largest_sku_shard_lines": max(int((sku_part == k).sum()) for k in range(shards)),
        "largest_customer_partition_lines": max(len(p) for p in pieces),
        "window_days": window_days,
        "night_window_rows_identical": True,
        "largest_customer_partition_lines_kept": max(int((kept_part == j).sum()) for j in range(shards)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=60_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8])
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "records_sharded.json")
    args = ap.parse_args()
    results = [run(args.lines, seed, args.shards) for seed in args.seeds]
    for r in results:
        print(json.dumps(r))
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
