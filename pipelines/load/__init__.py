"""Load stage: write a night's results back into the databases, exactly once.

Public functions:
    load_batch(engine, table, run_date, frame) -> LoadResult   one result table's night, in one
                                                               transaction, replay-safe
    load_parts(engine, table, run_date, parts) -> LoadResult   the same for a batch given in parts
                                                               (one part in memory at a time)
    batch_checksum(frame, key) -> str                          the order-independent checksum
    parts_checksum(parts) -> str | None                        ... of the rows of every part
    spill_demand(lines, spill, ...) -> NightDemand             the night's actuals by shard, in a
                                                               spill (`Lake.spill`)
    load_forecast_accuracy(cfg, run_date, demand)              score archived forecasts (every
                                                               level of the hierarchy) a shard at
                                                               a time, load them
    night_results(cfg, run_date, spill) -> NightResults        the night's batches from the lake
    load_night(cfg, run_date, night) -> [LoadResult]           every batch, then the accuracy
                                                               (`pipelines.load.night`)

Contract: batches are complete nights of a table in `pipelines.results`' columns; the dialect's
bulk path is chosen by `pipelines.db`; `seam_load_batches` is written on the same transaction.
"""

from pipelines.load.accuracy import NightDemand, load_forecast_accuracy, read_forecast_archive, spill_demand
from pipelines.load.batch import (
    LoadResult,
    batch_checksum,
    load_batch,
    load_parts,
    no_checkpoint,
    parts_checksum,
)

__all__ = [
    "LoadResult",
    "NightDemand",
    "batch_checksum",
    "load_batch",
    "load_forecast_accuracy",
    "load_parts",
    "no_checkpoint",
    "parts_checksum",
    "read_forecast_archive",
    "spill_demand",
]
