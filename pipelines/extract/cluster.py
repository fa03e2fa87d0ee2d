"""Lay an extracted partition out by SKU, so that a shard reads only its part of the night.

A night's shards each hold a range of SKUs (`pipelines.sharding.assign_shards`), and read the
night's rows with a SKU filter.  When the rows are in the order the database gave them, every row
group holds SKUs of every shard and every shard decodes the whole file.  Sorted by SKU, in row
groups of `ROW_GROUP_ROWS`, a shard's filter falls in a few row groups (their statistics say which;
`pipelines.lake.store.prunable`).

A night that fits in `BUFFER_BYTES` of Arrow is sorted in memory as it is written (one stable
sort, nothing written twice).  A larger one is written as read, then sorted by DuckDB over the
staged file within a memory limit (spilling to the staging folder beyond it).  Either way the file
holds the same rows and types as extracted, with the partition's own Arrow schema, and the rows of
one SKU in the order they were read.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

CLUSTER_COLUMN = "sku"
ROW_GROUP_ROWS = 65_536
# what a clustered extraction holds besides a batch: a night up to BUFFER_BYTES of Arrow is sorted
# in memory (plus one row group's copy); a larger one by DuckDB within SORT_MEMORY
SORT_MEMORY = "128MB"
BUFFER_BYTES = 128 * 1024 * 1024


class PartitionWriter:
    """Writes a partition's batches to `path`: as they come, or, with `cluster`, sorted by that
    column (in memory up to `buffer_bytes`, by `cluster_file` beyond)."""

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
        self.buffer_bytes = BUFFER_BYTES if buffer_bytes is None else buffer_bytes
        self._pending: list[pa.RecordBatch] = []
        self._size = 0
        self._writer: pq.ParquetWriter | None = None
        self.spilled = False  # the night outgrew the buffer: sorted by DuckDB at close

    @property
    def _unsorted(self) -> Path:
        """Where a night that outgrew the buffer is written as read (uncompressed: it is read once,
        by the sort, and removed)."""
        return self.path.with_name(f"unsorted-{self.path.name}")

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if self.cluster is None or self.spilled:
            self._open().write_batch(batch)
            return
        self._pending.append(batch)
        self._size += batch.nbytes
        if self._size > self.buffer_bytes:
            self.spilled = True
            writer = self._open()
            for pending in self._pending:
                writer.write_batch(pending)
            self._pending.clear()

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            path, compression = (self._unsorted, "none") if self.spilled else (self.path, self.compression)
            self._writer = pq.ParquetWriter(path, self.schema, compression=compression)
        return self._writer

    def close(self) -> None:
        """Finish the file (an empty one when no batch came)."""
        if self.cluster is not None and not self.spilled and self._pending:
            table = pa.Table.from_batches(self._pending, schema=self.schema)
            self._pending.clear()
            _write_in_order(self._open(), table, sort_order(table.column(self.cluster)))
        self._open().close()
        if self.spilled and self.cluster is not None:
            cluster_file(self._unsorted, self.path, self.cluster, self.schema, compression=self.compression)
            self._unsorted.unlink()

    def abort(self) -> None:
        """Close what was opened, after a failure (the staged files are thrown away with their folder)."""
        self._pending.clear()
        if self._writer is not None:
            self._writer.close()


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


def _write_in_order(writer: pq.ParquetWriter, table: pa.Table, order: pa.Array) -> None:
    """Write `table`'s rows in `order`, one row group at a time: the next row group is gathered
    on a second thread while this one is encoded (both release the GIL), so at most two row
    groups' copies are held besides the table."""
    starts = range(0, table.num_rows, ROW_GROUP_ROWS)
    with ThreadPoolExecutor(1) as pool:
        gathering = pool.submit(table.take, order.slice(0, ROW_GROUP_ROWS))
        for start in starts:
            part = gathering.result()
            if start + ROW_GROUP_ROWS < table.num_rows:
                gathering = pool.submit(table.take, order.slice(start + ROW_GROUP_ROWS, ROW_GROUP_ROWS))
            writer.write_table(part)


def clustered_by(schema: pa.Schema) -> str | None:
    """The column a partition of this schema is sorted by (None: it is left in the read order)."""
    return CLUSTER_COLUMN if CLUSTER_COLUMN in schema.names else None


def cluster_file(source: Path, target: Path, column: str, schema: pa.Schema, *, compression: str) -> None:
    """Write the rows of the Parquet file `source` to `target` sorted by `column` (nulls last; ties
    in file order), in row groups of `ROW_GROUP_ROWS` rows, with `schema`; `target` appears only
    when complete (`source` may be `target`: it is then replaced)."""
    import duckdb

    out = target.with_name(target.name + ".sorted")
    spill = target.parent / "sort-spill"
    spill.mkdir(exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit='{SORT_MEMORY}'")
        con.execute(f"SET temp_directory='{spill.as_posix()}'")
        con.execute("SET threads=1")
        con.execute("SET TimeZone='UTC'")
        quoted = '"' + column.replace('"', '""') + '"'
        reader = con.sql(
            f"SELECT * EXCLUDE (file_row_number) FROM read_parquet($path, file_row_number = true) "
            f"ORDER BY {quoted} NULLS LAST, file_row_number",
            params={"path": source.as_posix()},
        ).to_arrow_reader(ROW_GROUP_ROWS)
        with pq.ParquetWriter(out, schema, compression=compression) as writer:
            pending: list[pa.RecordBatch] = []
            size = 0
            for batch in reader:
                pending.append(batch)
                size += batch.num_rows
                if size >= ROW_GROUP_ROWS:
                    size = _flush(writer, pending, schema)
            _flush(writer, pending, schema, last=True)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    out.replace(target)


def _flush(
    writer: pq.ParquetWriter, pending: list[pa.RecordBatch], schema: pa.Schema, *, last: bool = False
) -> int:
    """Write whole row groups of the pending batches (the rest too when `last`); returns the rows
    left pending."""
    if not pending:
        return 0
    table = pa.Table.from_batches(pending).cast(schema)
    whole = table.num_rows if last else table.num_rows - table.num_rows % ROW_GROUP_ROWS
    if whole:
        writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
    pending.clear()
    rest = table.slice(whole)
    if rest.num_rows:
        pending.extend(rest.to_batches())
    return rest.num_rows
