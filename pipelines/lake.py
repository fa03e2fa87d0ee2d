"""The Parquet lake: the only place that builds lake paths, and atomic partition writes.

Layout (Hive-partitioned, readable by DuckDB, pandas, pyarrow and Spark):

    <lake>/<source>/<table>/snapshot_date=YYYY-MM-DD/part-00000.parquet
    <lake>/<source>/<table>/snapshot_date=YYYY-MM-DD/_manifest.json
    <lake>/_seam/<output>/run_date=YYYY-MM-DD/part-00000.parquet   (stage outputs)
    <lake>/_state/watermarks/<source>/<table>.json

A partition is written into a hidden temporary folder beside its final place and
renamed into place only when complete, so readers and re-runs never see half a
partition.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "_manifest.json"
COMPRESSION = "zstd"


def partition_path(lake: Path, source: str, table: str, day: date, *, key: str = "snapshot_date") -> Path:
    """The folder of one partition."""
    return Path(lake) / source / table / f"{key}={day.isoformat()}"


def output_path(lake: Path, output: str, run_date: date) -> Path:
    """Folder of a stage output (quality results, forecasts, anomaly scores) for one night."""
    return partition_path(lake, "_seam", output, run_date, key="run_date")


def latest_output(lake: Path, output: str, run_date: date) -> tuple[date, Path] | None:
    """The newest complete output of a stage at or before `run_date` (the last good night)."""
    base = output_path(lake, output, run_date).parent
    if not base.is_dir():
        return None
    nights = sorted(
        date.fromisoformat(p.name.split("=", 1)[1])
        for p in base.iterdir()
        if p.is_dir() and p.name.startswith("run_date=") and (p / MANIFEST).is_file()
    )
    nights = [d for d in nights if d <= run_date]
    return (nights[-1], output_path(lake, output, nights[-1])) if nights else None


def state_path(lake: Path, *parts: str) -> Path:
    return Path(lake).joinpath("_state", *parts)


@contextmanager
def staged_partition(final: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `final` in one rename.

    A crash leaves only a hidden `.tmp-*` folder that readers ignore (names starting
    with '.' or '_' are skipped by pyarrow, DuckDB and Spark) and the next run removes.
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
        pq.write_table(table, tmp / "part-00000.parquet", compression=COMPRESSION)
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
    files = sorted(folder.glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"partition {folder} has no data files; run the step that writes it first")
    table = pq.ParquetDataset(files, partitioning=None).read(columns=columns)
    return table.to_pandas()


def read_arrow(folder: Path, columns: list[str] | None = None, filters: Any = None) -> pa.Table:
    """Read one partition; `filters` (pyarrow DNF, e.g. [("sku", "in", [...])]) are pushed down
    to the Parquet row groups."""
    files = sorted(folder.glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"partition {folder} has no data files; run the step that writes it first")
    return pq.ParquetDataset(files, partitioning=None, filters=filters).read(columns=columns)


# --- sharded stage outputs --------------------------------------------------------------------
# A night's forecasts or scores may be computed in shards (Airflow mapped tasks).  The night's
# folder then holds a plan (its _manifest.json says how many shards) and one complete folder per
# shard; readers only accept the night when every planned shard is there.
def shard_path(lake: Path, output: str, run_date: date, shard: int) -> Path:
    return output_path(lake, output, run_date) / f"shard={shard:05d}"


def write_plan(lake: Path, output: str, run_date: date, shards: int) -> None:
    """Declare that `output` for the night comes in `shards` shards (drops shards of an older plan)."""
    night = output_path(lake, output, run_date)
    night.mkdir(parents=True, exist_ok=True)
    for old in night.glob("shard=*"):
        if int(old.name.split("=", 1)[1]) >= shards:
            shutil.rmtree(old, ignore_errors=True)
    tmp = night / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"shards": shards, "run_date": run_date.isoformat()}) + "\n")
    tmp.replace(night / MANIFEST)


def read_output(lake: Path, output: str, run_date: date) -> pd.DataFrame | None:
    """All shards of a night's output, or None when the night has none or is incomplete."""
    night = output_path(lake, output, run_date)
    plan = read_manifest(night) if night.is_dir() else None
    if not plan:
        return None
    shards = [shard_path(lake, output, run_date, k) for k in range(int(plan.get("shards", 0)))]
    if not shards or not all((p / MANIFEST).is_file() for p in shards):
        return None
    return pd.concat([read_partition(p) for p in shards], ignore_index=True)


def latest_complete_output(lake: Path, output: str, run_date: date) -> tuple[date, pd.DataFrame] | None:
    """The newest complete output at or before `run_date`: (night, rows) of the last good night."""
    found = latest_output(lake, output, run_date)
    while found is not None:
        night, _ = found
        frame = read_output(lake, output, night)
        if frame is not None:
            return night, frame
        found = latest_output(lake, output, night - timedelta(days=1))
    return None


def partitions(lake: Path, source: str, table: str) -> list[date]:
    """Dates of the complete partitions of a table, oldest first."""
    base = Path(lake) / source / table
    if not base.is_dir():
        return []
    out = []
    for p in base.iterdir():
        if p.is_dir() and p.name.startswith("snapshot_date=") and (p / MANIFEST).is_file():
            out.append(date.fromisoformat(p.name.split("=", 1)[1]))
    return sorted(out)
