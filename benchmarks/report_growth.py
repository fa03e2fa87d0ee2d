"""How much each night adds to the reports folder (report, e-mail-free) and to the GX project
(suites, every night's validation results, the one Data Docs site).

    .venv/bin/python benchmarks/report_growth.py --nights 10 --skus 60 --warehouses 3

Builds a demo, runs `seam run` for consecutive nights and prints the size of the reports folder
after each; writes `benchmarks/results/report_growth.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.demo import DemoSize, generate  # noqa: E402


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nights", type=int, default=10)
    ap.add_argument("--skus", type=int, default=60)
    ap.add_argument("--warehouses", type=int, default=3)
    ap.add_argument("--days", type=int, default=400)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "report_growth")
    args = ap.parse_args()
    last = date(2026, 11, 22)
    with tempfile.TemporaryDirectory(prefix="seam-growth-") as tmp:
        work = Path(tmp)
        erp, crm = f"sqlite:///{work / 'erp.db'}", f"sqlite:///{work / 'crm.db'}"
        generate(
            erp,
            crm,
            DemoSize(
                days=args.days, skus=args.skus, warehouses=args.warehouses, customers=200, end_date=last
            ),
        )
        raw = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
        raw["sources"]["erp"]["url"], raw["sources"]["crm"]["url"] = erp, crm
        raw["lake"], raw["report"] = str(work / "lake"), {"directory": str(work / "reports")}
        config = work / "seam.yml"
        config.write_text(yaml.safe_dump(raw))
        rows = []
        for i in range(args.nights):
            night = last - timedelta(days=args.nights - 1 - i)
            res = subprocess.run(
                [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config), "--date", str(night)],
                capture_output=True,
                text=True,
            )
            if res.returncode != 0:
                print(res.stderr[-3000:], file=sys.stderr)
                return 1
            reports = work / "reports"
            total = _size(reports)
            project = _size(reports / "gx-project")
            report = _size(reports / night.isoformat())
            grew = total - rows[-1]["total_bytes"] if rows else total
            rows.append(
                {
                    "night": str(night),
                    "total_bytes": total,
                    "added_bytes": grew,
                    "gx_project_bytes": project,
                    "night_folder_bytes": report,
                }
            )
            print(
                f"{night}: reports {total / 1e6:.2f} MB (+{grew / 1e3:.0f} kB; this night's report {report / 1e3:.0f} kB, GX project {project / 1e6:.2f} MB)",
                flush=True,
            )
    after_first = [r["added_bytes"] for r in rows[1:]]
    summary = {
        "command": " ".join(["benchmarks/report_growth.py", *sys.argv[1:]]),
        "nights": rows,
        "max_added_after_first_bytes": max(after_first) if after_first else None,
        "median_added_after_first_bytes": sorted(after_first)[len(after_first) // 2] if after_first else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(
        "| night | reports folder | added | that night's report | GX project |\n|---|---|---|---|---|\n"
        + "".join(
            f"| {r['night']} | {r['total_bytes'] / 1e6:.2f} MB | {r['added_bytes'] / 1e3:.0f} kB | "
            f"{r['night_folder_bytes'] / 1e3:.0f} kB | {r['gx_project_bytes'] / 1e6:.2f} MB |\n"
            for r in rows
        )
    )
    print(f"largest growth after the first night: {summary['max_added_after_first_bytes'] / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
