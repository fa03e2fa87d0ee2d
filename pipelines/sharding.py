"""Split a night's series into shards by a stable hash of the SKU (all warehouses of a SKU together).

Each shard reads only its SKUs from the lake (the filter is pushed down to the Parquet files), so the
memory of a forecasting or scoring task depends on the shard size, not on the size of the company.
"""

from __future__ import annotations

import math
import zlib
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import Config
from pipelines.errors import MissingInputError
from pipelines.lake import Lake
from pipelines.state import write_shard_plan


def shard_of(key: object, shards: int) -> int:
    """Stable shard number of a key (crc32 of its text: the same on every machine and Python run)."""
    return zlib.crc32(str(key).encode()) % shards


def _order_line_tables(cfg: Config, run_date: date, columns: list[str]) -> list[pa.Table]:
    source, spec = cfg.provider("order_lines")
    lake = Lake(cfg.lake)
    days = lake.table_days(source.name, spec.name)
    if run_date not in days:
        raise MissingInputError(
            f"no order-lines snapshot for {run_date}; run `seam extract --date {run_date}` first"
        )
    wanted = [run_date] if spec.mode == "snapshot" else [d for d in days if d <= run_date]
    return [lake.read_table(source.name, spec.name, d, columns=columns) for d in wanted]


def night_skus(cfg: Config, run_date: date) -> list[Any]:
    """Distinct SKUs of the night's order lines (reads one column only)."""
    values: set[Any] = set()
    for table in _order_line_tables(cfg, run_date, ["sku"]):
        values.update(pc.unique(table.column("sku")).to_pylist())
    return sorted((v for v in values if v is not None), key=str)


def plan_shards(cfg: Config, run_date: date) -> int:
    """How many shards tonight: `scale.shards`, or enough for `scale.series_per_shard` series each."""
    if cfg.scale.shards:
        shards = cfg.scale.shards
    else:
        n_series = 0
        for table in _order_line_tables(cfg, run_date, ["sku", "warehouse"]):
            n_series = max(n_series, table.group_by(["sku", "warehouse"]).aggregate([]).num_rows)
        shards = max(1, math.ceil(n_series / cfg.scale.series_per_shard))
    write_shard_plan(Lake(cfg.lake), run_date, shards)
    return shards


def sku_filter(
    cfg: Config, run_date: date, shard: int, shards: int
) -> list[tuple[str, str, list[Any]]] | None:
    """pyarrow filter selecting the shard's SKUs; None means the shard has no SKU at all."""
    mine = [s for s in night_skus(cfg, run_date) if shard_of(s, shards) == shard]
    return [("sku", "in", mine)] if mine else None
