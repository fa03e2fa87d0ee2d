"""Split a night's series into shards by a stable hash of the SKU (all warehouses of a SKU together).

Each shard reads only its SKUs from the lake (the filter is pushed down to the Parquet files), so the
memory of a forecasting or scoring task depends on the shard size, not on the size of the company.
"""

from __future__ import annotations

import math
import zlib
from datetime import date
from typing import Any

import pyarrow.compute as pc

from pipelines.config import Config
from pipelines.lake import Lake, read_source_nights
from pipelines.state import write_shard_plan


def shard_of(key: object, shards: int) -> int:
    """Stable shard number of a key (crc32 of its text: the same on every machine and Python run)."""
    return zlib.crc32(str(key).encode()) % shards


def night_skus(cfg: Config, run_date: date) -> list[Any]:
    """Distinct SKUs of the night's order lines, of every source (reads one column only)."""
    values: set[Any] = set()
    for part in read_source_nights(cfg, "order_lines", run_date, columns=["sku"]):
        for table in part.nights:
            values.update(pc.unique(table.column("sku")).to_pylist())
    return sorted((v for v in values if v is not None), key=str)


def plan_shards(cfg: Config, run_date: date) -> int:
    """How many shards tonight: `scale.shards`, or enough for `scale.series_per_shard` series each."""
    if cfg.scale.shards:
        shards = cfg.scale.shards
    else:
        n_series = 0  # per source, its largest night; summed over the sources (an upper bound)
        for part in read_source_nights(cfg, "order_lines", run_date, columns=["sku", "warehouse"]):
            n_series += max(t.group_by(["sku", "warehouse"]).aggregate([]).num_rows for t in part.nights)
        shards = max(1, math.ceil(n_series / cfg.scale.series_per_shard))
    write_shard_plan(Lake(cfg.lake), run_date, shards)
    return shards


def sku_filter(
    cfg: Config, run_date: date, shard: int, shards: int
) -> list[tuple[str, str, list[Any]]] | None:
    """pyarrow filter selecting the shard's SKUs; None means the shard has no SKU at all."""
    mine = [s for s in night_skus(cfg, run_date) if shard_of(s, shards) == shard]
    return [("sku", "in", mine)] if mine else None
