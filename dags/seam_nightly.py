"""
### seam_nightly

Every night: snapshot the ERP and CRM tables into the Parquet lake, check that the data is
fresh and sound, forecast demand and score anomalies, write the results back into the
databases, and render the report.

* **Config**: the YAML file named by the environment variable `SEAM_CONFIG`
  (default `config/demo.yml` next to this repository's `dags/` folder).
* **Which night**: the run's logical date (in UTC) is the business day covered; with the daily
  data-interval schedule, the run for day D starts just after midnight of D+1.
* **Re-run a night**: clear the run (or one task) in the UI, or
  `airflow dags test seam_nightly 2026-11-22`; every task is idempotent for its date.
* **Backfill**: `airflow backfill create --dag-id seam_nightly --from-date 2026-11-01 --to-date 2026-11-07`.
* **Without Airflow**: `seam run --config FILE --date 2026-11-22` runs the same functions.

A failed data-quality gate (`error` severity) or a broken schema fails the task without retries,
naming dataset, check, observed and expected values; lost connections are retried with
exponential backoff.
"""

from __future__ import annotations

import functools
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import (
    CronDataIntervalTimetable,
    TriggerRule,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo.yml"
_SCHEDULE = os.environ.get("SEAM_NIGHTLY_SCHEDULE", "0 0 * * *")


def _night() -> tuple[Any, Any]:
    """(config, run context) of the running task: config from SEAM_CONFIG, night = logical date."""
    from pipelines.config import load_config
    from pipelines.run_context import RunContext, night_of

    ctx = get_current_context()
    cfg = load_config(os.environ.get("SEAM_CONFIG", str(DEFAULT_CONFIG)))
    logical = ctx["logical_date"] or ctx["data_interval_start"]
    night = night_of(logical, cfg.timezone)
    run = RunContext(run_date=night, attempt=ctx["ti"].try_number, run_id=ctx["run_id"])
    return cfg, run


def _alert_on_failure(context: Any) -> None:
    """on_failure_callback: e-mail the on-call engineers (DAG, task, date, error, log URL)."""
    try:
        from pipelines.notify import send_failure_alert

        from pipelines.config import load_config

        ti = context["ti"]
        send_failure_alert(
            load_config(os.environ.get("SEAM_CONFIG", str(DEFAULT_CONFIG))),
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            logical_date=str(context.get("logical_date")),
            error=str(context.get("exception")),
            log_url=getattr(ti, "log_url", None),
        )
    except Exception as err:  # an alert must never mask the task's own failure
        print(f"seam: could not send the failure alert: {err}")


def _alert_on_run_failure(context: Any) -> None:
    """DAG-level on_failure_callback: the run failed or went past its `dagrun_timeout`."""
    try:
        from pipelines.notify import send_failure_alert

        from pipelines.config import load_config

        run = context.get("dag_run")
        send_failure_alert(
            load_config(os.environ.get("SEAM_CONFIG", str(DEFAULT_CONFIG))),
            dag_id="seam_nightly",
            task_id="(whole run)",
            logical_date=str(context.get("logical_date")),
            error=str(context.get("reason") or "the run failed or exceeded its 6-hour dagrun_timeout"),
            log_url=getattr(run, "run_id", None),
        )
    except Exception as err:  # an alert must never raise
        print(f"seam: could not send the run-failure alert: {err}")


def _no_retry_on_data_errors(fn: Any) -> Any:
    """Data errors cannot be fixed by retrying: fail at once with the message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pipelines.errors import ConfigError, DataError, StepSkipped

        try:
            return fn(*args, **kwargs)
        except StepSkipped as err:
            raise AirflowSkipException(str(err)) from err
        except (DataError, ConfigError) as err:
            raise AirflowFailException(f"{type(err).__name__}: {err}") from err

    return wrapper


@dag(
    dag_id="seam_nightly",
    # SEAM_NIGHTLY_SCHEDULE: a cron expression for the nightly interval, or "none" for manual runs only.
    schedule=None if _SCHEDULE.lower() == "none" else CronDataIntervalTimetable(_SCHEDULE, timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["seam", "nightly"],
    doc_md=__doc__,
    default_args={
        "owner": "data-engineering",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": _alert_on_failure,
    },
    # The whole night must be done within 6 hours, or the run fails and the on-call engineer hears of it.
    # (A DeadlineAlert would be the Airflow 3 way, but `dag.test()` of Airflow 3.3.2 crashes on it.)
    dagrun_timeout=timedelta(hours=6),
    on_failure_callback=_alert_on_run_failure,
)
def seam_nightly() -> None:
    @task
    @_no_retry_on_data_errors
    def migrate() -> dict[str, list[str]]:
        """Create or upgrade the result tables once per night, before any step writes to them."""
        from pipelines.config import load_config
        from pipelines.steps import run_migrate

        return run_migrate(load_config(os.environ.get("SEAM_CONFIG", str(DEFAULT_CONFIG))))

    @task
    def list_tables() -> list[dict[str, str]]:
        """Every configured (source, table): what extraction maps over."""
        from pipelines.config import load_config
        from pipelines.extract import table_list

        return table_list(load_config(os.environ.get("SEAM_CONFIG", str(DEFAULT_CONFIG))))

    # The pool caps concurrent connections to the source databases (create it with
    # `airflow pools set source_databases 4 "ERP and CRM connections"`).
    @task(map_index_template="{{ source }}.{{ table }}", pool="source_databases")
    @_no_retry_on_data_errors
    def extract(source: str, table: str) -> dict[str, Any]:
        from pipelines.steps import run_extract

        cfg, run = _night()
        (res,) = run_extract(cfg, run, source=source, table=table)
        return {"dataset": res.dataset, "rows": res.rows}

    @task
    def datasets(extracted: list[dict[str, Any]]) -> list[str]:
        return sorted({e["dataset"] for e in extracted})

    @task(map_index_template="{{ dataset }}")
    @_no_retry_on_data_errors
    def validate(dataset: str) -> int:
        from pipelines.steps import run_validate

        cfg, run = _night()
        return len(run_validate(cfg, run, dataset=dataset))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    @_no_retry_on_data_errors
    def plan() -> list[int]:
        """Tonight's shards of series (by SKU hash): what forecasting and scoring map over."""
        from pipelines.steps import run_plan

        return run_plan(*_night())

    @task(map_index_template="shard {{ shard }}")
    @_no_retry_on_data_errors
    def forecast(shard: int) -> str:
        from pipelines.steps import run_forecast

        cfg, run = _night()
        return str(run_forecast(cfg, run, shard=shard))

    @task(map_index_template="shard {{ shard }}")
    @_no_retry_on_data_errors
    def score(shard: int) -> str:
        from pipelines.steps import run_score

        cfg, run = _night()
        return str(run_score(cfg, run, shard=shard))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    @_no_retry_on_data_errors
    def load() -> int:
        from pipelines.steps import run_load

        return sum(r.rows for r in run_load(*_night()))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    @_no_retry_on_data_errors
    def report() -> str:
        from pipelines.steps import run_report

        return str(run_report(*_night()))

    @task
    @_no_retry_on_data_errors
    def send_report() -> bool:
        """E-mail the report; retried on its own, it never fails the steps that already loaded data."""
        from pipelines.steps import run_send_report

        return run_send_report(*_night())

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
    def quality_gate() -> None:
        """Fail the run, after the report is out, if any dataset failed an `error` check tonight."""
        from pipelines.quality import blocked_datasets

        cfg, run = _night()
        blocked = blocked_datasets(
            cfg, run.run_date, sorted({t.dataset for s in cfg.sources for t in s.tables})
        )
        if blocked:
            raise AirflowFailException(
                "data-quality gate failed: " + "; ".join(r for rs in blocked.values() for r in rs)
            )

    tables = list_tables()
    migrate() >> tables
    extracted = extract.expand_kwargs(tables)
    checked = validate.expand(dataset=datasets(extracted))
    shards = plan()
    checked >> shards
    outputs = [forecast.expand(shard=shards), score.expand(shard=shards)]
    loaded = load()
    outputs >> loaded
    rendered = report()
    loaded >> rendered
    rendered >> [send_report(), quality_gate()]


seam_nightly()
