"""Validation speed and memory against extraction of the same order lines (issue: quality gates).

Builds the demo at a larger scale on SQLite and (with SEAM_TEST_POSTGRES_URL set) on PostgreSQL,
then, interleaved, `--reps` times: extracts the night's order lines from SQLite, extracts them from
PostgreSQL, and validates `order_lines` (GX suite plus seam's checks) from the lake.  Each step runs
in its own subprocess; peak RSS is the subprocess's own VmHWM (imports excluded from the seconds,
not from the RSS).  With `--big-skus`, a second, larger demo (SQLite) is extracted once and validated
`--reps` times, to show that validation memory does not grow with the table.

    eval "$(scripts/services.sh)"
    .venv/bin/python benchmarks/validate_bench.py --skus 500 --warehouses 5 --big-skus 1000 --reps 3
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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NIGHT = "2026-11-22"

STEP = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from datetime import date
from pipelines.config import load_config
cfg = load_config({config!r})
import pipelines.extract, pipelines.quality, pipelines.quality.gate  # imports are not part of the timing
import great_expectations  # noqa
t0 = time.perf_counter()
if {step!r}.startswith("extract"):
    rows = pipelines.extract.extract_table(cfg, "erp", "order_lines", date.fromisoformat({night!r})).rows
else:
    night = date.fromisoformat({night!r})
    pipelines.quality.validate_dataset(cfg, "order_lines", night)
    rows = pipelines.quality.gate.dataset_source(cfg, "order_lines", night).num_rows
seconds = time.perf_counter() - t0
# VmHWM is this process's own peak (ru_maxrss would include the benchmark's memory at fork)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({{"seconds": seconds, "rows": rows, "peak_mb": int(hwm) / 1024}}))
"""


def run_step(step: str, config: Path) -> dict:
    """One measured step in a fresh interpreter: seconds, rows and peak RSS (MB)."""
    code = STEP.format(root=str(ROOT), config=str(config), step=step, night=NIGHT)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{step} failed (status {proc.returncode})")
    return dict(json.loads(out.strip().splitlines()[-1]))


def build(t: Path, skus: int, warehouses: int, days: int, pg: dict[str, str] | None) -> dict[str, Path]:
    """Demo databases and one config per source kind; the reference tables extracted into each lake."""
    import yaml

    from pipelines.demo import DemoSize, generate

    size = DemoSize(days=days, skus=skus, warehouses=warehouses, customers=1000)
    urls = {"sqlite": (f"sqlite:///{t}/erp.db", f"sqlite:///{t}/crm.db")}
    if pg:
        urls["postgresql"] = (pg["erp"], pg["crm"])
    configs = {}
    for kind, (erp, crm) in urls.items():
        t0 = time.perf_counter()
        generate(erp, crm, size)
        print(f"{kind}: generated in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        cfg = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
        cfg["lake"] = str(t / f"lake_{kind}")
        for name, url in (("erp", erp), ("crm", crm)):
            # URLs with passwords go through the environment, never the config file
            var = f"SEAM_VBENCH_{kind.upper()}_{name.upper()}_URL"
            os.environ[var] = url
            cfg["sources"][name].pop("url", None)
            cfg["sources"][name]["url_env"] = var
        cfg["report"] = {"directory": str(t / f"reports_{kind}")}
        config = t / f"seam_{kind}.yml"
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        # the reference datasets that order_lines is checked against
        code = (
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); from datetime import date; "
            f"from pipelines.config import load_config; from pipelines.extract import extract_table; "
            f"cfg = load_config({str(config)!r}); "
            f"[extract_table(cfg, 'erp', t, date.fromisoformat({NIGHT!r})) "
            f"for t in ('products', 'customers', 'warehouses', 'order_lines')]"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
        configs[kind] = config
    return configs


def pg_databases() -> tuple[dict[str, str], object] | None:
    url = os.environ.get("SEAM_TEST_POSTGRES_URL")
    if not url:
        print("SEAM_TEST_POSTGRES_URL not set: no PostgreSQL extraction", file=sys.stderr)
        return None
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    names = {k: f"seam_vbench_{k}_{uuid.uuid4().hex[:6]}" for k in ("erp", "crm")}
    with admin.connect() as conn:
        for n in names.values():
            conn.exec_driver_sql(f'CREATE DATABASE "{n}"')
    return {
        k: make_url(url).set(database=n).render_as_string(hide_password=False) for k, n in names.items()
    }, (
        admin,
        names,
    )


def drop_pg(handle: object) -> None:
    admin, names = handle  # type: ignore[misc]
    with admin.connect() as conn:
        for n in names.values():
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')
    admin.dispose()


def table(title: str, runs: dict[str, list[dict]]) -> None:
    print(f"\n{title}\n")
    print("| step | rows | median s | rows/s | peak RSS MB (max) | runs (s) |")
    print("|---|---:|---:|---:|---:|---|")
    for s, rs in runs.items():
        med = statistics.median(r["seconds"] for r in rs)
        rows = rs[0]["rows"]
        times = ", ".join(f"{r['seconds']:.2f}" for r in rs)
        print(
            f"| {s} | {rows:,} | {med:.2f} | {rows / med:,.0f} | {max(r['peak_mb'] for r in rs):.0f} | {times} |"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skus", type=int, default=500)
    ap.add_argument("--warehouses", type=int, default=5)
    ap.add_argument("--big-skus", type=int, default=0, help="second, larger demo for validation memory")
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"uptime before: {os.getloadavg()}", file=sys.stderr)
    pg = pg_databases()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            (t / "main").mkdir()
            configs = build(t / "main", args.skus, args.warehouses, args.days, pg[0] if pg else None)
            steps = {"extract sqlite": configs["sqlite"], "validate": configs["sqlite"]}
            if "postgresql" in configs:
                steps = {
                    "extract sqlite": configs["sqlite"],
                    "extract postgresql": configs["postgresql"],
                    "validate": configs["sqlite"],
                }
            runs: dict[str, list[dict]] = {s: [] for s in steps}
            for _ in range(args.reps):
                for step, config in steps.items():
                    runs[step].append(run_step(step, config))
            big: dict[str, list[dict]] = {}
            if args.big_skus:
                (t / "big").mkdir()
                cfg_big = build(t / "big", args.big_skus, args.warehouses, args.days, None)["sqlite"]
                big["validate (larger)"] = [run_step("validate", cfg_big) for _ in range(args.reps)]
    finally:
        if pg:
            drop_pg(pg[1])
    load = os.getloadavg()
    table(f"demo --skus {args.skus} --warehouses {args.warehouses}; reps {args.reps}", runs)
    med = {s: statistics.median(r["seconds"] for r in rs) for s, rs in runs.items()}
    for s in med:
        if s.startswith("extract"):
            print(f"validation / {s}: {med['validate'] / med[s]:.2f}")
    if big:
        table(f"larger demo --skus {args.big_skus}", big)
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
