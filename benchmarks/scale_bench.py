"""Scale benchmark: the whole nightly run on a real Airflow (Celery) at growing demo sizes.

For each size (a multiple of the default demo's 200 SKUs x 5 warehouses) the demo is generated
once on SQLite, then `seam_nightly` runs for one night on a fresh copy of it under a local
Airflow deployment (API server, scheduler, DAG processor, PostgreSQL metadata, Redis broker) with
one Celery worker and then with two.  Each worker has one task slot and each task one process
(`scale.processes_per_task: 1`), so a worker is one core's worth of work and the second worker is
what scale-out adds.  Per step it records the span (first task start to last task end), the
tasks' summed duration, rows per second and the peak RSS of the step's largest task (each task
logs its own peak RSS through the run ledger).

Start the servers first, then run:

    eval "$(scripts/services.sh)"
    .venv/bin/python benchmarks/scale_bench.py --sizes 1 4 16 --workers 1 2 --days 180 \
        --out benchmarks/results/scale.json

Writes the JSON and a markdown table (`--out` with `.md`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cpu_sampler import MACHINE, CpuSampler  # noqa: E402

from pipelines.demo import DemoSize, generate  # noqa: E402
from scripts.local_cluster import LocalCluster  # noqa: E402

NIGHT = date(2026, 11, 22)
BASE_SKUS, BASE_WAREHOUSES = 200, 5
# the servers the deployment uses, by command name (they run outside the cluster's sessions)
SERVERS = {"postgres": "postgres", "redis": "redis-server"}
RSS = re.compile(r"step (\S+) run_date=\S+ attempt=\d+ status=(\w+) .*?peak_rss_mb=(\d+)")


def _config(run_dir: Path, series_per_shard: int) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
    for name in ("erp", "crm"):
        raw["sources"][name]["url"] = f"sqlite:///{run_dir / f'{name}.db'}"
    raw["lake"] = str(run_dir / "lake")
    raw["report"] = {**raw.get("report", {}), "directory": str(run_dir / "reports")}
    raw.pop("notifications", None)
    raw["scale"] = {"series_per_shard": series_per_shard, "processes_per_task": 1}
    path = run_dir / "seam.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _peak_rss(home: Path) -> dict[tuple[str, int], float]:
    """(task_id, map_index) -> the peak RSS (MB) the task's ledger line reported."""
    out: dict[tuple[str, int], float] = {}
    for log in (home / "logs").rglob("attempt=*.log"):
        parts = {p.split("=", 1)[0]: p.split("=", 1)[1] for p in log.parts if "=" in p}
        key = (parts.get("task_id", "?"), int(parts.get("map_index", -1)))
        for m in RSS.finditer(log.read_text(errors="replace")):
            out[key] = max(out.get(key, 0.0), float(m.group(3)))
    return out


def _ledger(run_dir: Path) -> dict[str, int]:
    """step (without its shard/table suffix) -> rows processed (max of in/out, summed over tasks)."""
    engine = sa.create_engine(f"sqlite:///{run_dir / 'erp.db'}")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT step, rows_in, rows_out FROM seam_run_ledger WHERE status = 'success'"
        ).all()
    engine.dispose()
    totals: dict[str, int] = defaultdict(int)
    for step, rows_in, rows_out in rows:
        totals[step.split(":", 1)[0]] += max(rows_in or 0, rows_out or 0)
    return dict(totals)


def run_once(base: Path, work: Path, *, workers: int, series_per_shard: int, redis_db: int) -> dict[str, Any]:
    run_dir = work / f"w{workers}"
    run_dir.mkdir()
    for name in ("erp", "crm"):
        shutil.copy(base / f"{name}.db", run_dir / f"{name}.db")
    config = _config(run_dir, series_per_shard)
    admin_url = os.environ["SEAM_TEST_POSTGRES_URL"]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    meta_db = f"seam_scale_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{meta_db}"')
    broker = make_url(os.environ["SEAM_TEST_REDIS_URL"]).set(database=str(redis_db))
    subprocess.run(["redis-cli", "-n", str(redis_db), "flushdb"], check=False, capture_output=True)
    cluster = LocalCluster(
        run_dir / "airflow",
        meta_url=make_url(admin_url).set(database=meta_db).render_as_string(hide_password=False),
        broker_url=broker.render_as_string(hide_password=False),
        config=config,
        workers=workers,
        concurrency=1,
    )
    try:
        with cluster:
            sampler = CpuSampler(sessions=cluster.sessions(), commands=SERVERS)
            load_before = os.getloadavg()
            t0 = time.monotonic()
            with sampler:
                cluster.trigger("seam_nightly", str(NIGHT))
                state = cluster.wait("seam_nightly", str(NIGHT), timeout=4 * 3600)
            wall = time.monotonic() - t0
            load_after = os.getloadavg()
            tis = cluster.task_instances("seam_nightly")
        if state != "success":
            raise RuntimeError(f"the run ended {state}; component logs: {cluster.tail()}")
        rss = _peak_rss(run_dir / "airflow")
        rows = _ledger(run_dir)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{meta_db}" WITH (FORCE)')
        admin.dispose()
    steps: dict[str, dict[str, Any]] = {}
    for task_id in dict.fromkeys(t["task_id"] for t in tis):
        mine = [t for t in tis if t["task_id"] == task_id and t["start_date"] and t["end_date"]]
        if not mine:
            continue
        span = (max(t["end_date"] for t in mine) - min(t["start_date"] for t in mine)).total_seconds()
        peaks = [rss[(task_id, t["map_index"])] for t in mine if (task_id, t["map_index"]) in rss]
        n_rows = rows.get(task_id, 0)
        steps[task_id] = {
            "tasks": len(mine),
            "span_s": round(span, 1),
            "task_seconds": round(sum(t["duration"] or 0 for t in mine), 1),
            "rows": n_rows,
            "rows_per_s": round(n_rows / span, 1) if span > 0 and n_rows else None,
            "peak_rss_mb": max(peaks) if peaks else None,
            "hosts": sorted({t["hostname"] for t in mine}),
        }
    shutil.rmtree(run_dir / "lake", ignore_errors=True)
    return {
        "workers": workers,
        "wall_s": round(wall, 1),
        "load": [load_before, load_after],
        "steps": steps,
        "phase": _phase(tis),
        "forecast_cpu": _forecast_cpu(tis, sampler),
    }


def _forecast_cpu(tis: list[dict[str, Any]], sampler: CpuSampler) -> dict[str, float] | None:
    """CPU seconds each component (Airflow's processes, the workers with their tasks, the
    servers) and the whole machine used during the forecast step's span."""
    mine = [t for t in tis if t["task_id"] == "forecast" and t["start_date"] and t["end_date"]]
    if not mine:
        return None
    return sampler.used(min(t["start_date"] for t in mine), max(t["end_date"] for t in mine))


def _phase(tis: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The forecast and score tasks together (they wait for the plan only, so the scheduler runs
    them interleaved): the span from the first one's start to the last one's end, their summed
    duration, and how many score tasks started before the last forecast task ended (work a
    forecast step's own span then counts)."""
    mine = [t for t in tis if t["task_id"] in ("forecast", "score") and t["start_date"] and t["end_date"]]
    forecasts = [t for t in mine if t["task_id"] == "forecast"]
    if not forecasts:
        return None
    last_forecast = max(t["end_date"] for t in forecasts)
    return {
        "span_s": round(
            (max(t["end_date"] for t in mine) - min(t["start_date"] for t in mine)).total_seconds(), 1
        ),
        "task_seconds": round(sum(t["duration"] or 0 for t in mine), 1),
        "score_tasks_in_forecast_span": sum(
            1 for t in mine if t["task_id"] == "score" and t["start_date"] < last_forecast
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--days", type=int, default=180, help="days of history in the demo")
    ap.add_argument("--series-per-shard", type=int, default=500)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    args = ap.parse_args()
    for var in ("SEAM_TEST_POSTGRES_URL", "SEAM_TEST_REDIS_URL"):
        if not os.environ.get(var):
            sys.exit(f'{var} is not set: start the servers with: eval "$(scripts/services.sh)"')
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seam-scale-") as tmp:
        for size in args.sizes:
            work = Path(tmp) / f"x{size}"
            base = work / "base"
            base.mkdir(parents=True)
            demo = DemoSize(days=args.days, skus=BASE_SKUS * size, warehouses=BASE_WAREHOUSES, end_date=NIGHT)
            t0 = time.monotonic()
            generate(f"sqlite:///{base / 'erp.db'}", f"sqlite:///{base / 'crm.db'}", demo)
            print(f"x{size}: demo generated in {time.monotonic() - t0:.0f}s", flush=True)
            for i, workers in enumerate(args.workers):
                res = run_once(
                    base, work, workers=workers, series_per_shard=args.series_per_shard, redis_db=10 + i
                )
                res.update(size=size, series=demo.skus * demo.warehouses, days=args.days)
                results.append(res)
                print(json.dumps(res, default=str), flush=True)
                args.out.write_text(json.dumps(results, indent=2, default=str))
            shutil.rmtree(work, ignore_errors=True)
    args.out.with_suffix(".md").write_text(render(results, args))


def render(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "# Scale benchmark: the nightly run on Celery, one worker vs two",
        "",
        "Command: `.venv/bin/python benchmarks/scale_bench.py --sizes "
        + " ".join(map(str, args.sizes))
        + " --workers "
        + " ".join(map(str, args.workers))
        + f" --days {args.days} --series-per-shard {args.series_per_shard}`",
        "",
        "| size | series | workers | wall s | forecast span s | forecast tasks | score span s | "
        "extract rows/s | max task peak RSS MB | load avg before/after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        s = r["steps"]
        peak = max((v["peak_rss_mb"] or 0) for v in s.values())
        lines.append(
            f"| {r['size']}x | {r['series']:,} | {r['workers']} | {r['wall_s']} | "
            f"{s.get('forecast', {}).get('span_s')} | {s.get('forecast', {}).get('tasks')} | "
            f"{s.get('score', {}).get('span_s')} | {s.get('extract', {}).get('rows_per_s')} | {peak:.0f} | "
            f"{r['load'][0][0]:.1f} / {r['load'][1][0]:.1f} |"
        )
    lines += [
        "",
        "Per step (span s / summed task s / rows per s of span / peak RSS MB of the largest task):",
        "",
    ]
    steps = list(dict.fromkeys(k for r in results for k in r["steps"]))
    lines.append("| size | workers | " + " | ".join(steps) + " |")
    lines.append("|---|---:|" + "---|" * len(steps))
    for r in results:
        cells = []
        for k in steps:
            v = r["steps"].get(k)
            cells.append(
                ""
                if v is None
                else f"{v['span_s']} / {v['task_seconds']} / {v['rows_per_s']} / {v['peak_rss_mb']}"
            )
        lines.append(f"| {r['size']}x | {r['workers']} | " + " | ".join(cells) + " |")
    speedups = []
    for size in dict.fromkeys(r["size"] for r in results):
        by_w = {r["workers"]: r for r in results if r["size"] == size}
        one = by_w[1]["steps"].get("forecast", {}).get("span_s") if 1 in by_w else None
        for w in sorted(by_w):
            other = by_w[w]["steps"].get("forecast", {}).get("span_s")
            if one and other and w != 1:
                speedups.append(f"{size}x, {w} workers: {one / other:.2f}")
        if 1 in by_w and 2 in by_w:
            phases = [by_w[w].get("phase") or {} for w in (1, 2)]
            if all(p.get("span_s") for p in phases):
                speedups.append(
                    f"{size}x forecast and score together: {phases[0]['span_s'] / phases[1]['span_s']:.2f} "
                    f"(score tasks started within the forecast span: {phases[0]['score_tasks_in_forecast_span']} "
                    f"and {phases[1]['score_tasks_in_forecast_span']})"
                )
    lines += ["", "Forecast step, one worker's span / more workers' span: " + ", ".join(speedups)]
    lines += [
        "",
        "CPU seconds during the forecast step's span, per component (the machine's busy seconds "
        "of all cores, and its cores' seconds in the span):",
        "",
    ]
    for r in results:
        cpu = r.get("forecast_cpu")
        span = r["steps"].get("forecast", {}).get("span_s")
        if not cpu or not span:
            continue
        parts = ", ".join(f"{k} {v}" for k, v in cpu.items() if k != MACHINE)
        cores = os.cpu_count() or 1
        lines.append(
            f"- {r['size']}x, {r['workers']} worker(s): {parts}; machine {cpu.get(MACHINE)} of "
            f"{cores * span:.0f}"
        )
    spans = [
        (r["series"], r["steps"]["forecast"]["task_seconds"])
        for r in results
        if r["workers"] == min(args.workers) and "forecast" in r["steps"]
    ]
    if spans:
        per = [f"{n:,} series: {t / n * 1000:.1f} ms" for n, t in spans]
        lines += ["", "Forecast task seconds per series: " + ", ".join(per)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
