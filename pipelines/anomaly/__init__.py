"""Anomaly scoring of metric series (daily, hourly or finer) and of order lines.

Public API:
    score: causal per-period scores, bands and reasons for many ``unique_id, ds, y`` series at once;
        sparse non-negative series (a few orders a year) are scored by a count model, points that
        analysts marked as expected can be left out of the baseline (``feedback``).
    build_incidents: group consecutive anomalous periods of a series into one incident each.
    score_records: price, discount, quantity and duplicate anomalies on order lines; the same in two
        halves for a night in shards: ``records.record_fits`` over shards of whole SKUs, then
        ``records.score_fitted`` over partitions of whole customers.
    required_history: history an incremental run needs before its first scored period.
    score_night, score_night_records (``pipelines.anomaly.nightly``): one shard of the nightly
        ``score`` step and one partition of its ``score_records`` step, to rows of
        ``seam_anomaly_scores``.
    DailyTotals (``pipelines.anomaly.daily``): a metric's aggregate per entity and day, gathered one
        shard of a dataset at a time.

The names below are imported when first used: the scorers pull in scipy (about a second), which
steps that only read labels or incidents (`feedback`, `incidents`) do not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.lazy import lazy_exports

if TYPE_CHECKING:
    from pipelines.anomaly.cadence import required_history
    from pipelines.anomaly.errors import AnomalyInputError
    from pipelines.anomaly.incidents import build_incidents
    from pipelines.anomaly.metric import score
    from pipelines.anomaly.model import REQUIRED_HISTORY_DAYS
    from pipelines.anomaly.options import DEFAULT_SEVERITIES, DEFAULT_THRESHOLD, RecordOptions, ScoreOptions
    from pipelines.anomaly.records import score_records

_EXPORTS = {
    "DEFAULT_SEVERITIES": "options",
    "DEFAULT_THRESHOLD": "options",
    "REQUIRED_HISTORY_DAYS": "model",
    "AnomalyInputError": "errors",
    "RecordOptions": "options",
    "ScoreOptions": "options",
    "build_incidents": "incidents",
    "required_history": "cadence",
    "score": "metric",
    "score_records": "records",
}

__all__ = [
    "DEFAULT_SEVERITIES",
    "DEFAULT_THRESHOLD",
    "REQUIRED_HISTORY_DAYS",
    "AnomalyInputError",
    "RecordOptions",
    "ScoreOptions",
    "build_incidents",
    "required_history",
    "score",
    "score_records",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
