"""Anomaly scoring of daily metric series and of order lines.

Public API:
    score: causal per-day scores, bands and reasons for many ``unique_id, ds, y`` series at once.
    build_incidents: group consecutive anomalous days of a series into one incident each.
    score_records: price, discount, quantity and duplicate anomalies on order lines.
"""

from pipelines.anomaly.errors import AnomalyInputError
from pipelines.anomaly.incidents import build_incidents
from pipelines.anomaly.metric import score
from pipelines.anomaly.model import REQUIRED_HISTORY_DAYS
from pipelines.anomaly.options import DEFAULT_SEVERITIES, DEFAULT_THRESHOLD, RecordOptions, ScoreOptions
from pipelines.anomaly.records import score_records

__all__ = [
    "DEFAULT_SEVERITIES",
    "DEFAULT_THRESHOLD",
    "REQUIRED_HISTORY_DAYS",
    "AnomalyInputError",
    "RecordOptions",
    "ScoreOptions",
    "build_incidents",
    "score",
    "score_records",
]
