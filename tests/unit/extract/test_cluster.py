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

from pipelines.extract.cluster import ROW_GROUP_ROWS, PartitionWriter, clustered_by, sort_order
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


def _write(path: Path, night: pa.Table, *, buffer: int, chunk: int = 10_000) -> PartitionWriter:
    writer = PartitionWriter(path, night.schema, compression="zstd", cluster="sku", buffer_bytes=buffer)
    for batch in night.to_batches(max_chunksize=chunk):
        writer.write_batch(batch)
    writer.close()
    return writer


def _stably_sorted(night: pa.Table) -> pa.Table:
    return night.take(pc.sort_indices(night, [("sku", "ascending", "at_end"), ("order_id", "ascending")]))


def test_a_clustered_file_holds_the_same_rows_sorted_by_sku_in_read_order(tmp_path: Path):
    night = _night(150_000, 4_000)
    path = tmp_path / "part-00000.parquet"
    assert clustered_by(SCHEMA) == "sku"
    assert clustered_by(pa.schema([("customer_id", pa.string())])) is None

    assert _write(path, night, buffer=1 << 20).spilled  # through buckets of SKU ranges

    got = pq.read_table(path)
    assert got.schema == SCHEMA  # the types as extracted, time zones and decimals included
    assert got.equals(_stably_sorted(night))  # ties (and the null SKU, last) in the order read
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [ROW_GROUP_ROWS] * 2 + [
        150_000 - 2 * ROW_GROUP_ROWS
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["part-00000.parquet"]  # no spill or temp file left


def test_a_filter_on_a_range_of_skus_reads_only_its_row_groups(tmp_path: Path):
    night = _night(400_000, 20_000)
    path = tmp_path / "part-00000.parquet"
    _write(path, night, buffer=4 << 20)
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


def test_a_night_sorted_in_memory_and_one_sorted_after_outgrowing_the_buffer_are_the_same_file(
    tmp_path: Path,
):
    night = _night(120_000, 3_000)
    files = {}
    for name, buffer in (("memory", 1 << 30), ("spilled", 1 << 20)):
        path = tmp_path / name / "part-00000.parquet"
        path.parent.mkdir()
        writer = PartitionWriter(path, SCHEMA, compression="zstd", cluster="sku", buffer_bytes=buffer)
        for batch in night.to_batches(max_chunksize=10_000):
            writer.write_batch(batch)
        writer.close()
        assert writer.spilled is (name == "spilled")
        files[name] = pq.read_table(path)
        assert [p.name for p in path.parent.iterdir()] == ["part-00000.parquet"]
    order = pc.sort_indices(night, [("sku", "ascending", "at_end"), ("order_id", "ascending")])
    assert files["memory"].equals(night.take(order))
    assert files["spilled"].equals(files["memory"])


def test_a_partition_without_a_sku_is_written_as_read(tmp_path: Path):
    night = _night(1_000, 10).drop_columns(["sku"])
    path = tmp_path / "part-00000.parquet"
    writer = PartitionWriter(path, night.schema, compression="zstd", cluster=clustered_by(night.schema))
    for batch in night.to_batches(max_chunksize=300):
        writer.write_batch(batch)
    writer.close()
    assert pq.read_table(path).equals(night)


def test_the_sort_order_by_ranks_is_arrows_stable_sort_nulls_last():
    rng = np.random.default_rng(11)
    texts = [f"S{i:03d}" for i in rng.integers(0, 50, 5_000)]
    texts[::97] = [None] * len(texts[::97])
    floats = rng.integers(0, 20, 3_000).astype(float)
    floats[::13] = np.nan
    columns = [
        pa.chunked_array([texts[:2_000], texts[2_000:]]),  # chunks, as batches come
        pa.chunked_array([pa.array(floats)]).cast(pa.float64()),  # NaN sorts after numbers
        pa.chunked_array([pa.array(rng.integers(-5, 5, 3_000))]),
        pa.chunked_array([pa.array([None, None], pa.string())]),
        pa.chunked_array([pa.array(["b", "a", "\u00e9", "B", ""])]),  # bytewise, as Arrow sorts text
    ]
    for column in columns:
        expected = pc.sort_indices(pa.table({"k": column}), [("k", "ascending", "at_end")])
        assert sort_order(column).to_pylist() == expected.to_pylist()
    floats_with_null = pa.chunked_array([pa.array([2.0, None, np.nan, 1.0], pa.float64())])
    assert sort_order(floats_with_null).to_pylist() == [3, 0, 2, 1]  # numbers, NaN, then null


def test_an_empty_night_clustered_in_memory_is_a_valid_empty_file(tmp_path: Path):
    path = tmp_path / "part-00000.parquet"
    writer = PartitionWriter(path, SCHEMA, compression="zstd", cluster="sku")
    writer.write_batch(pa.RecordBatch.from_pylist([], SCHEMA))  # a batch with no rows
    writer.close()
    assert pq.read_table(path).num_rows == 0 and pq.read_table(path).schema == SCHEMA


def test_a_night_beyond_the_buffer_is_sorted_whatever_order_its_skus_come_in(tmp_path: Path):
    base = _night(60_000, 500)
    skus = base["sku"].to_pylist()
    nights = {
        # the first buffer is no sample of the rest: every range of it outgrows the buffer again
        "sorted descending": base.set_column(
            1, "sku", pa.array(sorted(skus, key=lambda v: v or "", reverse=True))
        ),
        "one sku": base.set_column(1, "sku", pa.array(["S1"] * 60_000)),
        "nulls beyond the buffer": base.set_column(1, "sku", pa.array([None] * 40_000 + skus[:20_000])),
        "one sku, a few others": base.set_column(
            1, "sku", pa.array(["S7" if i % 50 else f"S{i % 9}" for i in range(60_000)])
        ),
    }
    for name, night in nights.items():
        path = tmp_path / name.replace(" ", "-") / "part-00000.parquet"
        path.parent.mkdir()
        writer = _write(path, night, buffer=256 << 10, chunk=3_000)
        assert writer.spilled, name
        assert pq.read_table(path).equals(_stably_sorted(night)), name
        assert [p.name for p in path.parent.iterdir()] == ["part-00000.parquet"], name  # no bucket left


def test_an_aborted_write_leaves_no_bucket_behind(tmp_path: Path):
    night = _night(30_000, 300)
    path = tmp_path / "part-00000.parquet"
    writer = PartitionWriter(path, SCHEMA, compression="zstd", cluster="sku", buffer_bytes=64 << 10)
    for batch in night.to_batches(max_chunksize=2_000):
        writer.write_batch(batch)
    assert writer.spilled and any(tmp_path.rglob("bucket-*.arrow"))
    writer.abort()
    assert not any(tmp_path.rglob("*.arrow")) and [p.name for p in tmp_path.iterdir()] == [
        "part-00000.parquet"
    ]
