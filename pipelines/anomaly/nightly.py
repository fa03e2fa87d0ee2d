"""One night's scoring of one shard: metric series and order-line checks -> rows of
`seam_anomaly_scores`.

`score_night` is what the nightly `score` step calls once per shard: it builds each metric's series
from the data it is given, the events that explain days (holidays, promotions, stock-outs), the
days analysts labelled expected or false positive (left out of the baselines), scores the series
over the night's window and the order lines, and returns the rows. Reading the inputs and writing
the rows belong to the caller (`pipelines.steps.run_score`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from pipelines.anomaly.events import build_events
from pipelines.anomaly.feedback import baseline_exclusions
from pipelines.anomaly.metric import score
from pipelines.anomaly.options import ScoreOptions
from pipelines.anomaly.records import score_records
from pipelines.anomaly.rows import build_record_rows, build_score_rows
from pipelines.results import RESULT_TABLES
from pipelines.series import build_custom_series, build_metric_series

log = logging.getLogger(__name__)

Frame = Callable[[], pd.DataFrame | None]


@dataclass(frozen=True)
class MetricInput:
    """One metric to score: its name, the dataset rows it is built from, and its definition when it
    is one of the config's custom metrics (`pipelines.config.CustomMetric`)."""

    metric: str
    data: pd.DataFrame
    custom: Any = None


@dataclass(frozen=True)
class NightContext:
    """What explains and bounds the night's scores. The frames are read only when there is a
    series to score (`promotions`, `stockouts`, `labels` are callables returning the frame or
    None)."""

    run_date: date
    window_days: int
    history_days: int
    thresholds: dict[str, float]
    holidays: tuple[tuple[str, str], ...]
    promotions: Frame
    stockouts: Frame
    labels: Frame
    n_jobs: int = ScoreOptions.n_jobs


@dataclass(frozen=True)
class ScoredNight:
    """The rows of `seam_anomaly_scores` of one shard, and how many series and rows went in."""

    rows: pd.DataFrame
    series: int
    rows_in: int | None


def score_night(
    metrics: Sequence[MetricInput], order_lines: pd.DataFrame | None, ctx: NightContext
) -> ScoredNight:
    """Score the metric series and (when given) the order lines of one shard over the night's
    window (the `window_days` days up to `run_date`)."""
    window_start = pd.Timestamp(ctx.run_date) - pd.Timedelta(days=ctx.window_days)
    frames = [_series(m, ctx) for m in metrics]
    parts = []
    n_series = 0
    rows_in = None
    if frames:
        series = pd.concat(frames, ignore_index=True)
        n_series = int(series["unique_id"].nunique())
        events = build_events(
            series, holidays=ctx.holidays, promotions=ctx.promotions(), stockouts=ctx.stockouts()
        )
        scored = score(
            series[["unique_id", "ds", "y"]],
            events=events,
            feedback=feedback_points(ctx.labels(), series),
            options=ScoreOptions(only_after=window_start, end=pd.Timestamp(ctx.run_date), n_jobs=ctx.n_jobs),
        )
        parts.append(build_score_rows(scored, series, run_date=ctx.run_date, thresholds=ctx.thresholds))
        rows_in = len(series)
    if order_lines is not None:
        rec = score_records(order_lines)
        rec = rec[(rec["is_anomaly"]) & (pd.to_datetime(rec["order_date"]) > window_start)]
        parts.append(build_record_rows(rec, run_date=ctx.run_date, thresholds=ctx.thresholds))
    parts = [p for p in parts if len(p)]
    rows = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=list(RESULT_TABLES["seam_anomaly_scores"].columns))
    )
    return ScoredNight(rows=rows, series=n_series, rows_in=rows_in)


def _series(m: MetricInput, ctx: NightContext) -> pd.DataFrame:
    if m.custom is not None:
        return build_custom_series(m.custom, m.data, end=ctx.run_date, history_days=ctx.history_days)
    return build_metric_series(m.metric, m.data, end=ctx.run_date, history_days=ctx.history_days)


def feedback_points(labels: pd.DataFrame | None, series: pd.DataFrame) -> pd.DataFrame | None:
    """`unique_id, ds` of the days of `series` (with its `metric` and `entity` columns) that the
    night's analyst `labels` (`pipelines.load.feedback.read_all_labels`) mark expected or false
    positive: left out of the baselines. None when there are none."""
    if labels is None or labels.empty:
        return None
    days = baseline_exclusions(labels)
    keys = series[["unique_id", "metric", "entity"]].drop_duplicates("unique_id")
    points = days.merge(keys, on=["metric", "entity"])[["unique_id", "ds"]]
    log.info("score: %d labels, %d days left out of the baselines", len(labels), len(points))
    return points if len(points) else None
