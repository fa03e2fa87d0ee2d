"""An extracted partition sorted by SKU: the same rows and types, and a SKU filter reads only its
row groups."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipelines.extract.cluster import ROW_GROUP_ROWS, PartitionWriter, clustered_by
from pipelines.lake.store import prunable

SCHEMA = pa.schema(
    [
        pa.field("order_id", pa.int64(), nullable=False),
        pa.field("sku", pa.string()),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("at", pa.timestamp("us", tz="Europe/Paris")),
        pa.field("day", pa.date32()),
        pa.field("note", pa.large_string()),
        pa.field("stamp", pa.timestamp("ns")),
    ]
)


def _night(n: int, skus: int) -> pa.Table:
    rng = np.random.default_rng(3)
    codes = np.array([f"S{i:05d}" for i in range(skus)], dtype=object)[rng.integers(0, skus, n)].tolist()
    codes[7] = None
    return pa.table(
        {
            "order_id": np.arange(n),
            "sku": codes,
            "amount": [Decimal(f"{i % 997}.{i % 100:02d}") for i in range(n)],
            "at": pa.array(np.arange(n) * 1_000_003, pa.timestamp("us", tz="Europe/Paris")),
            "day": [dt.date(2026, 1, 1) + dt.timedelta(days=i % 300) for i in range(n)],
            "note": ["tab\there\nline \\ back" if i % 7 == 0 else None for i in range(n)],
            "stamp": pa.array(np.arange(n) * 1001, pa.timestamp("ns")),
        },
        schema=SCHEMA,
    )


def _cluster(path: Path, night: pa.Table, buffer_bytes: int | None = None) -> PartitionWriter:
    writer = PartitionWriter(path, SCHEMA, compression="zstd", cluster="sku", buffer_bytes=buffer_bytes)
    for batch in night.to_batches(max_chunksize=10_000):
        writer.write_batch(batch)
    writer.close()
    return writer


def test_a_clustered_file_holds_the_same_rows_sorted_by_sku_in_read_order(tmp_path: Path):
    night = _night(150_000, 4_000)
    path = tmp_path / "part-00000.parquet"
    assert clustered_by(SCHEMA) == "sku"
    assert clustered_by(pa.schema([("customer_id", pa.string())])) is None

    _cluster(path, night)

    got = pq.read_table(path)
    assert got.schema == SCHEMA  # the types as extracted, time zones and decimals included
    order = pc.sort_indices(night, [("sku", "ascending", "at_end"), ("order_id", "ascending")])
    assert got.equals(night.take(order))  # ties (and the null SKU, last) in the order read
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [ROW_GROUP_ROWS] * 2 + [
        150_000 - 2 * ROW_GROUP_ROWS
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["part-00000.parquet"]  # no spill or temp file left


def test_a_filter_on_a_range_of_skus_reads_only_its_row_groups(tmp_path: Path):
    night = _night(400_000, 20_000)
    path = tmp_path / "part-00000.parquet"
    _cluster(path, night)
    shard = [f"S{i:05d}" for i in range(5_000, 5_400)]  # one shard: a range of SKUs
    filters = [("sku", "in", shard)]

    fragment = next(ds.dataset(path).get_fragments())
    whole = len(fragment.split_by_row_group(pq.filters_to_expression(filters)))
    pruned = len(fragment.split_by_row_group(pq.filters_to_expression(prunable(filters))))
    assert whole == fragment.num_row_groups == 7  # a set alone prunes nothing
    assert pruned <= 2  # its range, which may straddle two row groups

    plain = pq.read_table(path, filters=filters)
    assert pq.read_table(path, filters=prunable(filters)).equals(plain)
    assert plain.num_rows == night.filter(pc.is_in(night["sku"], pa.array(shard))).num_rows > 0


def test_prunable_leaves_what_it_cannot_bound_as_it_is():
    assert prunable(None) is None
    mixed = [("sku", "in", ["a", 1])]
    assert prunable(mixed) == mixed
    either = [[("sku", "in", ["a"])], [("sku", "in", ["b"])]]  # a disjunction: left alone
    assert prunable(either) == either
    assert prunable([("sku", "in", [3, 1, 2]), ("q", ">", 0)]) == [
        ("sku", "in", [3, 1, 2]),
        ("q", ">", 0),
        ("sku", ">=", 1),
        ("sku", "<=", 3),
    ]


def test_a_night_sorted_in_memory_and_one_merged_from_sorted_runs_are_the_same_file(tmp_path: Path):
    night = _night(120_000, 3_000)
    # nulls spread over the night, and a run whose batches end with null keys
    night = night.set_column(
        1, "sku", pc.if_else(pc.equal(pc.bit_wise_and(night["order_id"], 63), 0), None, night["sku"])
    )
    files = {}
    for name, buffer in (("memory", 1 << 30), ("runs", 1 << 20), ("tiny", 1)):
        path = tmp_path / name / "part-00000.parquet"
        path.parent.mkdir()
        writer = _cluster(path, night, buffer)
        assert (len(writer.runs) > 1) is (name != "memory")
        files[name] = pq.read_table(path)
        assert [p.name for p in path.parent.iterdir()] == ["part-00000.parquet"]  # the runs are gone
    order = pc.sort_indices(night, [("sku", "ascending", "at_end"), ("order_id", "ascending")])
    assert files["memory"].equals(night.take(order))
    assert files["runs"].equals(files["memory"])
    assert files["tiny"].equals(files["memory"])  # a run per batch of 10,000 rows


def test_runs_of_only_null_keys_and_of_no_null_key_merge_in_the_order_read(tmp_path: Path):
    schema = pa.schema([("sku", pa.string()), ("n", pa.int64())])
    batches = [
        pa.record_batch({"sku": ["b", None, "a"], "n": [0, 1, 2]}, schema=schema),
        pa.record_batch({"sku": [None, None], "n": [3, 4]}, schema=schema),
        pa.record_batch({"sku": ["a", "c", "b"], "n": [5, 6, 7]}, schema=schema),
    ]
    path = tmp_path / "part-00000.parquet"
    writer = PartitionWriter(path, schema, compression="zstd", cluster="sku", buffer_bytes=1)
    for batch in batches:
        writer.write_batch(batch)
    writer.close()
    assert len(writer.runs) == 3
    got = pq.read_table(path).to_pydict()
    assert got == {"sku": ["a", "a", "b", "b", "c", None, None, None], "n": [2, 5, 0, 7, 6, 1, 3, 4]}


def test_a_partition_without_a_sku_is_written_as_read(tmp_path: Path):
    night = _night(1_000, 10).drop_columns(["sku"])
    path = tmp_path / "part-00000.parquet"
    writer = PartitionWriter(path, night.schema, compression="zstd", cluster=clustered_by(night.schema))
    for batch in night.to_batches(max_chunksize=300):
        writer.write_batch(batch)
    writer.close()
    assert pq.read_table(path).equals(night)
