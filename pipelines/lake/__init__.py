"""The Parquet lake: the one owner of paths, file names, partition layout, staging and manifests.

Public API:
    Lake(root)                     every read and write of the lake (source-table partitions,
                                   sharded stage outputs and their plans, quality results,
                                   quarantine, run-state files)
    read_dataset(cfg, dataset, d)  a canonical dataset as of a night, conformed to its contract
    dataset_files(cfg, dataset, d) the Parquet files of a snapshot dataset (streamed readers)

Contract: nothing outside this package builds a lake path or names a lake file; partitions
appear atomically (staged, then renamed) with a manifest.
"""

from pipelines.lake.datasets import dataset_files, read_dataset
from pipelines.lake.store import MANIFEST, Lake, read_manifest, read_partition

__all__ = ["MANIFEST", "Lake", "dataset_files", "read_dataset", "read_manifest", "read_partition"]
