"""The result tables seam writes back, as typed SQLAlchemy table definitions.

These are the contract: the steps build frames against them, the loader checks batches against
them, and a test migrates every dialect and compares each reflected table (columns, types,
nullability, primary key) with them.  The DDL itself lives in `pipelines/sql/<dialect>/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

METADATA = sa.MetaData()
_TEXT = sa.Text()


def _table(name: str, *columns: sa.Column[Any]) -> sa.Table:
    return sa.Table(name, METADATA, *columns)


def _c(
    name: str, type_: sa.types.TypeEngine[Any], *, key: bool = False, null: bool = False
) -> sa.Column[Any]:
    return sa.Column(name, type_, primary_key=key, nullable=null and not key)


FORECASTS = _table(
    "seam_forecasts",
    _c("run_date", sa.Date(), key=True),
    _c("sku", sa.String(64), key=True),
    _c("warehouse", sa.String(64), key=True),
    _c("target_date", sa.Date(), key=True),
    _c("yhat", sa.Float()),
    _c("yhat_lo_80", sa.Float()),
    _c("yhat_hi_80", sa.Float()),
    _c("yhat_lo_95", sa.Float()),
    _c("yhat_hi_95", sa.Float()),
    _c("model", sa.String(128)),
    _c("model_version", sa.String(64)),
    _c("explanation", _TEXT, null=True),
    _c("fallback", sa.Boolean()),
    _c("training_snapshot_date", sa.Date()),
    # version 6: the final forecast (yhat with the planners' overrides in force) and their ids
    _c("yhat_final", sa.Float(), null=True),
    _c("override_ids", _TEXT, null=True),
)
# version 8: every level of the product x warehouse hierarchy, reconciled (children sum to parents);
# keys a level aggregates over are NULL, `series_key` names the node (the natural key needs no NULLs)
FORECASTS_HIERARCHY = _table(
    "seam_forecasts_hierarchy",
    _c("run_date", sa.Date(), key=True),
    _c("level", sa.String(32), key=True),
    _c("series_key", sa.String(255), key=True),
    _c("target_date", sa.Date(), key=True),
    _c("category", sa.String(128), null=True),
    _c("sku", sa.String(64), null=True),
    _c("warehouse", sa.String(64), null=True),
    _c("yhat", sa.Float()),
    _c("yhat_base", sa.Float()),
    _c("yhat_lo_80", sa.Float()),
    _c("yhat_hi_80", sa.Float()),
    _c("yhat_lo_95", sa.Float()),
    _c("yhat_hi_95", sa.Float()),
    _c("method", sa.String(64)),
    _c("model_version", sa.String(64)),
)
ANOMALY_SCORES = _table(
    "seam_anomaly_scores",
    _c("run_date", sa.Date(), key=True),
    _c("metric", sa.String(32), key=True),
    _c("entity", sa.String(128), key=True),
    _c("ds", sa.Date(), key=True),
    _c("value", sa.Float(), null=True),
    _c("expected", sa.Float(), null=True),
    _c("lower_bound", sa.Float(), null=True),
    _c("upper_bound", sa.Float(), null=True),
    _c("score", sa.Float()),
    _c("is_anomaly", sa.Boolean()),
    _c("severity", sa.String(16), null=True),
    _c("kind", sa.String(16), null=True),
    _c("reason", _TEXT, null=True),
    _c("model", sa.String(128)),
)
DATA_QUALITY_RESULTS = _table(
    "seam_data_quality_results",
    _c("run_date", sa.Date(), key=True),
    _c("dataset", sa.String(64), key=True),
    _c("check_name", sa.String(255), key=True),
    _c("severity", sa.String(8)),
    _c("success", sa.Boolean()),
    _c("observed_value", _TEXT, null=True),
    _c("expected", _TEXT, null=True),
    _c("unexpected_count", sa.BigInteger()),
    _c("unexpected_sample", _TEXT, null=True),
)
ACTUALS = _table(
    "seam_actuals",
    _c("sku", sa.String(64), key=True),
    _c("warehouse", sa.String(64), key=True),
    _c("ds", sa.Date(), key=True),
    _c("actual", sa.Float()),
)
FORECAST_ACCURACY = _table(
    "seam_forecast_accuracy",
    _c("run_date", sa.Date(), key=True),
    _c("level", sa.String(16), key=True),
    _c("entity", sa.String(255), key=True),
    _c("lag_days", sa.Integer(), key=True),
    _c("n_points", sa.BigInteger()),
    _c("mase_points", sa.BigInteger()),
    _c("sum_actual", sa.Float()),
    _c("sum_forecast", sa.Float()),
    _c("sum_abs_error", sa.Float()),
    _c("wape", sa.Float(), null=True),
    _c("bias", sa.Float(), null=True),
    _c("mase", sa.Float(), null=True),
    _c("coverage_80", sa.Float()),
    _c("coverage_95", sa.Float()),
    _c("first_run_date", sa.Date()),
    _c("last_run_date", sa.Date()),
)
ANOMALY_INCIDENTS = _table(
    "seam_anomaly_incidents",
    _c("incident_id", sa.String(32), key=True),
    _c("metric", sa.String(32)),
    _c("entity", sa.String(128)),
    _c("start_ds", sa.Date()),
    _c("end_ds", sa.Date()),
    _c("peak_ds", sa.Date()),
    _c("peak_score", sa.Float()),
    _c("severity", sa.String(16)),
    _c("kind", sa.String(16)),
    _c("status", sa.String(8)),
    _c("points", sa.Integer()),
    _c("first_night", sa.Date()),
    _c("last_night", sa.Date()),
    _c("reason", _TEXT, null=True),
)
# planners' input (written by planners and `seam override`, read by the nightly adjust step)
FORECAST_OVERRIDES = _table(
    "seam_forecast_overrides",
    _c("override_id", sa.Integer(), key=True),
    _c("sku", sa.String(64), null=True),
    _c("warehouse", sa.String(64), null=True),
    _c("start_date", sa.Date()),
    _c("end_date", sa.Date()),
    _c("value", sa.Float(), null=True),
    _c("relative_change", sa.Float(), null=True),
    _c("author", sa.String(128)),
    _c("reason", _TEXT),
    _c("created_at", sa.DateTime(timezone=True)),
    _c("expires_on", sa.Date(), null=True),
    _c("category", sa.String(128), null=True),  # version 9: aggregate overrides
)
ANOMALY_INCIDENT_ALERTS = _table(
    "seam_anomaly_incident_alerts",
    _c("incident_id", sa.String(32), key=True),
    _c("severity", sa.String(16), key=True),
    _c("alerted_night", sa.Date()),
    _c("channels", sa.String(255)),
)
# analysts' input (written by `seam anomaly label` or plain SQL, not through `load_batch`)
ANOMALY_FEEDBACK = _table(
    "seam_anomaly_feedback",
    _c("feedback_id", sa.Integer(), key=True),
    _c("incident_id", sa.String(32), null=True),
    _c("metric", sa.String(32), null=True),
    _c("entity", sa.String(128), null=True),
    _c("start_ds", sa.Date(), null=True),
    _c("end_ds", sa.Date(), null=True),
    _c("label", sa.String(32)),
    _c("author", sa.String(128)),
    _c("note", _TEXT, null=True),
    _c("created_at", sa.DateTime(timezone=True)),
    _c("valid_from", sa.Date(), null=True),
)
# run state (written by `pipelines.state`, not through `load_batch`)
RUN_LEDGER = _table(
    "seam_run_ledger",
    _c("run_date", sa.Date(), key=True),
    _c("step", sa.String(64), key=True),
    _c("attempt", sa.Integer(), key=True),
    _c("run_id", sa.String(255), null=True),
    _c("started_at", sa.DateTime(timezone=True)),
    _c("finished_at", sa.DateTime(timezone=True), null=True),
    _c("status", sa.String(16)),
    _c("rows_in", sa.BigInteger(), null=True),
    _c("rows_out", sa.BigInteger(), null=True),
    _c("checksum", sa.String(64), null=True),
    _c("error", _TEXT, null=True),
)
LOAD_BATCHES = _table(
    "seam_load_batches",
    _c("table_name", sa.String(64), key=True),
    _c("run_date", sa.Date(), key=True),
    _c("checksum", sa.String(64)),
    _c("row_count", sa.BigInteger()),
    _c("loaded_at", sa.DateTime(timezone=True)),
)
NIGHT_LOCKS = _table(
    "seam_night_locks",
    _c("run_date", sa.Date(), key=True),
    _c("holder", sa.String(255)),
    _c("host", sa.String(255)),
    _c("pid", sa.Integer()),
    _c("since", sa.DateTime(timezone=True)),
)


@dataclass(frozen=True)
class ResultTable:
    """A result table that `load_batch` writes: its definition, natural key and night column."""

    table: sa.Table
    night: str | None = "run_date"  # the column a batch replaces; None: upsert by key only

    @property
    def name(self) -> str:
        return str(self.table.name)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.columns)

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.primary_key.columns)


RESULT_TABLES: dict[str, ResultTable] = {
    t.name: t
    for t in (
        ResultTable(FORECASTS),
        ResultTable(FORECASTS_HIERARCHY),
        ResultTable(ANOMALY_SCORES),
        ResultTable(DATA_QUALITY_RESULTS),
        ResultTable(ACTUALS, night=None),
        ResultTable(FORECAST_ACCURACY),
        ResultTable(ANOMALY_INCIDENTS, night=None),
        ResultTable(ANOMALY_INCIDENT_ALERTS, night=None),
    )
}
DATE_COLUMNS = frozenset(
    c.name for t in METADATA.tables.values() for c in t.columns if isinstance(c.type, sa.Date)
)
