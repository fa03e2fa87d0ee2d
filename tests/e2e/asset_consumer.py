"""A downstream DAG of the kind a company schedules on seam's results: it runs when a night's
forecasts are loaded (the `seam.seam_forecasts` Asset the nightly load emits on success)."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, dag, task


@dag(
    dag_id="asset_consumer",
    schedule=[Asset(name="seam.seam_forecasts", uri="seam://results/seam_forecasts", group="seam")],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["test"],
    default_args={"owner": "replenishment", "retries": 0},
)
def asset_consumer() -> None:
    @task
    def replenish() -> str:
        return "planned from tonight's forecasts"

    replenish()


asset_consumer()
