"""Split a night's series into shards of about equal cost (all warehouses of a SKU together).

The plan step estimates what each SKU's series will cost to forecast and score (their number, the
length of their history, and whether they sell on most days: regular series are fitted by several
models, intermittent ones by cheap count models), and cuts the SKUs, in their sort order, into
ranges of about equal cost (the linear partition whose costliest shard costs least).  A shard is
one range of SKUs because the night's files are sorted by SKU (`pipelines.extract.cluster`): its
filter, pushed down to the Parquet files, then reads only its own row groups, so a shard's time
and memory depend on the shard, not on the night.  Shards are numbered by their cost, largest
first, so a scheduler that starts them in order starts the long ones first.  The assignment is
recorded in the night's shard plan.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import Config
from pipelines.lake import Lake, iter_source_batches, read_source_nights
from pipelines.launches import plan_launches
from pipelines.state import (
    partition_count,
    recorded_launches,
    shard_assignment,
    write_launches,
    write_shard_plan,
)

if TYPE_CHECKING:
    from pipelines.anomaly.records import HistoryCutoffs

# Relative cost of one series: a regular series (a sale on at least 1/REGULAR_ADI of its days, the
# demand classification's cut) is fitted by the model combination, about 8x the time of an
# intermittent one (measured with `forecast` on 365-day series: 120-190 ms against 15-20 ms); both
# grow with the history up to about a year, a 20-day series costing about half a 365-day one.
REGULAR_ADI = 1.32
REGULAR_WEIGHT = 8.0
FULL_HISTORY_DAYS = 365


def shard_of(key: object, shards: int) -> int:
    """Stable shard number of a key by hash (crc32 of its text): the shard of a SKU in a plan
    recorded without an assignment."""
    return zlib.crc32(str(key).encode()) % shards


def partition_of(keys: pd.Series, parts: int) -> np.ndarray:
    """`shard_of` every key (computed once per distinct key)."""
    codes, uniques = pd.factorize(keys, use_na_sentinel=False)
    table = np.array([shard_of(k, parts) for k in uniques], dtype=np.int64)
    return table[codes] if len(uniques) else np.zeros(len(keys), dtype=np.int64)


def night_skus(cfg: Config, run_date: date) -> list[Any]:
    """Distinct SKUs of the night's order lines, of every source (reads one column only), and of
    the night's product launches the plan recorded."""
    values: set[Any] = set()
    for part in read_source_nights(cfg, "order_lines", run_date, columns=["sku"]):
        for table in part.nights:
            values.update(pc.unique(table.column("sku")).to_pylist())
    values.update(row[0] for row in recorded_launches(Lake(cfg.lake), run_date))
    return sorted((v for v in values if v is not None), key=str)


def series_cost(sale_days: int, history_days: int) -> float:
    """Expected relative cost of forecasting and scoring one series with `sale_days` days with sales
    in `history_days` days since its SKU's first sale."""
    history = max(history_days, 1)
    weight = REGULAR_WEIGHT if sale_days * REGULAR_ADI >= history else 1.0
    return weight * (0.5 + 0.5 * min(history, FULL_HISTORY_DAYS) / FULL_HISTORY_DAYS)


def sku_costs(
    cfg: Config, run_date: date, *, cutoffs: HistoryCutoffs | None = None
) -> tuple[dict[Any, float], int, list[tuple[Any, Any]]]:
    """Expected cost of each SKU of the night (the sum over its warehouses' series), the number
    of series and the SKU x warehouse pairs of the series; reads three columns of the order lines
    a record batch at a time, and keeps which days of the forecast's history window each series
    sold on as one bit a day (`SeriesDays`), not the night's rows.  Only the days the forecaster
    reads count (`forecast.history_days` up to the night, as `build_demand_series`).  With
    `cutoffs`, the same pass counts each customer's lines per day into them (a fourth column,
    `customer_id`)."""
    pair_of: dict[tuple[Any, Any], int] = {}  # (sku, warehouse) -> series number, in order seen
    window = cfg.forecast.history_days
    first_day_of_window = (run_date - date(1970, 1, 1)).days - (window - 1)
    sold = SeriesDays(window)
    columns = ["sku", "warehouse", "order_date", *(["customer_id"] if cutoffs is not None else [])]
    for batch in iter_source_batches(cfg, "order_lines", run_date, columns=columns):
        if cutoffs is not None:
            cutoffs.add(batch.column("customer_id"), batch.column("order_date"))
        day = pc.cast(batch.column("order_date"), pa.date32(), safe=False)
        slim = pa.table({"sku": batch.column("sku"), "warehouse": batch.column("warehouse"), "day": day})
        # one thread: the groups come in the same order every run, so do the series and their costs
        rows = slim.group_by(["sku", "warehouse", "day"], use_threads=False).aggregate([])
        # each row's series number: the batch's SKUs and warehouses as indexes (a missing value is
        # one more value), their pairs numbered in the order seen
        skus, warehouses = pc.unique(rows.column("sku")), pc.unique(rows.column("warehouse"))
        si = pc.index_in(rows.column("sku"), value_set=skus, skip_nulls=False).to_numpy().astype(np.int64)
        wi = pc.index_in(rows.column("warehouse"), value_set=warehouses, skip_nulls=False).to_numpy()
        local, inverse = np.unique(si * len(warehouses) + wi, return_inverse=True)
        sku_values, warehouse_values = skus.to_pylist(), warehouses.to_pylist()
        numbers = np.array(
            [
                pair_of.setdefault(
                    (sku_values[k // len(warehouses)], warehouse_values[k % len(warehouses)]), len(pair_of)
                )
                for k in local.tolist()
            ],
            dtype=np.int64,
        )
        valid = pc.is_valid(rows.column("day")).to_numpy(zero_copy_only=False)
        days = pc.cast(rows.column("day"), pa.int32()).fill_null(0).to_numpy().astype(np.int64)
        sold.add(numbers[inverse.ravel()][valid], days[valid] - first_day_of_window, len(pair_of))
    if not pair_of:
        return {}, 0, []
    day_count, first_of_series = sold.finish(len(pair_of))
    first_day: dict[Any, int] = {}
    for (sku, _), n in pair_of.items():
        if sku is not None and first_of_series[n] >= 0:
            first_day[sku] = min(first_day.get(sku, window), int(first_of_series[n]))
    costs: dict[Any, float] = defaultdict(float)
    for (sku, _), n in pair_of.items():
        if sku is None:
            continue
        history = window - first_day[sku] if sku in first_day else 1
        costs[sku] += series_cost(int(day_count[n]), history)
    pairs_out = [key for key in pair_of if key[0] is not None]
    return dict(costs), len(pair_of), pairs_out


class SeriesDays:
    """Which of `days` consecutive days each series sold on: one bit per series and day, rows
    added as series are numbered (a night of 64,000 series and two years is 6 MB, where the
    distinct (series, day) pairs themselves would be 8 bytes each)."""

    def __init__(self, days: int) -> None:
        self.days = days
        self.bits = np.zeros((0, (days + 7) // 8), dtype=np.uint8)

    def add(self, series: np.ndarray, day: np.ndarray, count: int) -> None:
        """Mark day `day[i]` (0 .. days - 1; others are outside the window and not kept) of series
        `series[i]`; `count`: the series numbered so far."""
        if count > len(self.bits):  # grown by half at least: amortised copies
            grown = np.zeros((max(count, len(self.bits) * 3 // 2), self.bits.shape[1]), dtype=np.uint8)
            grown[: len(self.bits)] = self.bits
            self.bits = grown
        inside = (day >= 0) & (day < self.days)
        series, day = series[inside], day[inside]
        np.bitwise_or.at(self.bits, (series, day >> 3), np.left_shift(1, 7 - (day & 7)).astype(np.uint8))

    def finish(self, count: int, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Per series: the days it sold on, and the first of them (-1: none), a block of series
        at a time, on the packed bytes (a day is a bit of its byte, the earliest the highest)."""
        sold = np.zeros(count, dtype=np.int64)
        first = np.full(count, -1, dtype=np.int64)
        for start in range(0, min(count, len(self.bits)), block):
            rows = self.bits[start : min(start + block, count)]
            sold[start : start + len(rows)] = _BITS_SET[rows].sum(axis=1, dtype=np.int64)
            busy = rows != 0
            at = busy.argmax(axis=1)  # the first byte with a day
            day = at * 8 + _LEADING_ZEROS[rows[np.arange(len(rows)), at]]
            first[start : start + len(rows)] = np.where(busy.any(axis=1), day, -1)
        return sold, first


# per byte value: its bits set, and its zero bits before the highest set one (8 for 0)
_BITS_SET = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)
_LEADING_ZEROS = np.array([8 - b.bit_length() for b in range(256)], dtype=np.int64)


def sku_order(skus: list[Any]) -> list[Any]:
    """SKUs in the order the lake's files sort them (`pipelines.extract.cluster`): by value when
    they are all text or all numbers, else by their text."""
    kinds = {type(s) for s in skus}
    if len(kinds) == 1 and kinds <= {str, int, float}:
        return sorted(skus)
    return sorted(skus, key=str)


def assign_shards(costs: Mapping[Any, float], shards: int) -> list[list[Any]]:
    """Cut the SKUs, in the lake's sort order (`sku_order`), into `shards` ranges of about equal
    cost: the cut whose largest shard costs least (a binary search on that cost, each range filled
    greedily), a range split further while shards are left.  A shard is one range of SKUs, so it
    reads only its row groups of the night's files, which are sorted by SKU.  Returns each shard's
    SKUs, shards ordered by total cost, largest first (ties: the lower range)."""
    skus = sku_order(list(costs))
    if not skus:
        return [[] for _ in range(shards)]
    cost = np.array([float(costs[s]) for s in skus])
    cum = np.concatenate([[0.0], np.cumsum(cost)])

    def cut(bound: float) -> list[int]:
        edges, start = [0], 0
        while start < len(skus):
            end = int(np.searchsorted(cum, cum[start] + bound, side="right")) - 1
            start = max(end, start + 1)
            edges.append(start)
        return edges

    low, high = float(cost.max()), float(cum[-1])
    while high - low > 1e-9 * max(high, 1.0):
        mid = (low + high) / 2
        if len(cut(mid * (1 + 1e-12))) - 1 <= shards:
            high = mid
        else:
            low = mid
    edges = cut(high * (1 + 1e-12))
    ranges = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    while len(ranges) < shards:  # split the costliest range that can be split, at its middle cost
        splittable = [r for r in ranges if r[1] - r[0] > 1]
        if not splittable:
            break
        a, b = max(splittable, key=lambda r: (cum[r[1]] - cum[r[0]], -r[0]))
        middle = int(np.searchsorted(cum, (cum[a] + cum[b]) / 2, side="left"))
        middle = min(max(middle, a + 1), b - 1)
        i = ranges.index((a, b))
        ranges[i : i + 1] = [(a, middle), (middle, b)]
    members = [skus[a:b] for a, b in ranges] + [[] for _ in range(shards - len(ranges))]
    load = [float(cost[a:b].sum()) for a, b in ranges] + [0.0] * (shards - len(ranges))
    order = sorted(range(shards), key=lambda k: (-load[k], k))
    return [members[k] for k in order]


def shard_count(cfg: Config, n_series: int, n_skus: int) -> int:
    """`scale.shards`, or enough shards for `scale.series_per_shard` series each, rounded up to a
    multiple of `scale.worker_slots` (every slot gets a shard in each round); never more shards
    than SKUs."""
    if cfg.scale.shards:
        return cfg.scale.shards
    shards = max(1, math.ceil(n_series / cfg.scale.series_per_shard))
    slots = cfg.scale.worker_slots
    if slots:
        shards = slots * math.ceil(shards / slots)
    return max(1, min(shards, n_skus))


def plan_shards(cfg: Config, run_date: date, *, cutoffs: HistoryCutoffs | None = None) -> int:
    """Decide and record tonight's shards: their number, which SKUs each holds, the partitions of
    customers of the order lines' scoring (`partition_count`) and the night's product launches
    (`pipelines.launches`; a launch's SKU is sharded like the others).  With `cutoffs`, counts the
    customers' lines into them in the same pass over the order lines (`sku_costs`)."""
    costs, n_series, pairs = sku_costs(cfg, run_date, cutoffs=cutoffs)
    launches = plan_launches(cfg, run_date, pairs)
    for launch in launches:  # a series without history: a new product's cost
        costs[launch.sku] = costs.get(launch.sku, 0.0) + series_cost(0, 1)
    shards = shard_count(cfg, n_series + len(launches), len(costs))
    lake = Lake(cfg.lake)
    partitions = partition_count(shards, cfg.scale.worker_slots)
    write_shard_plan(lake, run_date, shards, assign_shards(costs, shards), partitions=partitions)
    write_launches(lake, run_date, [x.to_list() for x in launches])
    return shards


def sku_filter(
    cfg: Config, run_date: date, shard: int, shards: int
) -> list[tuple[str, str, list[Any]]] | None:
    """pyarrow filter selecting the shard's SKUs; None means the shard has no SKU at all."""
    assigned = shard_assignment(Lake(cfg.lake), run_date)
    if assigned is not None and len(assigned) == shards:
        mine = assigned[shard]
    else:
        mine = [s for s in night_skus(cfg, run_date) if shard_of(s, shards) == shard]
    return [("sku", "in", mine)] if mine else None
