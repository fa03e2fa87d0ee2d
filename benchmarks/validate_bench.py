"""Validation speed and memory against extraction of the same order lines (issue: quality gates).

Builds the demo at a larger scale on SQLite (or uses --erp-url/--crm-url), extracts the night and
validates `order_lines`, each step in its own subprocess so that peak RSS is the step's own, and
prints a markdown table: rows, seconds, rows/s, peak RSS, and validation time as a share of extraction.

    .venv/bin/python benchmarks/validate_bench.py --skus 500 --warehouses 5 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NIGHT = "2026-11-22"

STEP = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from datetime import date
from pipelines.config import load_config
cfg = load_config({config!r})
import pipelines.extract, pipelines.validate  # imports are not part of the timing
import great_expectations  # noqa
t0 = time.perf_counter()
if {step!r} == "extract":
    rows = pipelines.extract.extract_table(cfg, "erp", "order_lines", date.fromisoformat({night!r})).rows
else:
    rows = len(pipelines.validate.validate_dataset(cfg, "order_lines", date.fromisoformat({night!r})))
print(json.dumps({{"seconds": time.perf_counter() - t0, "rows": rows}}))
"""


def run_step(step: str, config: Path) -> dict:
    code = STEP.format(root=str(ROOT), config=str(config), step=step, night=NIGHT)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"{step} failed (status {status})")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_mb"] = usage.ru_maxrss / 1024
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skus", type=int, default=500)
    ap.add_argument("--warehouses", type=int, default=5)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import yaml

    from pipelines.demo import DemoSize, generate

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        t0 = time.perf_counter()
        generate(
            f"sqlite:///{t}/erp.db",
            f"sqlite:///{t}/crm.db",
            DemoSize(days=args.days, skus=args.skus, warehouses=args.warehouses, customers=1000),
        )
        print(f"generated in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        cfg = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
        cfg["lake"] = str(t / "lake")
        cfg["sources"]["erp"]["url"] = f"sqlite:///{t}/erp.db"
        cfg["sources"]["crm"]["url"] = f"sqlite:///{t}/crm.db"
        cfg["report"] = {"directory": str(t / "reports")}
        config = t / "seam.yml"
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        # the reference datasets that order_lines is checked against
        env_code = (
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); from datetime import date; "
            f"from pipelines.config import load_config; from pipelines.extract import extract_table; "
            f"cfg = load_config({str(config)!r}); "
            f"[extract_table(cfg, 'erp', t, date.fromisoformat({NIGHT!r})) "
            f"for t in ('products', 'customers', 'warehouses')]"
        )
        subprocess.run([sys.executable, "-c", env_code], check=True)
        runs: dict[str, list[dict]] = {"extract": [], "validate": []}
        for _ in range(args.reps):
            for step in ("extract", "validate"):
                runs[step].append(run_step(step, config))
    rows = runs["extract"][0]["rows"]
    med = {s: statistics.median(r["seconds"] for r in runs[s]) for s in runs}
    peak = {s: max(r["peak_mb"] for r in runs[s]) for s in runs}
    print(f"order lines: {rows:,}; load average {os.getloadavg()[0]:.1f}; reps {args.reps}")
    print("| step | median s | rows/s | peak RSS MB | runs (s) |")
    print("|---|---:|---:|---:|---|")
    for s in runs:
        times = ", ".join(f"{r['seconds']:.2f}" for r in runs[s])
        print(f"| {s} | {med[s]:.2f} | {rows / med[s]:,.0f} | {peak[s]:.0f} | {times} |")
    print(f"validation / extraction: {med['validate'] / med['extract']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
