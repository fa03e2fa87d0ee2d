"""
### seam_nightly

Every night: snapshot the ERP and CRM tables into the Parquet lake, check that the data is
fresh and sound, forecast demand and score anomalies, reconcile the forecasts of every level of the
product hierarchy (total, category, ..., SKU x warehouse), apply the planners' overrides
(`seam_forecast_overrides`) to make the final forecast, write the results back into the
databases, and render and send the report (with tonight's overrides and their effect).

* **Config**: the YAML file named by the environment variable `SEAM_CONFIG`
  (default `config/demo.yml` next to this repository's `dags/` folder). Its `schedule:` key sets
  the cron, `start_date`, `catchup` and `max_active_runs`; `timezone:` the business day.
* **Which night**: the run's logical date in the config's time zone is the business day covered;
  with the daily data-interval schedule, the run for day D starts just after midnight of D+1. A
  night before `schedule.start_date` fails at once, naming the setting to change.
* **Re-run a night**: clear the run (or its failed tasks) in the UI, or
  `airflow dags test seam_nightly 2026-11-22`; every task is idempotent for its date.
* **Backfill**: `airflow backfill create --dag-id seam_nightly --from-date 2026-11-01 --to-date 2026-11-07`
  (nights run one after the other: `max_active_runs`).
* **A manual run** ("Trigger DAG w/ config") may name the `sources` to extract (default: all) and turn
  off the report's e-mail (`send_report`).
* **Without Airflow**: `seam run --config FILE --date 2026-11-22` runs the same functions.

The run is green only when every task did its job. A permanent error (a failed quality gate,
schema drift, bad configuration) fails its task at once; a lost connection is retried with
exponential backoff. Whatever failed, the load, the report and its e-mail still run with what
there is, and the report says first what went wrong; then the last task, `verdict`, sends one
alert listing every failed task (e-mail, Slack or Teams, from `notifications.alerts`) and fails
the run. The load emits the Airflow Assets of the result tables only when it succeeded.
After the load, `alert_incidents` sends the night's new and escalated anomaly incidents, one message
per channel of `notifications.incident_alerts`, never the same incident twice; the report follows
it, so it says when they did not go out.
"""

from __future__ import annotations

import functools
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, TriggerRule, dag, get_current_context, task

from pipelines.schedule import read_schedule

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo.yml"
SCHEDULE, TIMEZONE = read_schedule(os.environ.get("SEAM_CONFIG", str(DEFAULT_CONFIG)))
# Downstream DAGs can be scheduled on these: emitted when a night's results are in the databases.
RESULT_ASSETS = [
    Asset(name=f"seam.{table}", uri=f"seam://results/{table}", group="seam")
    for table in (
        "seam_forecasts",
        "seam_forecasts_hierarchy",
        "seam_anomaly_scores",
        "seam_data_quality_results",
        "seam_actuals",
        "seam_forecast_accuracy",
    )
]
REPORT_ASSET = Asset(name="seam.report", uri="seam://report/nightly", group="seam")


def _config() -> Path:
    from pipelines.airflow.tasks import config_file

    return config_file(DEFAULT_CONFIG)


def _night() -> tuple[Any, Any]:
    from pipelines.airflow.tasks import night

    return night(get_current_context(), _config())


def _fail_fast(fn: Any) -> Any:
    """Permanent errors fail at once; transient ones are retried by Airflow (see the docstring)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pipelines.airflow.tasks import fail_fast

        return fail_fast(fn)(*args, **kwargs)

    return wrapper


def _alert_on_timeout(context: Any) -> None:
    from pipelines.airflow.tasks import alert_run_timeout

    alert_run_timeout(context, _config())


@dag(
    dag_id="seam_nightly",
    schedule=None if SCHEDULE.cron is None else CronDataIntervalTimetable(SCHEDULE.cron, timezone=TIMEZONE),
    start_date=datetime.combine(SCHEDULE.start_date, datetime.min.time(), tzinfo=UTC),
    catchup=SCHEDULE.catchup,
    max_active_runs=SCHEDULE.max_active_runs,
    tags=["seam", "nightly"],
    doc_md=__doc__,
    default_args={
        "owner": "data-engineering",
        # Tasks exist for every logical date, so that a night before schedule.start_date fails
        # loudly in its first task instead of being a run without tasks.
        "start_date": datetime(1970, 1, 1, tzinfo=UTC),
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=2),
    },
    # The whole night must be done within 6 hours, or the run fails and the on-call engineer hears of it.
    # (A DeadlineAlert would be the Airflow 3 way, but `dag.test()` of Airflow 3.3.2 crashes on it.)
    dagrun_timeout=timedelta(hours=6),
    on_failure_callback=_alert_on_timeout,
    params={
        "sources": Param(
            [], type="array", items={"type": "string"}, description="Extract only these sources (empty: all)"
        ),
        "send_report": Param(
            True, type="boolean", description="E-mail the report to notifications.report_to"
        ),
    },
)
def seam_nightly() -> None:
    @task
    @_fail_fast
    def begin() -> dict[str, list[str]]:
        """Migrate the result databases once for the night, and take the night for this run."""
        from pipelines.airflow.tasks import begin_night

        return begin_night(get_current_context(), _config())

    @task
    @_fail_fast
    def list_tables() -> list[dict[str, str]]:
        """Every configured (source, table), or those of the run's `sources`: what extraction maps over."""
        from pipelines.airflow.tasks import chosen_tables

        return chosen_tables(get_current_context(), _config())

    # The pool caps concurrent connections to the source databases (create it with
    # `airflow pools set source_databases 4 "ERP and CRM connections"`).
    @task(map_index_template="{{ source }}.{{ table }}", pool="source_databases")
    @_fail_fast
    def extract(source: str, table: str) -> dict[str, Any]:
        from pipelines.steps import run_extract

        cfg, run = _night()
        (res,) = run_extract(cfg, run, source=source, table=table)
        return {"dataset": res.dataset, "rows": res.rows}

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def datasets() -> list[str]:
        """The run's datasets: each is validated even when another table failed to extract."""
        from pipelines.airflow.tasks import chosen_datasets

        return chosen_datasets(get_current_context(), _config())

    @task(map_index_template="{{ dataset }}")
    @_fail_fast
    def validate(dataset: str) -> int:
        from pipelines.steps import run_validate

        cfg, run = _night()
        return len(run_validate(cfg, run, dataset=dataset))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    @_fail_fast
    def plan() -> list[int]:
        """Tonight's shards of series (by SKU hash): what forecasting and scoring map over."""
        from pipelines.steps import run_plan

        return run_plan(*_night())

    @task(map_index_template="shard {{ shard }}")
    @_fail_fast
    def forecast(shard: int) -> str:
        from pipelines.steps import run_forecast

        cfg, run = _night()
        return str(run_forecast(cfg, run, shard=shard))

    @task
    @_fail_fast
    def adjust() -> dict[str, Any]:
        """The final forecast: the planners' overrides in force tonight (listed in the task log and
        the returned summary), inside the time fence last night's final forecast."""
        from pipelines.steps import run_adjust

        notes = run_adjust(*_night())
        return {
            "active": [
                f"#{o['override_id']} {o['sku']} x {o['warehouse'] or 'all'}" for o in notes["active"]
            ],
            "skipped": [f"#{o['override_id']}: {o['problem']}" for o in notes["skipped"]],
            "units_statistical": round(notes["units_statistical"], 1),
            "units_final": round(notes["units_final"], 1),
        }

    @task
    @_fail_fast
    def reconcile() -> dict[str, Any]:
        """Coherent forecasts of every level (total, category, category x warehouse, SKU, SKU x
        warehouse), each with its own bands, from all of tonight's forecast shards."""
        from pipelines.steps import run_reconcile

        notes = run_reconcile(*_night())
        return {"method": notes["method"], "series": notes["series"], "seconds": notes["seconds"]}

    @task(map_index_template="shard {{ shard }}")
    @_fail_fast
    def score(shard: int) -> str:
        from pipelines.steps import run_score

        cfg, run = _night()
        return str(run_score(cfg, run, shard=shard))

    @task
    @_fail_fast
    def partitions() -> list[int]:
        """Tonight's partitions of customers, fewer than the shards: what score_records maps over."""
        from pipelines.lake import Lake
        from pipelines.state import record_partitions

        cfg, run = _night()
        return list(range(record_partitions(Lake(cfg.lake), run.run_date)))

    @task(map_index_template="partition {{ part }}")
    @_fail_fast
    def score_records(part: int) -> str:
        """The order lines of one partition of customers, from what every score shard fitted."""
        from pipelines.steps import run_score_records

        cfg, run = _night()
        return str(run_score_records(cfg, run, part=part))

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=RESULT_ASSETS)
    @_fail_fast
    def load() -> int:
        """Write what the night produced back; its Assets are emitted only when this succeeds."""
        from pipelines.steps import run_load

        return sum(r.rows for r in run_load(*_night()))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    @_fail_fast
    def alert_incidents() -> int:
        """Send the night's new and escalated incidents to notifications.incident_alerts, once each."""
        from pipelines.airflow.tasks import alert_incidents as send

        return send(get_current_context(), _config())

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[REPORT_ASSET])
    @_fail_fast
    def report() -> str:
        """Render the report, whatever failed before: it says first what went wrong."""
        from pipelines.steps import run_report

        return str(run_report(*_night()))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    @_fail_fast
    def send_report() -> bool:
        """E-mail the report; retried on its own, it never undoes the steps that already loaded data."""
        from pipelines.steps import run_send_report

        if not get_current_context()["params"].get("send_report", True):
            return False
        return run_send_report(*_night())

    @task(trigger_rule=TriggerRule.ALL_DONE)
    @_fail_fast
    def prune() -> int:
        """Remove lake partitions, reports and Data Docs older than their retention."""
        from pipelines.steps import run_prune

        result = run_prune(*_night())
        return len(result.lake) + len(result.reports) + len(result.data_docs)

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
    def verdict() -> None:
        """Last: one alert naming every failed task, and the run fails, when anything failed."""
        from pipelines.airflow.tasks import verdict as judge

        judge(get_current_context(), _config())

    first = begin()
    tables = list_tables()
    first >> tables
    extracted = extract.expand_kwargs(tables)
    names = datasets()
    extracted >> names
    checked = validate.expand(dataset=names)
    shards = plan()
    checked >> shards
    forecasts = forecast.expand(shard=shards)
    adjusted = adjust()
    forecasts >> adjusted
    reconciled = reconcile()
    forecasts >> reconciled
    scored = score.expand(shard=shards)
    parts = partitions()
    shards >> parts
    records = score_records.expand(part=parts)
    scored >> records
    outputs = [adjusted, reconciled, scored, records]
    loaded = load()
    outputs >> loaded
    alerted = alert_incidents()
    loaded >> alerted
    rendered = report()
    [loaded, alerted] >> rendered  # the report says whether tonight's incident alerts went out
    sent = send_report()
    rendered >> sent
    pruned = prune()
    sent >> pruned
    final = verdict()
    [
        first,
        tables,
        extracted,
        names,
        checked,
        shards,
        forecasts,
        parts,
        *outputs,
        loaded,
        alerted,
        rendered,
        sent,
        pruned,
    ] >> final


seam_nightly()
