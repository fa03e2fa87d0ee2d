"""One night's results, from the lake to the databases that receive them.

    night_results(cfg, d) -> NightResults     every batch of the night: final forecasts, the
                                              forecast hierarchy, anomaly scores (per owning
                                              database), quality results, actuals
    load_night(cfg, d, night) -> [LoadResult]  each batch through `load_batch` (and tonight's
                                              incidents with the anomaly scores), then the
                                              forecasts' accuracy

The lake outputs of the `adjust` and `reconcile` steps are loaded only when they were made from
tonight's forecasts (their notes carry the forecasts' checksum); otherwise the statistical
forecast is loaded with `yhat_final` NULL, and no hierarchy, each with a warning that says which
command to run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from pipelines.config import Config, results_url
from pipelines.db import make_engine
from pipelines.forecasting.accuracy import night_actuals
from pipelines.inputs import lines_by_shard
from pipelines.lake import Lake
from pipelines.load.accuracy import accuracy_categories, load_forecast_accuracy
from pipelines.load.batch import LoadResult, batch_checksum, load_batch
from pipelines.load.incidents import load_incidents
from pipelines.quality import blocked_datasets, read_quality
from pipelines.results import RESULT_TABLES

log = logging.getLogger(__name__)

#: The lake output of the `adjust` step (final forecasts) and of the `reconcile` step.
FINAL_OUTPUT = "final_forecasts"
HIERARCHY_OUTPUT = "forecast_hierarchy"


@dataclass
class NightResults:
    """The night's batches (database, table, rows), and what scoring the forecasts needs."""

    batches: list[tuple[str, str, pd.DataFrame]] = field(default_factory=list)
    demand: tuple[pd.DataFrame, pd.Series, pd.Series] | None = None
    categories: pd.DataFrame | None = None

    @property
    def rows(self) -> int:
        return sum(len(f) for _, _, f in self.batches)


def final_forecasts(lake: Lake, d: date) -> pd.DataFrame | None:
    """The night's rows of `seam_forecasts`: the final forecast when the adjust step made it from
    tonight's forecasts; the statistical one with no final forecast (NULL) when it did not."""
    forecasts = lake.read_output("forecasts", d)
    if forecasts is None:
        return None
    final = lake.read_output(FINAL_OUTPUT, d)
    notes = lake.output_notes(FINAL_OUTPUT, d) or {}
    if final is not None and notes.get("statistical_checksum") == batch_checksum(
        forecasts, RESULT_TABLES["seam_forecasts"].key
    ):
        return final
    log.warning(
        "load %s: no final forecast made from tonight's forecasts (%s); loading the statistical "
        "forecast with yhat_final NULL; run `seam adjust --date %s` and load again",
        d,
        "it is older than them" if final is not None else "the adjust step has not run",
        d,
    )
    return forecasts.assign(yhat_final=float("nan"), override_ids=None)


def hierarchy_forecasts(lake: Lake, d: date) -> pd.DataFrame | None:
    """The night's rows of `seam_forecasts_hierarchy` when the reconcile step made them from
    tonight's forecasts (None, with a warning, when it did not)."""
    forecasts = lake.read_output("forecasts", d)
    rows = lake.read_output(HIERARCHY_OUTPUT, d)
    if forecasts is None or rows is None:
        if forecasts is not None:
            log.warning("load %s: no forecast hierarchy; run `seam reconcile --date %s` and load again", d, d)
        return None
    notes = lake.output_notes(HIERARCHY_OUTPUT, d) or {}
    if notes.get("statistical_checksum") != batch_checksum(forecasts, RESULT_TABLES["seam_forecasts"].key):
        log.warning(
            "load %s: the forecast hierarchy is older than tonight's forecasts and is not loaded; "
            "run `seam reconcile --date %s` and load again",
            d,
            d,
        )
        return None
    return rows


def night_results(cfg: Config, d: date) -> NightResults:
    """Every batch of night `d` that the lake holds, addressed to the database that receives it."""
    lake = Lake(cfg.lake)
    night = NightResults()
    forecasts = final_forecasts(lake, d)
    if forecasts is not None:
        night.batches.append((cfg.results.forecasts, "seam_forecasts", forecasts))
    hierarchy = hierarchy_forecasts(lake, d)
    if hierarchy is not None:
        night.batches.append((cfg.results.forecasts, "seam_forecasts_hierarchy", hierarchy))
    scores = lake.read_output("anomalies", d)
    if scores is not None:
        source_of = scores["metric"].map({m: cfg.anomaly_database(m) for m in scores["metric"].unique()})
        for src in cfg.result_databases():
            night.batches.append((src, "seam_anomaly_scores", scores[source_of == src]))
    quality = read_quality(cfg, d)
    if len(quality):
        night.batches.append((cfg.results.ledger, "seam_data_quality_results", quality))
    if not blocked_datasets(cfg, d, ["order_lines"]):
        night.categories = accuracy_categories(cfg, d) if cfg.forecast.freq == "D" else None
        night.demand = night_actuals(
            lines_by_shard(cfg, d),
            run_date=d,
            horizon=cfg.forecast.horizon,
            history_days=cfg.forecast.history_days,
            categories=night.categories,
        )
        night.batches.append((cfg.results.forecasts, "seam_actuals", night.demand[0]))
    return night


def load_night(cfg: Config, d: date, night: NightResults) -> list[LoadResult]:
    """Load every batch of the night, exactly once each; then score and load the forecasts'
    accuracy (from the archive in the forecasts' database, for the target dates of tonight's
    actuals)."""
    results = []
    for src, table, frame in night.batches:
        engine = make_engine(results_url(cfg.source(src)), write=True, what=f"source {src!r}")
        try:
            results.append(load_batch(engine, table, d, frame))
            if table == "seam_anomaly_scores":  # tonight's incidents, merged with the stored ones
                results.append(
                    load_incidents(
                        engine,
                        d,
                        frame,
                        thresholds=cfg.anomaly.thresholds,
                        window_days=cfg.anomaly.window_days,
                    )
                )
        finally:
            engine.dispose()
    if night.demand is not None:
        scored = load_forecast_accuracy(cfg, d, *night.demand, night.categories)
        if scored is not None:
            results.append(scored)
    return results
