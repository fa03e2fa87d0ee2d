"""Run the nightly DAG for one logical date through Airflow (`dag.test()`) and say where the results are.

Used by `make demo`; expects the environment of `scripts/airflow-env.sh`.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--date", required=True, help="logical date YYYY-MM-DD")
    args = ap.parse_args()
    try:
        night = date.fromisoformat(args.date)
    except ValueError:
        print(f"run_dag: --date must be YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
        return 2
    import subprocess

    # extraction tasks run in this pool, which caps connections to the source databases
    subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow",
            "pools",
            "set",
            "source_databases",
            "4",
            "connections to the ERP and CRM databases",
        ],
        check=True,
        capture_output=True,
    )
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        for path, err in bag.import_errors.items():
            print(f"run_dag: cannot import {path}:\n{err}", file=sys.stderr)
        return 1
    dag = bag.dags["seam_nightly"]
    run = dag.test(logical_date=datetime(night.year, night.month, night.day, tzinfo=UTC))
    state = str(getattr(run, "state", "unknown"))
    from pipelines.config import load_config

    cfg = load_config(os.environ["SEAM_CONFIG"])
    report = cfg.report.directory / night.isoformat() / "report.html"
    print()
    print(f"seam_nightly {night}: {state}")
    print(f"  result tables: {', '.join(s.url or s.url_env or s.conn_id or '' for s in cfg.sources)}")
    print(f"  lake:          {cfg.lake}")
    print(f"  report:        {report if report.exists() else '(not written)'}")
    return 0 if state.endswith("success") and report.exists() else 1


if __name__ == "__main__":
    sys.exit(main())
