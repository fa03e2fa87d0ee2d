"""Lay an extracted partition out by SKU, so that a shard reads only its part of the night.

A night's shards each hold a range of SKUs (`pipelines.sharding.assign_shards`), and read the
night's rows with a SKU filter.  When the rows are in the order the database gave them, every row
group holds SKUs of every shard and every shard decodes the whole file.  Sorted by SKU, in row
groups of `ROW_GROUP_ROWS`, a shard's filter falls in a few row groups (their statistics say which;
`pipelines.lake.store.prunable`).

The sort runs in DuckDB over the staged file, within a memory limit (it spills to the staging
folder beyond it), and the sorted rows are written back with the partition's own Arrow schema: the
same rows and types as extracted, rows of one SKU in the order they were read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CLUSTER_COLUMN = "sku"
ROW_GROUP_ROWS = 65_536
SORT_MEMORY = "256MB"


def clustered_by(schema: pa.Schema) -> str | None:
    """The column a partition of this schema is sorted by (None: it is left in the read order)."""
    return CLUSTER_COLUMN if CLUSTER_COLUMN in schema.names else None


def cluster_file(path: Path, column: str, schema: pa.Schema, *, compression: str) -> None:
    """Rewrite the Parquet file at `path` sorted by `column` (nulls last; ties in file order), in
    row groups of `ROW_GROUP_ROWS` rows, with `schema`.  The file is replaced only when complete."""
    import duckdb

    out = path.with_name(path.name + ".sorted")
    spill = path.parent / "sort-spill"
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
            params={"path": path.as_posix()},
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
    out.replace(path)


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
