"""What the nightly DAG's tasks share: which night they run, fail-fast on permanent errors, the
night's first task and its final verdict.  Imported inside tasks only (no work at parse time)."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from pipelines.config import Config, load_config, results_url
from pipelines.errors import SeamError, StepSkipped
from pipelines.process import set_up_process
from pipelines.run_context import RunContext, night_of

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
FAILED = ("failed", "upstream_failed")


def config_file(default: Path) -> Path:
    """The config the DAG runs: `SEAM_CONFIG`, or `default`."""
    return Path(os.environ.get("SEAM_CONFIG", str(default)))


def night(context: Any, config: Path) -> tuple[Config, RunContext]:
    """(config, run context) of a running task: the night is the logical date in the business zone.

    A night before `schedule.start_date` is refused, never a silent no-op.  Sets the task's
    process up first (`pipelines.process`).
    """
    set_up_process()
    cfg = load_config(config)
    logical = context["logical_date"] or context["data_interval_start"]
    run_date = night_of(logical, cfg.timezone)
    if run_date < cfg.schedule.start_date:
        raise AirflowFailException(
            f"night {run_date} is before schedule.start_date {cfg.schedule.start_date} in {cfg.path}; "
            f"set schedule.start_date to {run_date} or earlier to run or backfill it"
        )
    return cfg, RunContext(run_date=run_date, run_id=context["run_id"])


def fail_fast(fn: F) -> F:
    """Permanent errors fail the task at once (no Airflow retry); transient ones are retried by
    Airflow with exponential backoff; a step skipped by a failed quality gate is skipped."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StepSkipped as err:
            raise AirflowSkipException(str(err)) from err
        except SeamError as err:
            if err.transient:
                raise
            raise AirflowFailException(f"{type(err).__name__}: {err}") from err

    return wrapper  # type: ignore[return-value]


def _sources(context: Any, cfg: Config) -> list[str] | None:
    """The run's `sources` param (None: every source); an unknown name is a config error."""
    wanted = list((context.get("params") or {}).get("sources") or [])
    unknown = sorted(set(wanted) - {s.name for s in cfg.sources})
    if unknown:
        raise AirflowFailException(
            f"the run's `sources` param names {unknown}, which the config does not define; "
            f"choose among {[s.name for s in cfg.sources]}"
        )
    return wanted or None


def chosen_tables(context: Any, config: Path) -> list[dict[str, str]]:
    """(source, table) of every configured table, or of the run's `sources`."""
    from pipelines.extract import table_list

    cfg = load_config(config)
    wanted = _sources(context, cfg)
    return [t for t in table_list(cfg) if wanted is None or t["source"] in wanted]


def chosen_datasets(context: Any, config: Path) -> list[str]:
    cfg = load_config(config)
    wanted = _sources(context, cfg)
    return sorted({t.dataset for s in cfg.sources if wanted is None or s.name in wanted for t in s.tables})


def begin_night(context: Any, config: Path) -> dict[str, list[str]]:
    """The first task: migrate the result databases, then take the night for this Airflow run."""
    from pipelines.db import make_engine
    from pipelines.state import Holder, acquire_night
    from pipelines.steps import run_migrate

    cfg, run = night(context, config)
    applied = run_migrate(cfg)
    engine = make_engine(results_url(cfg.source(cfg.results.ledger)), write=True)
    try:
        acquire_night(engine, run.run_date, Holder.here(run.run_id))
    finally:
        engine.dispose()
    return applied


def alert_incidents(context: Any, config: Path) -> int:
    """After the load: one message per channel of `notifications.incident_alerts` listing the
    night's new and escalated incidents (never the same incident twice)."""
    from pipelines.airflow.alerts import incident_sender
    from pipelines.steps import run_incident_alerts

    cfg, run = night(context, config)
    return run_incident_alerts(cfg, run, incident_sender(cfg))


def _task_states(context: Any) -> dict[str, str]:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    ti = context["ti"]
    states = RuntimeTaskInstance.get_task_states(dag_id=ti.dag_id, run_ids=[context["run_id"]])
    return {k: str(v) for k, v in (states.get(context["run_id"]) or {}).items()}


def _log_url(ti: Any, task: str) -> str:
    """The UI page of a task instance (`task` may end in `_<map index>`)."""
    from urllib.parse import quote

    from airflow.configuration import conf

    name, _, index = task.rpartition("_")
    mapped = f"/mapped/{index}" if name and index.isdigit() else ""
    task_id = name if mapped else task
    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return f"{base}/dags/{ti.dag_id}/runs/{quote(ti.run_id)}/tasks/{task_id}{mapped}"


def _ledger_problems(cfg: Config, run: RunContext, scope: Any) -> list[str]:
    """Release the night, then say in one line per step what did not succeed (from the ledger)."""
    from pipelines.airflow.alerts import problem_lines
    from pipelines.db import make_engine
    from pipelines.state import Holder, release_night

    engine = make_engine(results_url(cfg.source(cfg.results.ledger)), write=True)
    try:
        release_night(engine, run.run_date, Holder.here(run.run_id))
    finally:
        engine.dispose()
    lines = problem_lines(cfg, run.run_date, scope)
    return (
        lines
        if lines is not None
        else [f"no step of night {run.run_date} recorded anything in the run ledger"]
    )


def verdict(context: Any, config: Path) -> None:
    """The last task (runs when everything else is done): release the night, and when any task
    failed or any step of the night did not succeed, send ONE alert naming them and fail the run."""
    from pipelines.airflow.alerts import Alert, send_alert

    ti = context["ti"]
    failed = sorted(t for t, s in _task_states(context).items() if s in FAILED and t != ti.task_id)
    cfg = load_config(config)
    try:
        _, run = night(context, config)
    except AirflowFailException as err:
        label, lines = "?", [str(err)]
    else:
        from pipelines.state import NightScope

        sources = _sources(context, cfg)
        scope = NightScope(
            sources=tuple(sources) if sources else None,
            send_report=bool((context.get("params") or {}).get("send_report", True)),
        )
        label, lines = str(run.run_date), _ledger_problems(cfg, run, scope)
    # tasks that failed before recording a ledger step (a crash at start-up, a timeout)
    lines += [
        f"task {t} failed" for t in failed if not any(line.startswith(t.rsplit("_", 1)[0]) for line in lines)
    ]
    if not lines:
        log.info("night %s: every task succeeded", label)
        return
    alert = Alert(
        subject=f"[seam] night {label} failed ({ti.dag_id}, run {context['run_id']})",
        lines=tuple(lines),
        links=tuple((t, _log_url(ti, t)) for t in failed),
        footer=(
            f"Fix the cause, then re-run the failed tasks: airflow tasks clear {ti.dag_id} "
            f"-s {label} -e {label} --only-failed (or: seam run --date {label})"
        ),
    )
    sent = send_alert(cfg, alert)
    log.error("night %s failed; alert sent to %d channel(s):\n%s", label, sent, alert.text())
    raise AirflowFailException(f"night {label} failed: " + "; ".join(alert.lines))


def alert_run_timeout(context: Any, config: Path) -> None:
    """DAG-level failure callback: alert when the run failed without reaching its verdict (it
    went past `dagrun_timeout`); a run that reached the verdict has already alerted."""
    if context.get("reason") == "task_failure":
        return
    try:
        from pipelines.airflow.alerts import Alert, send_alert

        run = context.get("dag_run")
        run_id = getattr(run, "run_id", context.get("run_id"))
        send_alert(
            load_config(config),
            Alert(
                subject=f"[seam] nightly run {run_id} failed: {context.get('reason') or 'unknown reason'}",
                lines=(
                    "the run did not finish within its dagrun_timeout (6 hours) or could not schedule its tasks; "
                    "its unfinished tasks were stopped",
                ),
            ),
        )
    except Exception as err:  # a callback must never raise
        log.error("could not send the run-failure alert: %s", err)
