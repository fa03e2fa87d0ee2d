"""One night's scoring of one shard: metric series and order-line checks -> rows of
`seam_anomaly_scores`.

`score_night` is what the nightly `score` step calls once per shard: it builds each metric's series
from the data it is given, the events that explain days (holidays, promotions, stock-outs), the
days analysts labelled expected or false positive (left out of the baselines), scores the series
over the night's window and returns the rows.  `score_night_records` is what the `score_records`
step calls once per partition of customers: it scores their order lines, fitted per SKU by the
`score` shards, and returns the rows of the anomalies in the night's window. Reading the inputs and writing
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
from pipelines.anomaly.records import night_fits, score_fitted
from pipelines.anomaly.rows import build_record_rows, build_score_rows
from pipelines.results import RESULT_TABLES
from pipelines.series import build_custom_series, build_metric_series, series_from_daily

log = logging.getLogger(__name__)

Frame = Callable[[], pd.DataFrame | None]


@dataclass(frozen=True)
class MetricInput:
    """One metric to score: its name, the dataset rows it is built from (or, for a metric over a
    dataset read a shard at a time, its `daily` aggregate per entity and day:
    `pipelines.anomaly.daily.DailyTotals.finish`), and its definition when it is one of the
    config's custom metrics (`pipelines.config.CustomMetric`)."""

    metric: str
    data: pd.DataFrame | None = None
    custom: Any = None
    daily: tuple[pd.DataFrame, Any, pd.DatetimeIndex | None] | None = None


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


def score_night(metrics: Sequence[MetricInput], ctx: NightContext) -> ScoredNight:
    """Score the metric series of one shard over the night's window (the `window_days` days up to
    `run_date`)."""
    window_start = window_start_of(ctx)
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
    return ScoredNight(rows=_rows(parts), series=n_series, rows_in=rows_in)


def score_night_records(fits: pd.DataFrame, pairs: Sequence[pd.DataFrame], ctx: NightContext) -> ScoredNight:
    """Score the order lines of one partition of customers (`fits`: every line of each, fitted by
    `pipelines.anomaly.records.record_fits` in the shards of SKUs; `pairs`: every shard's repeat-pair
    counts) and keep the anomalies ordered within the night's window.

    Every shard sends each customer's last lines before the window (`night_fits`): of those, the
    last `window` of all the shards' are all a line's history can hold, so the partition keeps
    only them (the same scores, from a number of lines that does not grow with the shards)."""
    start = window_start_of(ctx)
    rec = score_fitted(night_fits(fits, after=start), pairs, only_after=start)
    rec = rec[rec["is_anomaly"]]
    rows = build_record_rows(rec, run_date=ctx.run_date, thresholds=ctx.thresholds)
    return ScoredNight(rows=_rows([rows]), series=0, rows_in=len(fits))


def window_start_of(ctx: NightContext) -> pd.Timestamp:
    """The night's window starts after this day."""
    return pd.Timestamp(ctx.run_date) - pd.Timedelta(days=ctx.window_days)


def _rows(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if parts:
        return pd.concat(parts, ignore_index=True)
    return pd.DataFrame(columns=list(RESULT_TABLES["seam_anomaly_scores"].columns))


def _series(m: MetricInput, ctx: NightContext) -> pd.DataFrame:
    if m.daily is not None:
        name = m.custom.name if m.custom is not None else m.metric
        return series_from_daily(name, *m.daily, end=ctx.run_date, history_days=ctx.history_days)
    if m.data is None:
        raise ValueError(f"metric {m.metric!r}: neither its rows nor its daily aggregate")
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
