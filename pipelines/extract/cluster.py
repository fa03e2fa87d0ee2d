"""Lay an extracted partition out by SKU, so that a shard reads only its part of the night.

A night's shards each hold a range of SKUs (`pipelines.sharding.assign_shards`), and read the
night's rows with a SKU filter.  When the rows are in the order the database gave them, every row
group holds SKUs of every shard and every shard decodes the whole file.  Sorted by SKU, in row
groups of `ROW_GROUP_ROWS`, a shard's filter falls in a few row groups (their statistics say which;
`pipelines.lake.store.prunable`).

The sort holds at most `BUFFER_BYTES` of rows: a night that fits is sorted in memory as it is
written; a larger one is cut into runs of that size, each sorted and written uncompressed next to
the partition, and the runs are then merged into the partition (an external merge sort: the merge
holds one batch of each run).  Either way the file holds the same rows and types as extracted,
with the partition's own Arrow schema, nulls last, and the rows of one SKU in the order they were
read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

CLUSTER_COLUMN = "sku"
ROW_GROUP_ROWS = 65_536
BUFFER_BYTES = 64 * 1024 * 1024  # the rows a clustered extraction holds (besides one batch)
MERGE_ROWS = 8_192  # rows of each run the merge holds


def clustered_by(schema: pa.Schema) -> str | None:
    """The column a partition of this schema is sorted by (None: it is left in the read order)."""
    return CLUSTER_COLUMN if CLUSTER_COLUMN in schema.names else None


class PartitionWriter:
    """Writes a partition's batches to `path`: as they come, or, with `cluster`, sorted by that
    column (in memory up to `buffer_bytes`, by sorted runs merged at `close` beyond)."""

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
        self.runs: list[Path] = []  # sorted runs written so far (the night outgrew the buffer)

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if self.cluster is None:
            self._open().write_batch(batch)
            return
        self._pending.append(batch)
        self._size += batch.nbytes
        if self._size > self.buffer_bytes:
            self._write_run()

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema, compression=self.compression)
        return self._writer

    def _sorted_pending(self) -> tuple[pa.Table, pa.Array]:
        assert self.cluster is not None
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._pending.clear()
        self._size = 0
        return table, pc.sort_indices(table, [(self.cluster, "ascending", "at_end")])  # stable

    def _write_run(self) -> None:
        """Sort the buffer and write it as the next run (uncompressed: it is read once, by the merge)."""
        table, order = self._sorted_pending()
        run = self.path.with_name(f"run-{len(self.runs):05d}-{self.path.name}")
        with pq.ParquetWriter(run, self.schema, compression="none") as writer:
            for start in range(0, table.num_rows, ROW_GROUP_ROWS):  # one row group's copy at a time
                writer.write_table(table.take(order.slice(start, ROW_GROUP_ROWS)))
        self.runs.append(run)

    def close(self) -> None:
        """Finish the file (an empty one when no batch came)."""
        if self.cluster is not None and self.runs:
            if self._pending:
                self._write_run()
            try:
                _merge_runs(self.runs, self._open(), self.cluster, self.schema)
            finally:
                for run in self.runs:
                    run.unlink(missing_ok=True)
        elif self.cluster is not None and self._pending:
            table, order = self._sorted_pending()
            writer = self._open()
            for start in range(0, table.num_rows, ROW_GROUP_ROWS):
                writer.write_table(table.take(order.slice(start, ROW_GROUP_ROWS)))
        self._open().close()

    def abort(self) -> None:
        """Close what was opened, after a failure (the staged files go with their folder)."""
        self._pending.clear()
        if self._writer is not None:
            self._writer.close()


def _batches(run: Path) -> Iterator[pa.Table]:
    for batch in pq.ParquetFile(run).iter_batches(batch_size=MERGE_ROWS):
        if batch.num_rows:
            yield pa.Table.from_batches([batch])


def _merge_runs(runs: list[Path], writer: pq.ParquetWriter, column: str, schema: pa.Schema) -> None:
    """Merge runs sorted by `column` (nulls last) into `writer`, in row groups of `ROW_GROUP_ROWS`:
    rows with equal keys keep the order of the runs, then their order within a run (the order read).

    Each step takes from every run's current batch the rows up to the smallest of the batches' last
    keys (a run whose batch ends on it reads on until its key changes, so every row up to it is in
    hand), sorts them stably and writes them."""
    sources = [_batches(run) for run in runs]
    heads: list[pa.Table | None] = [next(it, None) for it in sources]
    out = _RowGroups(writer, schema)
    while True:
        live = [i for i, head in enumerate(heads) if head is not None]
        if not live:
            break
        lasts = [heads[i].column(column)[-1] for i in live]  # type: ignore[union-attr]
        known = [last for last in lasts if last.is_valid]
        if not known:  # every run's keys end in its batch in hand: they, then the nulls
            _merge_nulls_last(heads, sources, live, column, out)
            break
        bound = min(known, key=lambda s: s.as_py())
        # a run whose batch ends on the bound may hold more of it in its next batches: read them
        # in, so that every row up to the bound is in hand (ties then keep the order of the runs)
        for i in live:
            while _last(heads[i], column) == bound.as_py():
                more = next(sources[i], None)
                if more is None:
                    break
                heads[i] = pa.concat_tables([heads[i], more])
        taken = []
        for i in live:
            head = heads[i]
            assert head is not None
            upto = int(pc.sum(pc.fill_null(pc.less_equal(head.column(column), bound), False)).as_py() or 0)
            if upto:
                taken.append(head.slice(0, upto))
            heads[i] = head.slice(upto) if upto < head.num_rows else next(sources[i], None)
        step = pa.concat_tables(taken)
        out.add(step.take(pc.sort_indices(step, [(column, "ascending", "at_end")])))
    out.finish()


def _last(head: pa.Table | None, column: str) -> object:
    """The last key of a run's batch in hand (None: a null key, or no batch)."""
    return head.column(column)[-1].as_py() if head is not None else None


def _merge_nulls_last(
    heads: list[pa.Table | None],
    sources: list[Iterator[pa.Table]],
    live: list[int],
    column: str,
    out: _RowGroups,
) -> None:
    """The end of a merge whose runs' current batches all end with a null key: their keys merged,
    then each run's null keys, run after run (nulls tie; ties keep the order of the runs)."""
    taken = []
    for i in live:
        head = heads[i]
        assert head is not None
        valid = int(pc.sum(pc.is_valid(head.column(column))).as_py() or 0)
        if valid:
            taken.append(head.slice(0, valid))
            heads[i] = head.slice(valid)
    if taken:
        step = pa.concat_tables(taken)
        out.add(step.take(pc.sort_indices(step, [(column, "ascending", "at_end")])))
    for i in live:
        while heads[i] is not None:
            out.add(heads[i])
            heads[i] = next(sources[i], None)


class _RowGroups:
    """Writes rows as they come in row groups of `ROW_GROUP_ROWS`."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema) -> None:
        self.writer, self.schema = writer, schema
        self.pending: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        if self.rows >= ROW_GROUP_ROWS:
            whole = pa.concat_tables(self.pending)
            cut = whole.num_rows - whole.num_rows % ROW_GROUP_ROWS
            self.writer.write_table(whole.slice(0, cut).cast(self.schema), row_group_size=ROW_GROUP_ROWS)
            rest = whole.slice(cut)
            self.pending, self.rows = ([rest] if rest.num_rows else []), rest.num_rows

    def finish(self) -> None:
        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending).cast(self.schema))
        self.pending, self.rows = [], 0
