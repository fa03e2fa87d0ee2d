"""Peak memory of extracting one night of the demo's order lines at two demo sizes, with the
in-memory sort's buffer (`pipelines.extract.cluster.BUFFER_BYTES`) at each of the given sizes.

The demos (60 days of history, `BASE_SKUS x size` SKUs x 5 warehouses, as `scale_bench.py` makes
them) are generated once into `--work`; each extraction then runs in a fresh process (started from
a small parent, so that its `ru_maxrss` is its own), `--reps` times, interleaved:

    .venv/bin/python benchmarks/extract_buffer.py --sizes 4 64 --buffers-mb 128 64 --reps 2 \
        --work /tmp/seam-buffer
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NIGHT = date(2026, 11, 22)
BASE_SKUS, BASE_WAREHOUSES = 200, 5


def _generate(work: Path, size: int) -> Path:
    folder = work / f"x{size}"
    if not (folder / "erp.db").exists():
        folder.mkdir(parents=True, exist_ok=True)
        # in a child process: the generator's memory must not count in the parent's children
        code = (
            "import sys; from datetime import date; from pipelines.demo import DemoSize, generate; "
            f"generate('sqlite:///{folder / 'erp.db'}', 'sqlite:///{folder / 'crm.db'}', "
            f"DemoSize(days=60, skus={BASE_SKUS * size}, warehouses={BASE_WAREHOUSES}, end_date=date(2026, 11, 22)))"
        )
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return folder


def _worker(folder: Path, buffer_mb: int, lake: Path) -> dict[str, object]:
    import pipelines.extract.cluster as cluster

    cluster.BUFFER_BYTES = buffer_mb * 1024 * 1024
    from pipelines.config import parse_config
    from pipelines.extract import extract_table

    raw = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
    raw["lake"] = str(lake)
    raw["sources"]["erp"]["url"] = f"sqlite:///{folder / 'erp.db'}"
    raw["sources"]["crm"]["url"] = f"sqlite:///{folder / 'crm.db'}"
    cfg = parse_config(raw, base=lake.parent)
    t0 = time.perf_counter()
    rows = extract_table(cfg, "erp", "order_lines", NIGHT).rows
    return {
        "rows": rows,
        "seconds": round(time.perf_counter() - t0, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 64])
    ap.add_argument("--buffers-mb", type=int, nargs="+", default=[128, 64])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/seam-buffer"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        folder, buffer_mb, lake = args.worker
        print(json.dumps(_worker(Path(folder), int(buffer_mb), Path(lake))))
        return
    folders = {size: _generate(args.work, size) for size in args.sizes}
    results = []
    for _ in range(args.reps):
        for size, folder in folders.items():
            for buffer_mb in args.buffers_mb:
                lake = args.work / "lake"
                shutil.rmtree(lake, ignore_errors=True)
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", str(folder), str(buffer_mb), str(lake)],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                )
                result = {
                    "size": size,
                    "buffer_mb": buffer_mb,
                    **json.loads(out.stdout.strip().splitlines()[-1]),
                }
                results.append(result)
                print(json.dumps(result), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
