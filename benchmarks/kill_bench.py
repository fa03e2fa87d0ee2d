"""Kill `seam run` at random moments of a night and check that the next run repairs it exactly.

    .venv/bin/python benchmarks/kill_bench.py --kills 20 --seed 1 [--postgres-mariadb]

A clean night is run once on one copy of the demo (the reference).  On a second copy, `seam run`
is started again and again and SIGKILLed after a random delay, uniform over the clean night's
duration; after each kill a `seam run` completes the night.  After every repair the result tables
(every row, every column but load times), every lake partition and the night's ledger status are
compared with the reference, and leftover staging folders and tables are counted.  Prints one line
per kill and a summary, and writes `benchmarks/results/kill.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.config import load_config, source_url  # noqa: E402
from pipelines.demo import DemoSize, generate  # noqa: E402
from pipelines.state import read_ledger, summarize  # noqa: E402

NIGHT = "2026-11-22"
SIZE = DemoSize(days=200, skus=6, warehouses=2, customers=40, seed=7)
TABLES = (
    "seam_forecasts",
    "seam_anomaly_scores",
    "seam_data_quality_results",
    "seam_actuals",
    "seam_forecast_accuracy",
)


def _environment(base: Path, erp: str, crm: str) -> Path:
    generate(erp, crm, SIZE)
    raw = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
    raw["lake"], raw["report"] = str(base / "lake"), {"directory": str(base / "reports")}
    raw["sources"]["erp"]["url"], raw["sources"]["crm"]["url"] = erp, crm
    raw["forecast"]["horizon"] = 14
    raw["anomaly"]["history_days"] = 200
    base.mkdir(parents=True, exist_ok=True)
    path = base / "seam.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _seam_run(config: Path, kill_after: float | None = None) -> tuple[int, float]:
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config), "--date", NIGHT]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.returncode not in (0, -signal.SIGKILL):
        print(proc.stderr.read()[-2000:] if proc.stderr else "", file=sys.stderr)
    return proc.returncode, time.perf_counter() - t0


def _results(config: Path) -> dict[str, pd.DataFrame]:
    cfg = load_config(config)
    out = {}
    for name in ("erp", "crm"):
        engine = sa.create_engine(source_url(cfg.source(name)))
        with engine.connect() as conn:
            have = set(sa.inspect(conn).get_table_names())
            for t in TABLES:
                if t in have:
                    df = pd.read_sql(sa.text(f"SELECT * FROM {t}"), conn)
                    out[f"{name}.{t}"] = df.sort_values(list(df.columns)).reset_index(drop=True)
            out[f"{name}.staging"] = pd.DataFrame({"t": sorted(t for t in have if t.startswith("seam_stg_"))})
        engine.dispose()
    return out


def _lake(config: Path) -> dict[str, pd.DataFrame]:
    lake = load_config(config).lake
    out = {}
    for f in sorted(lake.rglob("*.parquet")):
        df = pd.read_parquet(f)
        out[str(f.relative_to(lake))] = (
            df.sort_values(list(df.columns)).reset_index(drop=True) if len(df) else df
        )
    return out


def _same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> list[str]:
    diffs = sorted(set(a) ^ set(b))
    for k in sorted(set(a) & set(b)):
        try:
            pd.testing.assert_frame_equal(a[k], b[k], check_dtype=False)
        except AssertionError:
            diffs.append(k)
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp") / f"seam-kill-{uuid.uuid4().hex[:6]}")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kill")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    ref = _environment(
        args.work / "ref",
        f"sqlite:///{args.work / 'ref' / 'erp.db'}",
        f"sqlite:///{args.work / 'ref' / 'crm.db'}",
    )
    target = _environment(
        args.work / "kill",
        f"sqlite:///{args.work / 'kill' / 'erp.db'}",
        f"sqlite:///{args.work / 'kill' / 'crm.db'}",
    )
    code, clean_seconds = _seam_run(ref)
    assert code == 0, "the reference night failed"
    want_results, want_lake = _results(ref), _lake(ref)
    print(f"clean night: {clean_seconds:.1f}s", flush=True)
    rows = []
    for k in range(args.kills):
        delay = rng.uniform(0.05, 1.0) * clean_seconds
        killed, _ = _seam_run(target, kill_after=delay)
        repaired, seconds = _seam_run(target)
        cfg = load_config(target)
        ledger, locked = read_ledger(cfg, nights=[pd.Timestamp(NIGHT).date()])
        status = summarize(cfg, ledger, locked)
        leftovers = [str(p) for p in cfg.lake.rglob("*") if p.name.startswith((".tmp-", ".old-"))]
        diffs = _same(want_results, _results(target)) + _same(want_lake, _lake(target))
        ok = repaired == 0 and not diffs and not leftovers and set(status["status"]) == {"success"}
        rows.append(
            {
                "kill": k + 1,
                "after_seconds": round(delay, 1),
                "was_killed": killed == -signal.SIGKILL,
                "repair_exit": repaired,
                "repair_seconds": round(seconds, 1),
                "differences": diffs,
                "leftovers": leftovers,
                "ok": ok,
            }
        )
        print(
            f"kill {k + 1:2d} after {delay:5.1f}s ({'killed' if killed == -signal.SIGKILL else 'finished first'}): "
            f"repair exit {repaired}, {'identical' if ok else f'DIFFERENT {diffs} {leftovers}'}",
            flush=True,
        )
    summary = {
        "command": " ".join(["benchmarks/kill_bench.py", *sys.argv[1:]]),
        "clean_seconds": round(clean_seconds, 1),
        "kills": len(rows),
        "killed_mid_run": sum(r["was_killed"] for r in rows),
        "identical_after_repair": sum(r["ok"] for r in rows),
        "load_average": os.getloadavg()[0],
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(
        "| kill | after (s) | killed mid-run | repair exit | identical to the clean night |\n|---|---|---|---|---|\n"
        + "".join(
            f"| {r['kill']} | {r['after_seconds']} | {r['was_killed']} | {r['repair_exit']} | {r['ok']} |\n"
            for r in rows
        )
    )
    print(
        f"{summary['identical_after_repair']} of {summary['kills']} killed nights were identical to the clean "
        f"night after one more run ({summary['killed_mid_run']} were killed mid-run)"
    )
    return 0 if summary["identical_after_repair"] == summary["kills"] else 1


if __name__ == "__main__":
    sys.exit(main())
