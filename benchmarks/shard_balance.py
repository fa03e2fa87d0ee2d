"""Shard balance: forecasting shards planned by expected cost against shards by a hash of the SKU.

Builds a demo on SQLite (a share of its SKUs launched late, so series differ in length and in
whether they sell on most days), extracts and validates one night, then forecasts the night in
`--shards` shards twice: with the plan step's cost-based assignment and with the former hash of the
SKU. Each shard runs alone in this process (one core: `processes_per_task: 1`), so its CPU time is
its cost, and CPU time is what a shared, busy machine disturbs least. Reports per plan the shard
CPU seconds (and wall seconds), the largest shard over the mean (1.0 is perfect balance), and the makespan on `--slots`
task slots taking the shards in order (each next shard to the first free slot), as a scheduler does.
Forecasts are the same under both plans (per series); only the timing differs.

    .venv/bin/python benchmarks/shard_balance.py --skus 240 --warehouses 3 --days 365 \
        --shards 4 --slots 2 --repeats 2 --out benchmarks/results/shard_balance.json
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.config import ScaleSpec, load_config  # noqa: E402
from pipelines.demo import DemoSize, generate  # noqa: E402
from pipelines.lake import Lake  # noqa: E402
from pipelines.run_context import RunContext  # noqa: E402
from pipelines.sharding import night_skus, shard_of  # noqa: E402
from pipelines.state import shard_assignment  # noqa: E402
from pipelines.steps import run_extract, run_forecast, run_migrate, run_plan, run_validate  # noqa: E402

NIGHT = date(2026, 11, 22)


def makespan(seconds: list[float], slots: int) -> float:
    """Finish time of shards taken in order by `slots` slots (each next shard to the first free)."""
    free = [0.0] * slots
    for s in seconds:
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skus", type=int, default=240)
    ap.add_argument("--warehouses", type=int, default=3)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--late-launches", type=float, default=0.3)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "shard_balance.json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = Path(tempfile.mkdtemp(prefix="seam_shards_"))
    size = DemoSize(
        skus=args.skus,
        warehouses=args.warehouses,
        days=args.days,
        end_date=NIGHT,
        late_launches=args.late_launches,
        launch_days=min(120, args.days - 1),
    )
    generate(f"sqlite:///{work / 'erp.db'}", f"sqlite:///{work / 'crm.db'}", size)
    raw = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
    for name in ("erp", "crm"):
        raw["sources"][name]["url"] = f"sqlite:///{work / f'{name}.db'}"
    raw["lake"] = str(work / "lake")
    raw["report"] = {**raw.get("report", {}), "directory": str(work / "reports")}
    raw.pop("notifications", None)
    (work / "seam.yml").write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(work / "seam.yml")
    cfg = replace(cfg, scale=ScaleSpec(shards=args.shards, processes_per_task=1))
    ctx = RunContext(NIGHT)
    run_migrate(cfg)
    run_extract(cfg, ctx)
    run_validate(cfg, ctx)
    lake = Lake(cfg.lake)
    run_plan(cfg, ctx)
    by_cost = shard_assignment(lake, NIGHT)
    assert by_cost is not None
    skus = night_skus(cfg, NIGHT)
    by_hash = [[s for s in skus if shard_of(s, args.shards) == k] for k in range(args.shards)]
    plans = {"cost": by_cost, "hash": by_hash}
    runs: dict[str, list[list[float]]] = {name: [] for name in plans}
    wall: dict[str, list[list[float]]] = {name: [] for name in plans}
    outputs: dict[str, Any] = {}
    for _ in range(args.repeats):
        for name, plan in plans.items():  # interleaved, so both see the same machine
            lake.annotate_shard_plan("forecasts", NIGHT, "skus", plan)
            seconds, walls = [], []
            for k in range(args.shards):
                t0, c0 = time.perf_counter(), time.process_time()
                run_forecast(cfg, ctx, shard=k)
                seconds.append(time.process_time() - c0)
                walls.append(time.perf_counter() - t0)
            runs[name].append(seconds)
            wall[name].append(walls)
            out = lake.read_output("forecasts", NIGHT)
            outputs[name] = out.sort_values(["sku", "warehouse", "target_date"])[["yhat"]].to_numpy()
    same = bool((outputs["cost"] == outputs["hash"]).all())
    result: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "series": int(sum(1 for _ in lake.read_output("forecasts", NIGHT).groupby(["sku", "warehouse"]))),
        "same_point_forecasts": same,
        "loadavg": os.getloadavg(),
        "plans": {},
    }
    for name, reps in runs.items():
        shard_s = [statistics.median(r[k] for r in reps) for k in range(args.shards)]
        shard_wall = [statistics.median(r[k] for r in wall[name]) for k in range(args.shards)]
        result["plans"][name] = {
            "skus_per_shard": [len(s) for s in plans[name]],
            "median_shard_cpu_seconds": [round(s, 2) for s in shard_s],
            "median_shard_wall_seconds": [round(s, 2) for s in shard_wall],
            "max_over_mean": round(max(shard_s) / statistics.mean(shard_s), 3),
            "makespan_s": round(makespan(shard_s, args.slots), 2),
            "task_seconds": round(sum(shard_s), 2),
        }
    result["makespan_ratio_hash_over_cost"] = round(
        result["plans"]["hash"]["makespan_s"] / result["plans"]["cost"]["makespan_s"], 3
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
