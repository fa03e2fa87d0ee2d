"""Run the nightly DAG for one logical date through Airflow (`dag.test()`) and say what happened.

Used by `make demo`; expects the environment of `scripts/airflow-env.sh`.  Prints the run's true
state (and every failed task), where the results and the report are, and exits 0 only when the
run succeeded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any


def ensure_pool() -> None:
    """Extraction tasks run in this pool, which caps connections to the source databases."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "pools", "set", "source_databases", "4", "ERP and CRM connections"],
        check=True,
        capture_output=True,
    )


def load_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise SystemExit(
            "run_dag: cannot import the DAGs:\n" + "\n".join(map(str, bag.import_errors.values()))
        )
    return bag.dags["seam_nightly"]


def run_night(dag: Any, night: date) -> tuple[str, list[str], Path]:
    """(state, failed task ids, report path) of one run of the night through `dag.test()`."""
    from pipelines.config import load_config
    from pipelines.run_context import business_zone

    cfg = load_config(os.environ["SEAM_CONFIG"])
    # the night's local midnight in the business zone: the logical date Airflow schedules for it
    logical = datetime(night.year, night.month, night.day, tzinfo=business_zone(cfg.timezone))
    run = dag.test(logical_date=logical)
    state = str(getattr(run, "state", "unknown")).rsplit(".", 1)[-1].lower()
    failed = sorted(
        f"{ti.task_id}" + (f"[{ti.map_index}]" if ti.map_index >= 0 else "")
        for ti in run.get_task_instances()
        if str(ti.state).rsplit(".", 1)[-1].lower() in ("failed", "upstream_failed")
    )
    return state, failed, cfg.report.directory / night.isoformat() / "report.html"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--date", required=True, help="the night, YYYY-MM-DD")
    args = ap.parse_args(argv)
    try:
        night = date.fromisoformat(args.date)
    except ValueError:
        print(f"run_dag: --date must be YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
        return 2
    ensure_pool()
    state, failed, report = run_night(load_dag(), night)
    from pipelines.config import load_config

    cfg = load_config(os.environ["SEAM_CONFIG"])
    print()
    print(f"seam_nightly {night}: {state}")
    if failed:
        print(f"  failed tasks:  {', '.join(failed)}")
    print(f"  result tables: {', '.join(s.url or s.url_env or s.conn_id or '' for s in cfg.sources)}")
    print(f"  lake:          {cfg.lake}")
    print(f"  report:        {report if report.exists() else '(not written)'}")
    return 0 if state == "success" and report.exists() else 1


if __name__ == "__main__":
    sys.exit(main())
