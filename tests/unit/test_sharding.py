"""The shard plan: SKUs dealt to shards by expected cost, shard counts from the data and the slots."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import ScaleSpec, load_config
from pipelines.errors import ConfigError
from pipelines.sharding import assign_shards, series_cost, shard_count, sku_order


def _spread(assignment: list[list[str]], costs: dict[str, float]) -> list[float]:
    return [sum(costs[s] for s in skus) for skus in assignment]


def test_regular_series_cost_more_than_intermittent_ones_and_grow_with_history():
    assert series_cost(300, 365) == pytest.approx(8.0)  # sells on most days: the model combination
    assert series_cost(30, 365) == pytest.approx(1.0)  # intermittent: count models
    assert series_cost(100, 100) < series_cost(365, 365)
    assert series_cost(700, 700) == series_cost(365, 365)  # capped at a year
    assert series_cost(0, 0) > 0


def test_shards_are_balanced_by_cost():
    # a few heavy SKUs (dense, 5 warehouses) among many light ones (sparse), spread over the codes
    costs = {f"S{i:04d}": 40.0 if i % 28 == 5 else 1.0 for i in range(2000)}
    plan = assign_shards(costs, 4)
    loads = _spread(plan, costs)
    assert sorted(s for skus in plan for s in skus) == sorted(costs)  # every SKU exactly once
    assert max(loads) <= sum(loads) / 4 + 40.0  # at most one heavy SKU above the average
    assert max(loads) / (sum(loads) / 4) < 1.02
    assert loads == sorted(loads, reverse=True)  # the largest shard first


def test_a_shard_is_one_range_of_skus_in_the_lakes_sort_order():
    costs = {f"S{i:03d}": float(i % 5 + 1) for i in range(100)}
    plan = assign_shards(costs, 6)
    order = sku_order(list(costs))
    for skus in plan:
        first = order.index(skus[0])
        assert skus == order[first : first + len(skus)]
    # numbers sort as numbers, as the Parquet statistics of an integer column do
    assert sku_order([10, 9, 100]) == [9, 10, 100]
    ranges = assign_shards({sku: 1.0 for sku in range(1, 13)}, 3)
    assert sorted(ranges) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]


def test_heavy_skus_together_in_the_sort_order_still_bound_the_largest_shard():
    # the worst case of ranges: every heavy SKU at one end; the largest shard costs at most the
    # average plus the costliest SKU (here 120 against 100; dealing SKUs freely would reach 100)
    costs = {f"H{i:02d}": 40.0 for i in range(6)} | {f"L{i:03d}": 1.0 for i in range(160)}
    loads = _spread(assign_shards(costs, 4), costs)
    assert sum(loads) == 400.0
    assert max(loads) <= 400.0 / 4 + 40.0
    assert max(loads) == 120.0  # the best cut into 4 ranges


def test_the_plan_does_not_depend_on_the_order_of_the_skus():
    costs = {f"S{i}": float(i % 7 + 1) for i in range(50)}
    reverse = dict(reversed(list(costs.items())))
    assert assign_shards(costs, 3) == assign_shards(reverse, 3)


def test_one_heavy_sku_gets_a_shard_of_its_own():
    costs = {"BIG": 100.0, "a": 1.0, "b": 1.0, "c": 1.0}
    assert assign_shards(costs, 2) == [["BIG"], ["a", "b", "c"]]


def _cfg(tmp_path: Path, **scale: int | None):
    cfg = load_config(Path(__file__).resolve().parents[2] / "config" / "demo.yml")
    return replace(cfg, scale=replace(ScaleSpec(), **scale))


def test_shard_count_follows_the_data_and_the_worker_slots(tmp_path):
    assert shard_count(_cfg(tmp_path, series_per_shard=500), 1000, 200) == 2
    assert shard_count(_cfg(tmp_path, series_per_shard=500), 1001, 200) == 3
    assert shard_count(_cfg(tmp_path, series_per_shard=500, worker_slots=4), 1001, 200) == 4
    assert shard_count(_cfg(tmp_path, series_per_shard=500, worker_slots=2), 1001, 200) == 4
    assert shard_count(_cfg(tmp_path, series_per_shard=2000, worker_slots=2), 300, 60) == 2
    assert shard_count(_cfg(tmp_path, worker_slots=8), 30, 3) == 3  # never an empty shard
    assert shard_count(_cfg(tmp_path, shards=5, worker_slots=2), 10, 10) == 5  # fixed: as given


def test_partitions_of_customers_are_an_eighth_of_the_shards_rounded_to_the_worker_slots(tmp_path):
    from pipelines.lake import Lake
    from pipelines.state import partition_count, record_partitions, write_shard_plan

    # every partition reads every shard: 128 shards in 16 partitions is 2,048 reads, not 16,384
    assert [partition_count(s) for s in (1, 3, 8, 9, 32, 128)] == [1, 1, 1, 2, 4, 16]
    assert partition_count(9, 4) == 4 and partition_count(128, 3) == 18  # every slot gets one
    assert partition_count(3, 8) == 3 and partition_count(1, 2) == 1  # never more than the shards
    lake = Lake(tmp_path / "lake")
    write_shard_plan(lake, date(2026, 11, 22), 5, partitions=2)
    assert record_partitions(lake, date(2026, 11, 22)) == 2
    assert lake.read_shard_plan("anomalies", date(2026, 11, 22)) == 7  # the scores: 5 + 2 shards
    assert lake.read_shard_plan("record_fits", date(2026, 11, 22)) == 5  # one exchange file a shard
    with pytest.raises(ValueError, match="5 shards with 6 partitions"):
        write_shard_plan(lake, date(2026, 11, 22), 5, partitions=6)


def test_the_plans_cutoffs_are_read_by_partition_and_only_for_the_window_they_were_counted_for(tmp_path):
    import pandas as pd

    from pipelines.errors import MissingInputError
    from pipelines.lake import Lake
    from pipelines.state import record_cutoffs, write_record_cutoffs, write_shard_plan

    night, after = date(2026, 11, 22), date(2026, 11, 15)
    lake = Lake(tmp_path / "lake")
    write_shard_plan(lake, night, 4, partitions=2)
    assert record_cutoffs(lake, night, after) is None  # none recorded
    counted = pd.DataFrame(
        {"customer_id": ["a", "b", "c"], "cutoff": [10, 20, 30], "customer_part": [1, 0, 1]}
    )
    write_record_cutoffs(lake, night, after, counted.astype({"cutoff": "int32"}), 2)
    mine = record_cutoffs(lake, night, after, 1)
    assert mine is not None and mine.to_pydict() == {"customer_id": ["a", "c"], "cutoff": [10, 30]}
    assert record_cutoffs(lake, night, after, 0).to_pydict() == {"customer_id": ["b"], "cutoff": [20]}
    every = record_cutoffs(lake, night, after)
    assert every is not None and sorted(every.column("customer_id").to_pylist()) == ["a", "b", "c"]
    assert record_cutoffs(lake, night, date(2026, 11, 8)) is None  # another window: not these
    with pytest.raises(ValueError, match=r"holds partitions 0\.\.1, not 2"):
        record_cutoffs(lake, night, after, 2)
    (lake.exchange_partition("record_fits", night) / "cutoffs.arrow").unlink()
    with pytest.raises(MissingInputError, match=r"cutoffs\.arrow; run the step that writes it"):
        record_cutoffs(lake, night, after, 0)
    write_shard_plan(lake, night, 4, partitions=2)  # a new plan: its cut-offs are counted anew
    assert record_cutoffs(lake, night, after) is None


def test_worker_slots_must_be_a_positive_integer(tmp_path):
    text = (Path(__file__).resolve().parents[2] / "config" / "demo.yml").read_text()
    bad = tmp_path / "seam.yml"
    bad.write_text(text + "\nscale: {worker_slots: 0}\n")
    with pytest.raises(ConfigError, match=r"scale\.worker_slots"):
        load_config(bad)


def test_series_days_keeps_each_series_sold_days_in_the_window_as_bits():
    """The plan's day flags: each series' distinct days inside the window and its first, as a
    set of (series, day) pairs gives them, whatever the batches and repeats."""
    from pipelines.sharding import SeriesDays

    rng = np.random.default_rng(3)
    days, count = 61, 0
    sold = SeriesDays(days)
    pairs: set[tuple[int, int]] = set()
    for _ in range(40):  # batches numbering new series as they come (rows grown past the count)
        count += int(rng.integers(0, 30))
        if not count:
            continue
        series = rng.integers(0, count, 200)
        day = rng.integers(-10, days + 10, 200)  # some before and after the window
        sold.add(series, day, count)
        pairs |= {(int(s), int(d)) for s, d in zip(series, day, strict=True) if 0 <= d < days}
    count += 5  # series numbered without a day in the window
    sold_days, first = sold.finish(count, block=16)
    for s in range(count):
        mine = sorted(d for t, d in pairs if t == s)
        assert sold_days[s] == len(mine)
        assert first[s] == (mine[0] if mine else -1)
    assert len(sold.bits) > count - 5 and (sold_days[-5:] == 0).all()
