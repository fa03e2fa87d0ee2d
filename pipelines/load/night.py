"""One night's results, from the lake to the databases that receive them.

    night_results(cfg, d, spill) -> NightResults  every batch of the night: final forecasts, the
                                              forecast hierarchy, anomaly scores (per owning
                                              database), quality results, actuals (by shard,
                                              in the spill: `pipelines.load.accuracy`)
    load_night(cfg, d, night) -> [LoadResult]  each batch through `load_parts` (and tonight's
                                              incidents with the anomaly scores), then the
                                              forecasts' accuracy
    forecasts_checksum(lake, d)               the checksum of the night's statistical forecasts

The lake's outputs reach the databases in record batches of `BATCH_ROWS` rows, read again for each
pass of the load, so the load holds one batch of them, not the night.  The lake outputs of the
`adjust` and `reconcile` steps are loaded only when they were made from tonight's forecasts (their
notes carry the forecasts' checksum); otherwise the statistical forecast is loaded with `yhat_final`
NULL, and no hierarchy, each with a warning that says which command to run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from pipelines.config import Config, results_url
from pipelines.db import make_engine
from pipelines.inputs import flagged_scores, lines_by_shard
from pipelines.lake import Lake, Spill
from pipelines.load.accuracy import NightDemand, accuracy_categories, load_forecast_accuracy, spill_demand
from pipelines.load.batch import LoadResult, Parts, load_parts, parts_checksum
from pipelines.load.incidents import load_incidents
from pipelines.quality import blocked_datasets, read_quality

log = logging.getLogger(__name__)

#: The lake output of the `adjust` step (final forecasts) and of the `reconcile` step.
FINAL_OUTPUT = "final_forecasts"
HIERARCHY_OUTPUT = "forecast_hierarchy"


#: Rows of a lake output per record batch of the load.
BATCH_ROWS = 50_000


@dataclass
class NightResults:
    """The night's batches (database, table, its parts), and what scoring the forecasts needs."""

    batches: list[tuple[str, str, Parts]] = field(default_factory=list)
    demand: NightDemand | None = None
    rows: int = 0  # rows of the batches, counted as they load
    spill: Spill | None = None  # where the load's hashes of a large batch wait (open until it ends)


def forecasts_checksum(lake: Lake, d: date, spill: Spill | None = None) -> str | None:
    """`batch_checksum` of the night's statistical forecasts (all shards), read a batch at a time
    (the rows' hashes of a large night waiting in `spill`); None when the night has no complete
    forecasts.  The adjust and reconcile steps record it, and the load loads their outputs only
    when it still holds."""
    return parts_checksum(lake.iter_output("forecasts", d, batch_rows=BATCH_ROWS), spill)


def final_forecasts(lake: Lake, d: date, statistical: str | None) -> Parts | None:
    """The night's rows of `seam_forecasts`: the final forecast when the adjust step made it from
    tonight's forecasts (`statistical`: their checksum, None when there are none); the statistical
    one with no final forecast (NULL) when it did not."""
    if statistical is None:
        return None
    notes = lake.output_notes(FINAL_OUTPUT, d) or {}
    made = lake.complete_shards(FINAL_OUTPUT, d) is not None
    if made and notes.get("statistical_checksum") == statistical:
        return lambda: lake.iter_output(FINAL_OUTPUT, d, batch_rows=BATCH_ROWS)
    log.warning(
        "load %s: no final forecast made from tonight's forecasts (%s); loading the statistical "
        "forecast with yhat_final NULL; run `seam adjust --date %s` and load again",
        d,
        "it is older than them" if made else "the adjust step has not run",
        d,
    )
    return lambda: (
        part.assign(yhat_final=float("nan"), override_ids=None)
        for part in lake.iter_output("forecasts", d, batch_rows=BATCH_ROWS)
    )


def hierarchy_forecasts(lake: Lake, d: date, statistical: str | None) -> Parts | None:
    """The night's rows of `seam_forecasts_hierarchy` when the reconcile step made them from
    tonight's forecasts (`statistical`: their checksum; None, with a warning, when it did not)."""
    made = lake.complete_shards(HIERARCHY_OUTPUT, d) is not None
    if statistical is None or not made:
        if statistical is not None:
            log.warning("load %s: no forecast hierarchy; run `seam reconcile --date %s` and load again", d, d)
        return None
    notes = lake.output_notes(HIERARCHY_OUTPUT, d) or {}
    if notes.get("statistical_checksum") != statistical:
        log.warning(
            "load %s: the forecast hierarchy is older than tonight's forecasts and is not loaded; "
            "run `seam reconcile --date %s` and load again",
            d,
            d,
        )
        return None
    return lambda: lake.iter_output(HIERARCHY_OUTPUT, d, batch_rows=BATCH_ROWS)


def _owned(cfg: Config, scores: pd.DataFrame, src: str) -> pd.DataFrame:
    """The anomaly scores whose metric's results go to database `src`."""
    if not len(scores):
        return scores
    owner = scores["metric"].map({m: cfg.anomaly_database(m) for m in scores["metric"].unique()})
    return scores[owner == src]


def _scores_of(cfg: Config, lake: Lake, d: date, src: str) -> Parts:
    """The night's anomaly scores that go to database `src`."""
    return lambda: (
        _owned(cfg, part, src) for part in lake.iter_output("anomalies", d, batch_rows=BATCH_ROWS)
    )


def night_results(cfg: Config, d: date, spill: Spill) -> NightResults:
    """Every batch of night `d` that the lake holds, addressed to the database that receives it;
    the actuals, built a shard at a time, wait in `spill` (open until the load ends)."""
    lake = Lake(cfg.lake)
    night = NightResults(spill=spill)
    statistical = forecasts_checksum(lake, d, spill)
    forecasts = final_forecasts(lake, d, statistical)
    if forecasts is not None:
        night.batches.append((cfg.results.forecasts, "seam_forecasts", forecasts))
    hierarchy = hierarchy_forecasts(lake, d, statistical)
    if hierarchy is not None:
        night.batches.append((cfg.results.forecasts, "seam_forecasts_hierarchy", hierarchy))
    if lake.complete_shards("anomalies", d) is not None:
        for src in cfg.result_databases():
            night.batches.append((src, "seam_anomaly_scores", _scores_of(cfg, lake, d, src)))
    quality = read_quality(cfg, d)
    if len(quality):
        night.batches.append((cfg.results.ledger, "seam_data_quality_results", lambda: [quality]))
    if not blocked_datasets(cfg, d, ["order_lines"]):
        demand = spill_demand(
            lines_by_shard(cfg, d),
            spill,
            run_date=d,
            horizon=cfg.forecast.horizon,
            history_days=cfg.forecast.history_days,
            categories=accuracy_categories(cfg, d) if cfg.forecast.freq == "D" else None,
        )
        night.demand = demand
        night.batches.append((cfg.results.forecasts, "seam_actuals", demand.actuals))
    return night


def load_night(cfg: Config, d: date, night: NightResults) -> list[LoadResult]:
    """Load every batch of the night, exactly once each; then score and load the forecasts'
    accuracy (from the archive in the forecasts' database, for the target dates of tonight's
    actuals)."""
    results = []
    flagged: pd.DataFrame | None = None  # the night's flagged series, read once for every database
    for src, table, parts in night.batches:
        engine = make_engine(results_url(cfg.source(src)), write=True, what=f"source {src!r}")
        try:
            results.append(load_parts(engine, table, d, parts, spill=night.spill))
            night.rows += results[-1].rows
            if table == "seam_anomaly_scores":  # tonight's incidents, merged with the stored ones
                if flagged is None:
                    flagged = flagged_scores(Lake(cfg.lake), d)
                results.append(
                    load_incidents(
                        engine,
                        d,
                        _owned(cfg, flagged, src),
                        thresholds=cfg.anomaly.thresholds,
                        window_days=cfg.anomaly.window_days,
                    )
                )
        finally:
            engine.dispose()
    if night.demand is not None:
        scored = load_forecast_accuracy(cfg, d, night.demand)
        if scored is not None:
            results.append(scored)
    return results
