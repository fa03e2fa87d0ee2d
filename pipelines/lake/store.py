"""The Parquet lake: the only code that knows paths, file names, partition layout and staging.

Layout (Hive-partitioned, readable by DuckDB, pandas, pyarrow and Spark):

    <lake>/<source>/<table>/snapshot_date=YYYY-MM-DD/part-00000.parquet     source tables
    <lake>/<source>/<table>/snapshot_date=YYYY-MM-DD/_manifest.json
    <lake>/_seam/<output>/run_date=YYYY-MM-DD/shard=NNNNN/part-00000.parquet  sharded outputs
    <lake>/_seam/quality_<dataset>/run_date=YYYY-MM-DD/part-00000.parquet   quality results
    <lake>/_seam/quarantine_<dataset>/run_date=YYYY-MM-DD/part-00000.parquet
    <lake>/_state/<kind>/<source>/<table>.json                              run state files

A partition is written into a hidden temporary folder beside its final place and renamed into
place only when complete, so readers and re-runs never see half a partition.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import MissingInputError

MANIFEST = "_manifest.json"
DATA_FILE = "part-00000.parquet"
COMPRESSION = "zstd"
_SNAPSHOT_KEY = "snapshot_date"
_RUN_KEY = "run_date"
_OUTPUTS = "_seam"
_STATE = "_state"


@dataclass(frozen=True)
class StagedPartition:
    """A partition being written: its data file and manifest go in `folder` until commit."""

    folder: Path

    @property
    def data_file(self) -> Path:
        return self.folder / DATA_FILE

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_manifest(self.folder, manifest)


@dataclass(frozen=True)
class Lake:
    """One lake root; every path, read and write of the lake goes through this object."""

    root: Path

    # --- source tables --------------------------------------------------------------------
    def _table_dir(self, source: str, table: str) -> Path:
        return Path(self.root) / source / table

    def table_partition(self, source: str, table: str, day: date) -> Path:
        """The folder of one night's partition of a source table (for messages and manifests)."""
        return self._table_dir(source, table) / f"{_SNAPSHOT_KEY}={day.isoformat()}"

    def table_days(self, source: str, table: str) -> list[date]:
        """Nights with a complete partition of the table, oldest first."""
        return _complete_days(self._table_dir(source, table), _SNAPSHOT_KEY)

    def table_files(self, source: str, table: str, day: date) -> tuple[Path, ...]:
        """The Parquet files of one complete partition (raises `MissingInputError` if there is none)."""
        return _data_files(self.table_partition(source, table, day), f"seam extract --date {day}")

    def table_manifest(self, source: str, table: str, day: date) -> dict[str, Any] | None:
        return read_manifest(self.table_partition(source, table, day))

    def read_table(
        self, source: str, table: str, day: date, *, columns: list[str] | None = None, filters: Any = None
    ) -> pa.Table:
        """One partition; `filters` (pyarrow DNF, e.g. [("sku", "in", [...])]) are pushed down to
        the Parquet row groups."""
        files = self.table_files(source, table, day)
        return pq.ParquetDataset(list(files), partitioning=None, filters=filters).read(columns=columns)

    @contextmanager
    def stage_table(self, source: str, table: str, day: date) -> Iterator[StagedPartition]:
        """Write one night's partition of a table; it appears atomically when the block ends."""
        with staged_partition(self.table_partition(source, table, day)) as tmp:
            yield StagedPartition(tmp)

    # --- stage outputs ----------------------------------------------------------------------
    def _output_dir(self, output: str) -> Path:
        return Path(self.root) / _OUTPUTS / output

    def output_partition(self, output: str, run_date: date) -> Path:
        """The folder of a stage output for one night (for messages)."""
        return self._output_dir(output) / f"{_RUN_KEY}={run_date.isoformat()}"

    def _shard_dir(self, output: str, run_date: date, shard: int) -> Path:
        return self.output_partition(output, run_date) / f"shard={shard:05d}"

    def write_shard_plan(self, output: str, run_date: date, shards: int) -> None:
        """Declare that `output` for the night comes in `shards` shards (drops shards of an older plan)."""
        night = self.output_partition(output, run_date)
        night.mkdir(parents=True, exist_ok=True)
        for old in night.glob("shard=*"):
            if int(old.name.split("=", 1)[1]) >= shards:
                shutil.rmtree(old, ignore_errors=True)
        tmp = night / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps({"shards": shards, "run_date": run_date.isoformat()}) + "\n")
        tmp.replace(night / MANIFEST)

    def read_shard_plan(self, output: str, run_date: date) -> int | None:
        plan = read_manifest(self.output_partition(output, run_date))
        return int(plan["shards"]) if plan and "shards" in plan else None

    def write_shard(
        self, output: str, run_date: date, shard: int, frame: pd.DataFrame, manifest: dict[str, Any]
    ) -> Path:
        """One shard of a night's output, atomically; returns its folder."""
        return write_frame(self._shard_dir(output, run_date, shard), frame, manifest=manifest)

    def read_shard(self, output: str, run_date: date, shard: int) -> pd.DataFrame:
        """One shard of a night's output."""
        return read_partition(self._shard_dir(output, run_date, shard))

    def read_output(self, output: str, run_date: date) -> pd.DataFrame | None:
        """All shards of a night's output, or None when the night has none or is incomplete."""
        shards = self.read_shard_plan(output, run_date)
        if not shards:
            return None
        folders = [self._shard_dir(output, run_date, k) for k in range(shards)]
        if not all((p / MANIFEST).is_file() for p in folders):
            return None
        return pd.concat([read_partition(p) for p in folders], ignore_index=True)

    def output_days(self, output: str) -> list[date]:
        return _complete_days(self._output_dir(output), _RUN_KEY)

    def latest_complete_output(self, output: str, run_date: date) -> tuple[date, pd.DataFrame] | None:
        """The newest complete output at or before `run_date`: (night, rows) of the last good night."""
        for night in reversed([d for d in self.output_days(output) if d <= run_date]):
            frame = self.read_output(output, night)
            if frame is not None:
                return night, frame
        return None

    # --- quality results and quarantine ----------------------------------------------------
    def write_quality(self, dataset: str, run_date: date, frame: pd.DataFrame) -> Path:
        return write_frame(
            self.output_partition(f"quality_{dataset}", run_date),
            frame,
            manifest={"dataset": dataset, "run_date": run_date.isoformat()},
        )

    def read_quality(self, dataset: str, run_date: date) -> pd.DataFrame | None:
        """A dataset's quality results of the night, or None when it was not validated."""
        folder = self.output_partition(f"quality_{dataset}", run_date)
        return pd.read_parquet(folder / DATA_FILE) if (folder / DATA_FILE).is_file() else None

    def quarantine_partition(self, dataset: str, run_date: date) -> Path:
        return self.output_partition(f"quarantine_{dataset}", run_date)

    def write_quarantine(
        self, dataset: str, run_date: date, frame: pd.DataFrame, manifest: dict[str, Any] | None = None
    ) -> Path:
        return write_frame(self.quarantine_partition(dataset, run_date), frame, manifest=manifest)

    def read_quarantine(self, dataset: str, run_date: date) -> pd.DataFrame | None:
        folder = self.quarantine_partition(dataset, run_date)
        return pd.read_parquet(folder / DATA_FILE) if (folder / DATA_FILE).is_file() else None

    # --- run-state files ----------------------------------------------------------------------
    def read_state(self, kind: str, source: str, table: str) -> dict[str, Any] | None:
        path = self._state_file(kind, source, table)
        return json.loads(path.read_text()) if path.is_file() else None

    def write_state(self, kind: str, source: str, table: str, state: dict[str, Any]) -> None:
        """Replace a state file atomically."""
        path = self._state_file(kind, source, table)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.replace(path)

    def _state_file(self, kind: str, source: str, table: str) -> Path:
        return Path(self.root) / _STATE / kind / source / f"{table}.json"


# --- partitions -----------------------------------------------------------------------------
def _complete_days(base: Path, key: str) -> list[date]:
    if not base.is_dir():
        return []
    return sorted(
        date.fromisoformat(p.name.split("=", 1)[1])
        for p in base.iterdir()
        if p.is_dir() and p.name.startswith(f"{key}=") and (p / MANIFEST).is_file()
    )


def _data_files(folder: Path, fix: str) -> tuple[Path, ...]:
    files = tuple(sorted(folder.glob("part-*.parquet")))
    if not files:
        raise MissingInputError(f"the lake has no partition {folder}; run `{fix}` first")
    return files


@contextmanager
def staged_partition(final: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `final` in one rename.

    A crash leaves only a hidden `.tmp-*` folder that the next write of the partition removes.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".tmp-{final.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _fsync_dir(tmp)
        old = None
        if final.exists():
            old = final.parent / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_frame(final: Path, df: pd.DataFrame, *, manifest: dict[str, Any] | None = None) -> Path:
    """Write one DataFrame as a complete partition (atomically); returns the partition folder."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    with staged_partition(final) as tmp:
        pq.write_table(table, tmp / DATA_FILE, compression=COMPRESSION)
        write_manifest(tmp, {"rows": table.num_rows, **(manifest or {})})
    return final


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def read_partition(folder: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read all Parquet files of one complete partition into pandas."""
    files = _data_files(folder, "the step that writes it")
    return pq.ParquetDataset(list(files), partitioning=None).read(columns=columns).to_pandas()
