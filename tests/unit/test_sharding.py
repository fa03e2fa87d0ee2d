"""The shard plan: SKUs dealt to shards by expected cost, shard counts from the data and the slots."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.config import ScaleSpec, load_config
from pipelines.errors import ConfigError
from pipelines.sharding import assign_shards, series_cost, shard_count, shard_of


def _spread(assignment: list[list[str]], costs: dict[str, float]) -> list[float]:
    return [sum(costs[s] for s in skus) for skus in assignment]


def test_regular_series_cost_more_than_intermittent_ones_and_grow_with_history():
    assert series_cost(300, 365) == pytest.approx(8.0)  # sells on most days: the model combination
    assert series_cost(30, 365) == pytest.approx(1.0)  # intermittent: count models
    assert series_cost(100, 100) < series_cost(365, 365)
    assert series_cost(700, 700) == series_cost(365, 365)  # capped at a year
    assert series_cost(0, 0) > 0


def test_shards_are_balanced_by_cost_where_a_hash_is_not():
    # a few heavy SKUs (dense, 5 warehouses) among many light ones (sparse)
    costs = {f"H{i:02d}": 40.0 for i in range(6)} | {f"L{i:03d}": 1.0 for i in range(160)}
    plan = assign_shards(costs, 4)
    loads = _spread(plan, costs)
    assert sorted(s for skus in plan for s in skus) == sorted(costs)  # every SKU exactly once
    assert max(loads) - min(loads) <= 1.0  # within one light SKU of each other
    assert loads == sorted(loads, reverse=True)  # the largest shard first
    by_hash = [[s for s in costs if shard_of(s, 4) == k] for k in range(4)]
    assert max(_spread(by_hash, costs)) > max(loads)


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


def test_worker_slots_must_be_a_positive_integer(tmp_path):
    text = (Path(__file__).resolve().parents[2] / "config" / "demo.yml").read_text()
    bad = tmp_path / "seam.yml"
    bad.write_text(text + "\nscale: {worker_slots: 0}\n")
    with pytest.raises(ConfigError, match=r"scale\.worker_slots"):
        load_config(bad)
