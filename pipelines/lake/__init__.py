"""The Parquet lake: the one owner of paths, file names, partition layout, staging and manifests.

Public API:
    Lake(root)                     every read and write of the lake (source-table partitions,
                                   sharded stage outputs and their plans, quality results,
                                   quarantine, run-state files, staging and its sweep)
    read_dataset(cfg, dataset, d)  a canonical dataset as of a night, conformed to its contract
    dataset_files(cfg, dataset, d) the Parquet files of a snapshot dataset (streamed readers)

Contract: one Hive layout (`source=`, `table=`, `run_date=` on every file, never repeated inside
it, dates as DATE); nothing outside this package builds a lake path or names a lake file;
partitions appear atomically (staged, then renamed) and count as complete once their manifest is
written.  See `pipelines.lake.store` for the layout and the README for reading it with DuckDB,
Polars, Spark and pandas.
"""

from pipelines.lake.datasets import dataset_files, read_dataset
from pipelines.lake.store import Lake, read_partition

__all__ = ["Lake", "dataset_files", "read_dataset", "read_partition"]
