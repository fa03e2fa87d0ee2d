"""Shard plans: how many shards a night's forecasts and anomaly scores come in."""

from __future__ import annotations

from datetime import date

from pipelines.errors import MissingInputError
from pipelines.lake import Lake

SHARDED_OUTPUTS = ("forecasts", "anomalies")


def write_shard_plan(lake: Lake, run_date: date, shards: int) -> None:
    """Declare tonight's shard count for every sharded output (drops shards of an older plan)."""
    for output in SHARDED_OUTPUTS:
        lake.write_shard_plan(output, run_date, shards)


def shard_plan(lake: Lake, output: str, run_date: date) -> int:
    """The night's shard count of `output`; raises when the plan step has not run."""
    shards = lake.read_shard_plan(output, run_date)
    if shards is None:
        raise MissingInputError(
            f"no shard plan for {output} on {run_date}; run the plan step (or `seam forecast`) first"
        )
    return shards
