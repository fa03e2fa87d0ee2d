"""Score the archived forecasts against tonight's actuals and load `seam_forecast_accuracy`
(the figures are defined in `pipelines.forecasting.accuracy`)."""

from __future__ import annotations

import logging
from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.config import Config, results_url
from pipelines.db import make_engine
from pipelines.forecasting.accuracy import (
    FORECAST_COLUMNS,
    HIERARCHY_COLUMNS,
    accuracy_window,
    build_forecast_accuracy,
    build_hierarchy_accuracy,
)
from pipelines.lake import read_dataset
from pipelines.load.batch import LoadResult, load_batch
from pipelines.quality import blocked_datasets

log = logging.getLogger(__name__)


def _read_archive(
    engine: Engine, table: str, columns: tuple[str, ...], start: date, end: date
) -> pd.DataFrame:
    """Rows of an archive of forecasts whose target date is in [start, end], made before it: the
    dates as Timestamps, the figures (the columns after the four key columns) as floats."""
    query = sa.text(
        f"SELECT {', '.join(columns)} FROM {table} "
        "WHERE target_date >= :start AND target_date <= :end AND run_date < target_date"
    ).bindparams(sa.bindparam("start", type_=sa.Date), sa.bindparam("end", type_=sa.Date))
    with engine.connect() as conn:
        df = pd.read_sql(query, conn, params={"start": start, "end": end})
    for c in ("run_date", "target_date"):
        df[c] = pd.to_datetime(df[c])
    for c in columns[4:]:
        df[c] = df[c].astype(float)
    return df


def read_forecast_archive(engine: Engine, start: date, end: date) -> pd.DataFrame:
    """The archived forecasts (`seam_forecasts`) whose target date is in [start, end], made before it."""
    return _read_archive(engine, "seam_forecasts", tuple(FORECAST_COLUMNS), start, end)


def read_hierarchy_archive(engine: Engine, start: date, end: date) -> pd.DataFrame:
    """The archived reconciled forecasts of every level (`seam_forecasts_hierarchy`) whose target
    date is in [start, end], made before it."""
    return _read_archive(engine, "seam_forecasts_hierarchy", tuple(HIERARCHY_COLUMNS), start, end)


def accuracy_categories(cfg: Config, run_date: date) -> pd.DataFrame | None:
    """`sku, category` of the night's products, or None (with a warning) when there are none."""
    if cfg.has_dataset("products") and not blocked_datasets(cfg, run_date, ["products"]):
        return read_dataset(cfg, "products", run_date)[["sku", "category"]]
    log.warning("forecast accuracy for %s: no usable products dataset, so no category rows", run_date)
    return None


def load_forecast_accuracy(
    cfg: Config,
    run_date: date,
    actuals: pd.DataFrame,
    scale: pd.Series,
    node_scale: pd.Series,
    categories: pd.DataFrame | None,
) -> LoadResult | None:
    """Score the archived forecasts of the night's actuals window and load `seam_forecast_accuracy`.

    Reads `seam_forecasts` from the forecasts' results database (`results.forecasts`), so run it
    after that night's forecasts and actuals are loaded; `actuals`, `scale` and `node_scale` (the
    MASE scales of the series and of the hierarchy's nodes) as from
    `pipelines.forecasting.accuracy.night_actuals`, with the `categories` of `accuracy_categories`.
    The reconciled forecasts of every level (`seam_forecasts_hierarchy`) are scored too, as levels
    `hier_*`.  The night's rows are replaced in one transaction.  Weekly
    forecasts (`forecast.freq: W`) are not scored against daily actuals: None, with a warning.
    """
    if cfg.forecast.freq != "D":
        log.warning(
            "forecast accuracy for %s skipped: it scores daily forecasts against daily actuals, "
            "and forecast.freq is %r",
            run_date,
            cfg.forecast.freq,
        )
        return None
    start, end = accuracy_window(run_date, cfg.forecast.horizon)
    engine = make_engine(
        results_url(cfg.source(cfg.results.forecasts)), write=True, what=f"source {cfg.results.forecasts!r}"
    )
    try:
        archive = read_forecast_archive(engine, start, end)
        frame = build_forecast_accuracy(archive, actuals, None, categories, run_date=run_date, scale=scale)
        levels = read_hierarchy_archive(engine, start, end)
        if len(levels):  # the reconciled levels (hier_*), when the reconcile step ran
            scored = build_hierarchy_accuracy(
                levels, actuals, None, categories, run_date=run_date, node_scale=node_scale
            )
            frame = pd.concat([frame, scored], ignore_index=True) if len(frame) else scored
        result = load_batch(engine, "seam_forecast_accuracy", run_date, frame)
    finally:
        engine.dispose()
    log.info(
        "forecast accuracy run_date=%s window=%s..%s forecasts_in=%d rows_out=%d",
        run_date,
        start,
        end,
        len(archive),
        len(frame),
    )
    return result
