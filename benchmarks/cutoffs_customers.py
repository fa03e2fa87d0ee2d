"""What counting the customers' cut-off days costs the plan step as the customers grow.

`pipelines.anomaly.records.HistoryCutoffs` counts a night's order lines a record batch at a time
(65,536 lines, as the plan reads them).  Here on synthetic lines: `--lines` lines of `--customers`
customers (uniformly drawn) over 60 days, in the order of their dates, counted with the window's
start a week before the last day.  Each checkout (`--before`, `--after`) counts them in a fresh
process, alternating which goes first; seconds of the batches' counting and of `finish`, medians
over `--reps`, and the customers given a cut-off (the same with either checkout).

    .venv/bin/python benchmarks/cutoffs_customers.py --before /tmp/seam-before --after . \
        --customers 500 20000 200000 1000000 --reps 3 --out benchmarks/results/cutoffs_customers.json

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

_COUNT = """
import json, sys, time
import numpy as np, pandas as pd, pyarrow as pa
from pipelines.anomaly.records import HistoryCutoffs

lines, customers = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(1)
ids = pa.array(np.char.add("C", rng.integers(0, customers, lines).astype(str)))
first = pd.Timestamp("2026-09-23")
days = np.sort(rng.integers(0, 60, lines))
dates = pa.array((first + pd.to_timedelta(days, unit="D")).to_numpy())
counter = HistoryCutoffs(first + pd.Timedelta(days=52))
t0 = time.perf_counter()
for at in range(0, lines, 65_536):
    counter.add(ids.slice(at, 65_536), dates.slice(at, 65_536))
t1 = time.perf_counter()
out = counter.finish()
t2 = time.perf_counter()
print(json.dumps({"add_s": t1 - t0, "finish_s": t2 - t1, "cutoffs": len(out)}))
"""


def measure(lines: int, customers: list[int], checkouts: dict[str, Path], reps: int) -> list[dict[str, Any]]:
    results = []
    for count in customers:
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in checkouts}
        for rep in range(reps):
            for version in list(checkouts) if rep % 2 == 0 else list(reversed(checkouts)):
                what = f"counting ({version}, {count} customers)"
                run = run_json(
                    _COUNT,
                    [str(lines), str(count)],
                    cwd=checkouts[version],
                    what=what,
                    pythonpath=checkouts[version],
                )
                runs[version].append(run)
                print(json.dumps({"customers": count, "version": version, **run}), flush=True)
        median = {
            v: {k: statistics.median(r[k] for r in rs) for k in ("add_s", "finish_s")}
            | {"cutoffs": rs[0]["cutoffs"]}
            for v, rs in runs.items()
        }
        results.append({"lines": lines, "customers": count, "runs": runs, "median": median})
    return results


def render(results: list[dict[str, Any]]) -> str:
    out = [
        "| customers | checkout | batches s | finish s | total s | customers with a cut-off |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        for version, m in r["median"].items():
            total = m["add_s"] + m["finish_s"]
            out.append(
                f"| {r['customers']:,} | {version} | {m['add_s']:.2f} | {m['finish_s']:.2f} | {total:.2f} "
                f"| {m['cutoffs']:,} |"
            )
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="checkout of the code before the change")
    ap.add_argument("--after", type=Path, default=ROOT, help="checkout of the code after it")
    ap.add_argument("--lines", type=int, default=3_500_000, help="order lines (the 64x night has 3.5M)")
    ap.add_argument("--customers", type=int, nargs="+", default=[500, 20_000, 200_000, 1_000_000])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cutoffs_customers.json")
    args = ap.parse_args()
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    results = measure(args.lines, args.customers, checkouts, args.reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
