"""Per-task wall time of Airflow task instances, from their task logs.

Reads an Airflow logs folder (`<AIRFLOW_HOME>/logs`, e.g. the one a `scripts/local_cluster.py`
deployment or `tests/e2e/test_distributed.py` leaves under pytest's `--basetemp`) and prints, per
task id of a DAG, the number of first attempts and the median and range of the time from a task's
first log line (after the worker started it) to its last: what the task spent importing and working.

    .venv/bin/python benchmarks/task_spans.py /tmp/celt/test_celery_run_on_two_workers0/airflow/logs \
        [--dag seam_nightly] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import datetime
from pathlib import Path


def task_spans(logs: Path, dag: str) -> dict[str, list[float]]:
    """Seconds from first to last log line of every first attempt, per task id."""
    out: dict[str, list[float]] = {}
    for f in sorted((logs / f"dag_id={dag}").glob("run_id=*/task_id=*/**/attempt=1.log")):
        task = next(p.split("=", 1)[1] for p in f.parts if p.startswith("task_id="))
        stamps = [
            json.loads(line)["timestamp"] for line in f.read_text().splitlines() if line.startswith("{")
        ]
        if len(stamps) < 2:
            continue
        first, last = (datetime.fromisoformat(s.replace("Z", "+00:00")) for s in (stamps[0], stamps[-1]))
        out.setdefault(task, []).append((last - first).total_seconds())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logs", type=Path)
    ap.add_argument("--dag", default="seam_nightly")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    spans = task_spans(args.logs, args.dag)
    rows = {
        t: {"n": len(v), "median_s": round(statistics.median(v), 2), "min_s": min(v), "max_s": max(v)}
        for t, v in spans.items()
    }
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for t, r in rows.items():
        print(
            f"{t:16s} n={r['n']:3d} median {r['median_s']:6.2f} s  range {r['min_s']:.2f}-{r['max_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
