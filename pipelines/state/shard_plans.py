"""Shard plans: how many shards a night's forecasts and anomaly scores come in, and the panel
figures every forecasting shard shares (the business's week, the new products' peers, the
demand drivers' effects)."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa

from pipelines.errors import MissingInputError
from pipelines.lake import Lake

SHARDED_OUTPUTS = ("forecasts", "anomalies", "record_fits")
# shards of SKUs per partition of customers of the `score_records` step: each partition reads its
# batch of every score shard's exchange file, shards x partitions reads in all, so partitions are
# fewer than shards; a partition holds the window's lines of its customers, about as many as
# this many shards' own (on the 64x night's 128 shards, 30,000 lines a partition)
SHARDS_PER_PARTITION = 8


def partition_count(shards: int, slots: int | None = None) -> int:
    """The `score_records` step's partitions of customers in a plan of `shards` shards of SKUs:
    one per `SHARDS_PER_PARTITION` shards, rounded up to a multiple of the deployment's task
    `slots` (every slot gets a partition), never more than the shards."""
    parts = math.ceil(shards / SHARDS_PER_PARTITION)
    if slots:
        parts = slots * math.ceil(parts / slots)
    return max(1, min(parts, shards))


def output_shards(output: str, shards: int, partitions: int) -> int:
    """How many shards a sharded output has in a plan of `shards` shards of SKUs and `partitions`
    partitions of customers: the anomaly scores have the `score` step's shards (0 .. shards - 1,
    the metric series) and then the `score_records` step's partitions (shards .. shards +
    partitions - 1, the order lines)."""
    return shards + partitions if output == "anomalies" else shards


def write_shard_plan(
    lake: Lake,
    run_date: date,
    shards: int,
    assignment: list[list[Any]] | None = None,
    *,
    partitions: int | None = None,
) -> None:
    """Declare tonight's shard count for every sharded output (drops shards of an older plan), and
    which SKUs each shard holds (`assignment[k]`: the SKUs of shard k); `partitions`: of
    customers (default `partition_count(shards)`)."""
    if assignment is not None and len(assignment) != shards:
        raise ValueError(f"a plan of {shards} shards with an assignment of {len(assignment)}")
    parts = partition_count(shards) if partitions is None else partitions
    if not 1 <= parts <= max(shards, 1):
        raise ValueError(f"a plan of {shards} shards with {parts} partitions of customers")
    for output in SHARDED_OUTPUTS:
        lake.write_shard_plan(output, run_date, output_shards(output, shards, parts))
    if assignment is not None:
        lake.annotate_shard_plan("forecasts", run_date, "skus", assignment)


CUTOFFS_FILE = "cutoffs"


def write_record_cutoffs(
    lake: Lake, run_date: date, after: date, cutoffs: pd.DataFrame, partitions: int
) -> None:
    """Record each customer's cut-off day for the night's window starting after `after`
    (`pipelines.anomaly.records.HistoryCutoffs`: what the score shards need not send):
    `cutoffs` has `customer_id`, `cutoff` (days since 1970) and `customer_part` (the customer's
    partition of the `score_records` step, of `partitions`).  They go to a file of the night's
    exchange, cut by partition (a partition's task reads its own customers'), and the shard plan
    notes the window they are for."""
    lake.write_exchange_file(
        "record_fits", run_date, CUTOFFS_FILE, cutoffs, by="customer_part", parts=partitions
    )
    notes = {"after": after.isoformat(), "customers": len(cutoffs), "partitions": partitions}
    lake.annotate_shard_plan("record_fits", run_date, "cutoffs", notes)


def record_cutoffs(lake: Lake, run_date: date, after: date, part: int | None = None) -> pa.Table | None:
    """The night's cut-offs for a window starting after `after` (`customer_id`, `cutoff`), of
    every customer or of partition `part`'s; None when the plan recorded none or for another
    window (the config changed since)."""
    notes = lake.shard_plan_notes("record_fits", run_date).get("cutoffs")
    if not notes or notes.get("after") != after.isoformat() or "partitions" not in notes:
        return None
    return lake.read_exchange_file("record_fits", run_date, CUTOFFS_FILE, part)


def record_partitions(lake: Lake, run_date: date) -> int:
    """The night's partitions of customers (the `score_records` step's tasks); raises when the
    plan step has not run."""
    return shard_plan(lake, "anomalies", run_date) - shard_plan(lake, "forecasts", run_date)


def shard_assignment(lake: Lake, run_date: date) -> list[list[Any]] | None:
    """The SKUs of each shard of the night, or None for a plan recorded without them (its SKUs
    are sharded by hash: `pipelines.sharding.shard_of`)."""
    skus: list[list[Any]] | None = lake.shard_plan_notes("forecasts", run_date).get("skus")
    return skus


def shard_plan(lake: Lake, output: str, run_date: date) -> int:
    """The night's shard count of `output`; raises when the plan step has not run."""
    shards = lake.read_shard_plan(output, run_date)
    if shards is None:
        raise MissingInputError(
            f"no shard plan for {output} on {run_date}; run the plan step (or `seam forecast`) first"
        )
    return shards


def write_forecast_week(lake: Lake, run_date: date, week: dict[str, Any] | None) -> None:
    """Record the week of the whole night's panel (None: the frequency has no weekly cycle)."""
    lake.annotate_shard_plan("forecasts", run_date, "week", week)


def forecast_week(lake: Lake, run_date: date) -> dict[str, Any] | None:
    """The week of the night's panel; raises when the plan step has not recorded it."""
    notes = lake.shard_plan_notes("forecasts", run_date)
    if "week" not in notes:
        raise MissingInputError(
            f"the shard plan for forecasts on {run_date} has no panel week; run the plan step first"
        )
    week: dict[str, Any] | None = notes["week"]
    return week


def write_forecast_peers(lake: Lake, run_date: date, peers: dict[str, Any]) -> None:
    """Record the new products' peers gathered over the whole night's panel."""
    lake.annotate_shard_plan("forecasts", run_date, "peers", peers)


def forecast_peers(lake: Lake, run_date: date) -> dict[str, Any]:
    """The night's peers of new products; raises when the plan step has not recorded them."""
    notes = lake.shard_plan_notes("forecasts", run_date)
    if "peers" not in notes:
        raise MissingInputError(
            f"the shard plan for forecasts on {run_date} has no new-product peers; run the plan step first"
        )
    peers: dict[str, Any] = notes["peers"]
    return peers


def write_forecast_drivers(lake: Lake, run_date: date, prior: dict[str, Any] | None) -> None:
    """Record the demand drivers' effects fitted over the whole night's panel (None: no drivers)."""
    lake.annotate_shard_plan("forecasts", run_date, "drivers", prior)


def forecast_drivers(lake: Lake, run_date: date) -> dict[str, Any] | None:
    """The night's demand drivers' effects; raises when the plan step has not recorded them."""
    notes = lake.shard_plan_notes("forecasts", run_date)
    if "drivers" not in notes:
        raise MissingInputError(
            f"the shard plan for forecasts on {run_date} has no demand drivers' effects; run the plan step first"
        )
    prior: dict[str, Any] | None = notes["drivers"]
    return prior


def write_launches(lake: Lake, run_date: date, launches: list[list[str]]) -> None:
    """Record the night's product launches (`[sku, warehouse, launch date]`, see
    `pipelines.launches`), which every forecasting shard and the reconcile step give series."""
    lake.annotate_shard_plan("forecasts", run_date, "launches", launches)


def recorded_launches(lake: Lake, run_date: date) -> list[list[str]]:
    """The night's product launches the plan recorded (none for a plan recorded without them)."""
    launches: list[list[str]] = lake.shard_plan_notes("forecasts", run_date).get("launches") or []
    return launches
