"""Test fixture: make one kind of nightly step fail, then run the night through Airflow.

    python -m tests.e2e.faults extract:2026-11-22 load:2026-11-21 ...

For each `step:night`, patches that step's own function (nothing in `pipelines` knows about it),
runs the night with `dag.test()` in this process, restores the function, and prints one line
`RESULT <step> <night> <state> <failed tasks>`.  One process for all of them: Airflow starts once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from typing import Any

import pipelines.anomaly.nightly
import pipelines.forecasting.hierarchy
import pipelines.inputs
import pipelines.load.feedback
import pipelines.load.night
import pipelines.overrides
import pipelines.report
import pipelines.steps
from pipelines.errors import ConfigError, LoadError, QualityGateError

INJECTED = "injected failure"
STEPS = (
    "extract",
    "validate",
    "plan",
    "forecast",
    "reconcile",
    "adjust",
    "score",
    "load",
    "alert_incidents",
    "report",
    "send_report",
)


def _raise(error: Exception) -> Callable[..., Any]:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise error

    return fail


def _only(original: Callable[..., Any], error: Exception, value: str) -> Callable[..., Any]:
    """Fail only the calls that name `value` (one table, one dataset); the others run."""

    def maybe(*args: Any, **kwargs: Any) -> Any:
        if value in args or value in kwargs.values():
            raise error
        return original(*args, **kwargs)

    return maybe


def faults(step: str) -> list[tuple[Any, str, Callable[..., Any]]]:
    """(module, attribute, replacement) that make `step` fail with a permanent error (no Airflow
    retry, so nothing waits): one table's extraction, one dataset's validation, the plan, every
    forecast shard, the hierarchy's reconciliation, the planners' adjustments, every score shard, the load, the incident alerts (their
    incidents cannot be read), the report, the e-mail."""
    s = pipelines.steps
    return {
        "extract": [
            (s, "extract_table", _only(s.extract_table, ConfigError(f"{INJECTED} in extract"), "products"))
        ],
        "validate": [
            (
                s,
                "validate_dataset",
                _only(s.validate_dataset, QualityGateError(f"{INJECTED} in validate"), "customers"),
            )
        ],
        "plan": [(s, "plan_shards", _raise(ConfigError(f"{INJECTED} in plan")))],
        "forecast": [
            (pipelines.inputs, "build_demand_series", _raise(ConfigError(f"{INJECTED} in forecast")))
        ],
        "reconcile": [
            (
                pipelines.forecasting.hierarchy,
                "forecast_hierarchy_by_shard",
                _raise(ConfigError(f"{INJECTED} in reconcile")),
            )
        ],
        "adjust": [(pipelines.overrides, "NightAdjustment", _raise(ConfigError(f"{INJECTED} in adjust")))],
        "score": [(pipelines.anomaly.nightly, "score", _raise(ConfigError(f"{INJECTED} in score")))],
        "load": [(pipelines.load.night, "load_parts", _raise(LoadError(f"{INJECTED} in load")))],
        "alert_incidents": [
            (
                pipelines.load.feedback,
                "read_alertable",
                _raise(ConfigError(f"{INJECTED} in alert_incidents")),
            )
        ],
        "report": [(pipelines.report, "write_report", _raise(ConfigError(f"{INJECTED} in report")))],
        "send_report": [
            (pipelines.report, "send_message", _raise(ConfigError(f"{INJECTED} in send_report")))
        ],
    }[step]


def main(cases: list[str]) -> int:
    sys.path.insert(0, ".")
    from scripts.run_dag import ensure_pool, load_dag, run_night

    ensure_pool()
    dag = load_dag()
    for case in cases:
        step, night = case.split(":", 1)
        patches = faults(step)
        saved = [(m, a, getattr(m, a)) for m, a, _ in patches]
        for module, attr, replacement in patches:
            setattr(module, attr, replacement)
        try:
            state, failed, _ = run_night(dag, date.fromisoformat(night))
        finally:
            for module, attr, original in saved:
                setattr(module, attr, original)
        print(f"RESULT {step} {night} {state} {','.join(failed) or '-'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
