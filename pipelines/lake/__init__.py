"""The Parquet lake: the one owner of paths, file names, partition layout, staging and manifests.

Public API:
    Lake(root)                     every read and write of the lake (source-table partitions,
                                   sharded stage outputs and their plans, quality results,
                                   quarantine, run-state files, staging and its sweep,
                                   `spill()`: a task's scratch rows between two passes)
    HashBuckets(spill, name)       64-bit hashes kept in a spill, given back sorted by bucket
    read_dataset(cfg, dataset, d)  a canonical dataset as of a night, conformed to its contract:
                                   the union of every source feeding it, with a `source` column
    read_source_nights(cfg, ds, d) each source's Arrow tables of a dataset's night (a few columns,
                                   pushed-down filters), checked to agree on types
    iter_source_batches(cfg, ds, d, columns=)  the same rows a record batch at a time
    dataset_files(cfg, dataset, d) the Parquet files of a single-source snapshot (streamed readers)

Contract: one Hive layout (`source=`, `table=`, `run_date=` on every file, never repeated inside
it, dates as DATE); nothing outside this package builds a lake path or names a lake file;
partitions appear atomically (staged, then renamed) and count as complete once their manifest is
written.  See `pipelines.lake.store` for the layout and the README for reading it with DuckDB,
Polars, Spark and pandas.
"""

from pipelines.lake.datasets import (
    SourceNights,
    dataset_files,
    iter_source_batches,
    read_dataset,
    read_source_nights,
)
from pipelines.lake.spill import HashBuckets, Spill
from pipelines.lake.store import Lake, read_partition

__all__ = [
    "HashBuckets",
    "Lake",
    "SourceNights",
    "Spill",
    "dataset_files",
    "iter_source_batches",
    "read_dataset",
    "read_partition",
    "read_source_nights",
]
