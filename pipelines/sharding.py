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
from pipelines.errors import DataError
from pipelines.lake import output_path, partition_path, partitions, read_arrow, read_manifest, write_plan

SHARDED_OUTPUTS = ("forecasts", "anomalies")


def shard_of(key: object, shards: int) -> int:
    """Stable shard number of a key (crc32 of its text: the same on every machine and Python run)."""
    return zlib.crc32(str(key).encode()) % shards


def _order_line_files(cfg: Config, run_date: date) -> list[Any]:
    source, spec = cfg.provider("order_lines")
    if spec.mode == "snapshot":
        return [partition_path(cfg.lake, source.name, spec.name, run_date)]
    return [
        partition_path(cfg.lake, source.name, spec.name, d)
        for d in partitions(cfg.lake, source.name, spec.name)
        if d <= run_date
    ]


def night_skus(cfg: Config, run_date: date) -> list[Any]:
    """Distinct SKUs of the night's order lines (reads one column only)."""
    values: set[Any] = set()
    for folder in _order_line_files(cfg, run_date):
        if not folder.is_dir():
            raise DataError(
                f"no order-lines snapshot for {run_date}; run `seam extract --date {run_date}` first"
            )
        values.update(pc.unique(read_arrow(folder, columns=["sku"]).column("sku")).to_pylist())
    return sorted((v for v in values if v is not None), key=str)


def plan_shards(cfg: Config, run_date: date) -> int:
    """How many shards tonight: `scale.shards`, or enough for `scale.series_per_shard` series each."""
    if cfg.scale.shards:
        shards = cfg.scale.shards
    else:
        n_series = 0
        for folder in _order_line_files(cfg, run_date):
            pairs = (
                read_arrow(folder, columns=["sku", "warehouse"]).group_by(["sku", "warehouse"]).aggregate([])
            )
            n_series = max(n_series, pairs.num_rows)
        shards = max(1, math.ceil(n_series / cfg.scale.series_per_shard))
    for output in SHARDED_OUTPUTS:
        write_plan(cfg.lake, output, run_date, shards)
    return shards


def planned_shards(cfg: Config, run_date: date, output: str) -> int:
    plan = read_manifest(output_path(cfg.lake, output, run_date))
    if not plan or "shards" not in plan:
        raise DataError(
            f"no shard plan for {output} on {run_date}; run the plan step (or `seam forecast`) first"
        )
    return int(plan["shards"])


def sku_filter(
    cfg: Config, run_date: date, shard: int, shards: int
) -> list[tuple[str, str, list[Any]]] | None:
    """pyarrow filter selecting the shard's SKUs; None means the shard has no SKU at all."""
    mine = [s for s in night_skus(cfg, run_date) if shard_of(s, shards) == shard]
    return [("sku", "in", mine)] if mine else None
