"""Celery settings for seam's workers on Airflow's CeleryExecutor.

Airflow's Celery worker forks every task from its own process, and preloads Airflow's modules
there once (`on_celery_import_modules` in the Celery provider) so that tasks do not import them
again.  seam's tasks spend most of their start-up importing what the steps need: pandas, pyarrow
and SQLAlchemy in every task, Great Expectations in `validate` (about 6 s), statsmodels and scipy
in `forecast`, `score` and `reconcile` (about 2 s).  `CELERY_CONFIG` is Airflow's default Celery
configuration with these modules added to Celery's `imports`, which the worker imports once, before
it forks its pool; each task then starts with them in memory.

Use it in every component of a CeleryExecutor deployment (docker-compose.yml does):

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=pipelines.airflow.celery.CELERY_CONFIG

Importing a library changes no result: the modules are the ones the tasks import anyway.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

#: Imported once per worker, before the worker forks its pool and its tasks.
PRELOAD = (
    "pipelines.steps",
    "pipelines.airflow.tasks",
    "pipelines.quality.gx",
    "great_expectations",
    "pipelines.forecasting.api",
    "pipelines.anomaly.nightly",
    "pipelines.report.render",
)

CELERY_CONFIG: dict[str, Any] = {
    **DEFAULT_CELERY_CONFIG,
    "imports": (*DEFAULT_CELERY_CONFIG.get("imports", ()), *PRELOAD),
}
