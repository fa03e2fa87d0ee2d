"""Lay an extracted partition out by SKU, so that a shard reads only its part of the night.

A night's shards each hold a range of SKUs (`pipelines.sharding.assign_shards`), and read the
night's rows with a SKU filter.  When the rows are in the order the database gave them, every row
group holds SKUs of every shard and every shard decodes the whole file.  Sorted by SKU, in row
groups of `ROW_GROUP_ROWS`, a shard's filter falls in a few row groups (their statistics say which;
`pipelines.lake.store.prunable`).

A night that fits in `BUFFER_BYTES` of Arrow is sorted in memory as it is written (one stable
sort, nothing written twice).  A larger one is distributed as it is read into buckets of SKU
ranges, staged uncompressed beside the partition: the ranges' bounds are SKUs drawn from the
first `BUFFER_BYTES` of rows at their quantiles, and every bound has a bucket of its own (its
rows need no sort).  At the end each bucket, in SKU order, is sorted in memory the same way; a
range bucket that outgrows the buffer is split again by its own quantiles, which always leaves out
at least the bounds, so the split ends.  Memory stays about one buffer whatever the night's size,
and every row is written twice only when the night outgrows the buffer.  Either way the file holds
the same rows and types as extracted, with the partition's own Arrow schema, and the rows of one
SKU in the order they were read.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

CLUSTER_COLUMN = "sku"
ROW_GROUP_ROWS = 65_536
# what a clustered extraction holds besides a batch: the night, up to BUFFER_BYTES of Arrow, sorted
# in memory (plus two row groups' copies); beyond, one bucket of about that size at a time.  At
# 64 MB the 64x scale night's order lines peaked 78 MB above the 4x night's, against 165 MB at
# 128 MB, in the same time (benchmarks/extract_buffer.py)
BUFFER_BYTES = 64 * 1024 * 1024
# SKU ranges a night that outgrows the buffer is distributed over (each with its bound's bucket)
RANGES = 32


class PartitionWriter:
    """Writes a partition's batches to `path`: as they come, or, with `cluster`, sorted by that
    column (in memory up to `buffer_bytes`, through buckets of SKU ranges beyond)."""

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        *,
        compression: str,
        cluster: str | None,
        buffer_bytes: int | None = None,
    ) -> None:
        self.path, self.schema, self.compression, self.cluster = path, schema, compression, cluster
        self._writer = pq.ParquetWriter(path, schema, compression=compression)
        self._sorter = (
            None
            if cluster is None
            else _Sorter(
                cluster,
                schema,
                path.with_name(f"buckets-{path.stem}"),
                BUFFER_BYTES if buffer_bytes is None else buffer_bytes,
            )
        )

    @property
    def spilled(self) -> bool:
        """Whether the night outgrew the buffer (and went through buckets)."""
        return self._sorter is not None and self._sorter.spilled

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if self._sorter is None:
            self._writer.write_batch(batch)
        else:
            self._sorter.add(batch)

    def close(self) -> None:
        """Finish the file (an empty one when no batch came)."""
        if self._sorter is not None:
            groups = _RowGroups(self._writer)
            self._sorter.drain(groups.add)
            groups.flush()
        self._writer.close()

    def abort(self) -> None:
        """Close what was opened, after a failure (the staged files are thrown away with their folder)."""
        if self._sorter is not None:
            self._sorter.discard()
        self._writer.close()


class _RowGroups:
    """Writes tables in order as row groups of `ROW_GROUP_ROWS` rows (the last one shorter)."""

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self._writer = writer
        self._carry: list[pa.Table] = []
        self._rows = 0

    def add(self, table: pa.Table) -> None:
        if not self._carry and table.num_rows == ROW_GROUP_ROWS:  # the in-memory sort's slices
            self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            return
        self._carry.append(table)
        self._rows += table.num_rows
        if self._rows >= ROW_GROUP_ROWS:
            whole = pa.concat_tables(self._carry)
            cut = whole.num_rows - whole.num_rows % ROW_GROUP_ROWS
            self._writer.write_table(whole.slice(0, cut), row_group_size=ROW_GROUP_ROWS)
            rest = whole.slice(cut)
            self._carry, self._rows = ([rest] if rest.num_rows else []), rest.num_rows

    def flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.concat_tables(self._carry), row_group_size=ROW_GROUP_ROWS)
        self._carry, self._rows = [], 0


class _Sorter:
    """Rows sorted stably by `column`, nulls last: held in memory up to `buffer_bytes`, then
    distributed into `_Buckets` in `folder`; `drain` hands the sorted rows to a sink in order."""

    def __init__(self, column: str, schema: pa.Schema, folder: Path, buffer_bytes: int) -> None:
        self.column, self.schema, self.folder, self.buffer_bytes = column, schema, folder, buffer_bytes
        self._pending: list[pa.RecordBatch] = []
        self._size = 0
        self._buckets: _Buckets | None = None

    @property
    def spilled(self) -> bool:
        return self._buckets is not None

    def add(self, batch: pa.RecordBatch) -> None:
        if self._buckets is not None:
            self._buckets.add(batch)
            return
        self._pending.append(batch)
        self._size += batch.nbytes
        if self._size > self.buffer_bytes:
            sample = pa.Table.from_batches(self._pending, schema=self.schema).column(self.column)
            self._buckets = _Buckets(self.folder, self.schema, self.column, _bounds(sample, RANGES))
            for pending in self._pending:
                self._buckets.add(pending)
            self._pending.clear()

    def drain(self, sink: Callable[[pa.Table], None]) -> None:
        if self._buckets is None:
            table = pa.Table.from_batches(self._pending, schema=self.schema)
            self._pending.clear()
            _in_order(table, sort_order(table.column(self.column)), sink)
            return
        try:
            for kind, batches in self._buckets.drain():
                if kind == "bound":  # one SKU: its rows in the order read
                    for batch in batches:
                        sink(pa.Table.from_batches([batch], schema=self.schema))
                    continue
                inner = _Sorter(self.column, self.schema, self.folder / "split", self.buffer_bytes)
                for batch in batches:
                    inner.add(batch)
                inner.drain(sink)
        finally:
            self.discard()

    def discard(self) -> None:
        self._pending.clear()
        if self._buckets is not None:
            self._buckets.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class _Buckets:
    """Staged rows by range of `column`: bucket 2i holds the values between bound i-1 and bound i
    (exclusive), bucket 2i+1 bound i itself, the last bucket (2 x bounds + 1) the nulls.  Each is
    an uncompressed Arrow IPC stream, written as the rows come."""

    def __init__(self, folder: Path, schema: pa.Schema, column: str, bounds: pa.Array) -> None:
        self.folder, self.schema, self.column, self.bounds = folder, schema, column, bounds
        folder.mkdir(parents=True, exist_ok=True)
        self._writers: dict[int, ipc.RecordBatchStreamWriter] = {}

    def _path(self, bucket: int) -> Path:
        return self.folder / f"bucket-{bucket:05d}.arrow"

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        bucket = _bucket_of(batch.column(self.column), self.bounds)
        order = np.argsort(bucket, kind="stable")
        ordered = batch.take(pa.array(order))
        ends = np.flatnonzero(np.diff(bucket[order])) + 1
        starts = np.concatenate([[0], ends])
        stops = np.concatenate([ends, [batch.num_rows]])
        for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
            self._writer(int(bucket[order[start]])).write_batch(ordered.slice(start, stop - start))

    def _writer(self, bucket: int) -> ipc.RecordBatchStreamWriter:
        if bucket not in self._writers:
            self._writers[bucket] = ipc.new_stream(self._path(bucket), self.schema)
        return self._writers[bucket]

    def drain(self) -> Iterator[tuple[str, Iterator[pa.RecordBatch]]]:
        """Each bucket in order, as ("range" | "bound", its batches); a bucket's file is removed
        once read."""
        self.close()
        for bucket in range(2 * len(self.bounds) + 2):
            path = self._path(bucket)
            if path.is_file():
                kind = "bound" if bucket % 2 else "range"  # a bound's or the nulls': one key
                yield kind, _read_stream(path)
                path.unlink(missing_ok=True)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def _read_stream(path: Path) -> Iterator[pa.RecordBatch]:
    with pa.OSFile(str(path), "rb") as source:
        yield from ipc.open_stream(source)


def _bounds(values: pa.ChunkedArray, ranges: int) -> pa.Array:
    """Up to `ranges - 1` distinct values of `values` at its quantiles (by rows), ascending."""
    counts = pc.value_counts(values.drop_null()).flatten()
    distinct, rows = counts[0], counts[1]
    if len(distinct) == 0:
        return distinct
    order = pc.array_sort_indices(distinct)
    distinct, rows = distinct.take(order), np.asarray(rows.take(order))
    position = np.cumsum(rows) - rows  # rows before each value
    wanted = np.arange(1, ranges) * (position[-1] + rows[-1]) / ranges
    picks = np.unique(np.searchsorted(position, wanted, side="right") - 1)
    return distinct.take(pa.array(picks[picks >= 0]))


def _bucket_of(values: pa.Array, bounds: pa.Array) -> np.ndarray:
    """The bucket of each value (see `_Buckets`), through the value's rank among the bounds."""
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary
    # the position of each distinct value among the bounds, and whether it is one of them
    both = pa.concat_arrays([bounds.cast(distinct.type), distinct])
    ranks = np.empty(len(both), dtype=np.int64)
    order = np.asarray(pc.array_sort_indices(both))  # stable: a bound before an equal value
    ranks[order] = np.arange(len(both))
    bound_rank = ranks[: len(bounds)]
    value_rank = ranks[len(bounds) :]
    below = np.searchsorted(bound_rank, value_rank)  # bounds before the value
    equal = pc.is_in(distinct, value_set=bounds.cast(distinct.type)).to_numpy(zero_copy_only=False)
    per_value = np.where(equal, 2 * below - 1, 2 * below)
    nulls = 2 * len(bounds) + 1
    indices = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
    return np.append(per_value, nulls)[indices]


def sort_order(column: pa.ChunkedArray) -> pa.Array:
    """The stable ascending order of `column`, nulls last: the same as `pc.sort_indices`, got by
    ranking the column's distinct values and sorting the ranks (integers) instead of the values."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    values = encoded.dictionary
    rank = np.empty(len(values) + 1, dtype=np.int64)
    rank[np.asarray(pc.array_sort_indices(values))] = np.arange(len(values))  # values hold no null
    rank[len(values)] = len(values)  # a null: after every value
    codes = encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
    return pa.array(np.argsort(rank[codes], kind="stable"))


def _in_order(table: pa.Table, order: pa.Array, sink: Callable[[pa.Table], None]) -> None:
    """Hand `table`'s rows in `order` to `sink`, a row group at a time: the next row group is
    gathered on a second thread while the sink writes this one (both release the GIL), so at most
    two row groups' copies are held besides the table."""
    starts = range(0, table.num_rows, ROW_GROUP_ROWS)
    with ThreadPoolExecutor(1) as pool:
        gathering = pool.submit(table.take, order.slice(0, ROW_GROUP_ROWS))
        for start in starts:
            part = gathering.result()
            if start + ROW_GROUP_ROWS < table.num_rows:
                gathering = pool.submit(table.take, order.slice(start + ROW_GROUP_ROWS, ROW_GROUP_ROWS))
            sink(part)


def clustered_by(schema: pa.Schema) -> str | None:
    """The column a partition of this schema is sorted by (None: it is left in the read order)."""
    return CLUSTER_COLUMN if CLUSTER_COLUMN in schema.names else None
