"""The result tables seam writes back: names, columns, natural keys and the column a night replaces.

The DDL lives in `sql/<dialect>/`; this is the contract the steps build frames against and the
loader checks batches against.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResultTable:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    night: str | None = "run_date"  # the column a batch replaces; None: upsert by key only


RESULT_TABLES: dict[str, ResultTable] = {
    t.name: t
    for t in (
        ResultTable(
            "seam_forecasts",
            (
                "run_date",
                "sku",
                "warehouse",
                "target_date",
                "yhat",
                "yhat_lo_80",
                "yhat_hi_80",
                "yhat_lo_95",
                "yhat_hi_95",
                "model",
                "model_version",
                "explanation",
                "fallback",
                "training_snapshot_date",
            ),
            ("run_date", "sku", "warehouse", "target_date"),
        ),
        ResultTable(
            "seam_anomaly_scores",
            (
                "run_date",
                "metric",
                "entity",
                "ds",
                "value",
                "expected",
                "lower_bound",
                "upper_bound",
                "score",
                "is_anomaly",
                "severity",
                "kind",
                "reason",
                "model",
            ),
            ("run_date", "metric", "entity", "ds"),
        ),
        ResultTable(
            "seam_data_quality_results",
            (
                "run_date",
                "dataset",
                "check_name",
                "severity",
                "success",
                "observed_value",
                "expected",
                "unexpected_count",
                "unexpected_sample",
            ),
            ("run_date", "dataset", "check_name"),
        ),
        ResultTable("seam_actuals", ("sku", "warehouse", "ds", "actual"), ("sku", "warehouse", "ds"), None),
        ResultTable(
            "seam_forecast_accuracy",
            (
                "run_date",
                "level",
                "entity",
                "lag_days",
                "n_points",
                "mase_points",
                "sum_actual",
                "sum_forecast",
                "sum_abs_error",
                "wape",
                "bias",
                "mase",
                "coverage_80",
                "coverage_95",
                "first_run_date",
                "last_run_date",
            ),
            ("run_date", "level", "entity", "lag_days"),
        ),
    )
}
DATE_COLUMNS = frozenset(
    {"run_date", "target_date", "training_snapshot_date", "ds", "first_run_date", "last_run_date"}
)
