"""The Parquet lake: the only code that knows paths, file names, partition layout and staging.

One Hive layout for everything, so that DuckDB, Polars, Spark, pyarrow and pandas read any table,
any output, or the whole lake with one glob (`<lake>/source=*/**/*.parquet`):

    <lake>/source=<source>/table=<table>/run_date=YYYY-MM-DD/part-00000.parquet     source tables
    <lake>/source=_seam/table=forecasts/run_date=YYYY-MM-DD/part-shard-00003.parquet seam's outputs
    <lake>/source=_seam/table=anomalies/run_date=.../part-shard-00000.parquet
    <lake>/source=_seam/table=quality/run_date=.../dataset-order_lines.parquet       quality results
    <lake>/source=_seam/table=quarantine_<dataset>/run_date=.../part-00000.parquet   quarantined rows
    <lake>/_exchange/table=record_fits/run_date=.../part-shard-00003.arrow         steps' exchanges
    <lake>/_meta/source=.../table=.../run_date=YYYY-MM-DD[.shard-00003].json       manifests
    <lake>/_staging/<host>-<pid>-<id>/                                             writes in progress
    <lake>/_state/<kind>/<source>/<table>.json                                     run state files

An exchange between two steps (`Lake.write_exchange`) is Arrow IPC, outside the datasets; its
manifests and shard plan are a sharded output's, and it is pruned with them.  Every file has the
same partition keys (`source`, `table`, `run_date`), which are never repeated
inside the files; dates inside the files are DATE.  A partition (or a shard's file) is written in
`_staging` on the same filesystem and renamed into place only when complete; its manifest is
written after it, and seam treats a partition as complete only when its manifest exists.  Staging
left by a process that died is swept by the next write on the same host (or after a day).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.errors import MissingInputError
from pipelines.lake.spill import Spill

DATA_FILE = "part-00000.parquet"
COMPRESSION = "zstd"
# an exchange file is read in small pieces, many times: LZ4 decodes them at about half the cost
EXCHANGE_COMPRESSION = "lz4"
# bytes a reader of record batches (`iter_output`) buffers of a column chunk at a time
READ_BUFFER = 1 << 20
KEY = "run_date"  # the partition key of every dataset: the night
OUTPUTS = "_seam"  # the `source` of seam's own outputs
_META, _STAGING, _STATE, _EXCHANGE = "_meta", "_staging", "_state", "_exchange"
STALE_STAGING_SECONDS = 24 * 3600


def _date_columns() -> frozenset[str]:
    from pipelines.results import DATE_COLUMNS

    return DATE_COLUMNS


@dataclass
class StagedPartition:
    """A partition being written: its files go in `folder`; the manifest is written at commit."""

    folder: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def data_file(self) -> Path:
        return self.folder / DATA_FILE

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.manifest = manifest


@dataclass(frozen=True)
class Lake:
    """One lake root; every path, read and write of the lake goes through this object."""

    root: Path

    # --- layout -------------------------------------------------------------------------------
    def _dataset(self, source: str, table: str) -> Path:
        return Path(self.root) / f"source={source}" / f"table={table}"

    def _partition(self, source: str, table: str, day: date) -> Path:
        return self._dataset(source, table) / f"{KEY}={day.isoformat()}"

    def _meta(self, source: str, table: str, day: date, suffix: str = "") -> Path:
        return (
            Path(self.root)
            / _META
            / f"source={source}"
            / f"table={table}"
            / f"{KEY}={day.isoformat()}{suffix}.json"
        )

    def _days(self, source: str, table: str) -> list[date]:
        """Nights whose manifest exists (the partition is complete), oldest first."""
        folder = self._meta(source, table, date(2000, 1, 1)).parent
        if not folder.is_dir():
            return []
        prefix = f"{KEY}="
        return sorted(
            date.fromisoformat(p.name[len(prefix) : len(prefix) + 10])
            for p in folder.iterdir()
            if p.name.startswith(prefix) and p.name.endswith(".json") and ".shard-" not in p.name
        )

    # --- source tables ------------------------------------------------------------------------
    def table_partition(self, source: str, table: str, day: date) -> Path:
        """The folder of one night's partition of a source table (for messages and readers)."""
        return self._partition(source, table, day)

    def table_days(self, source: str, table: str) -> list[date]:
        """Nights with a complete partition of the table, oldest first."""
        return [d for d in self._days(source, table) if self._partition(source, table, d).is_dir()]

    def table_files(self, source: str, table: str, day: date) -> tuple[Path, ...]:
        """The Parquet files of one complete partition (raises `MissingInputError` if there is none)."""
        return _data_files(self._partition(source, table, day), f"seam extract --date {day}")

    def table_manifest(self, source: str, table: str, day: date) -> dict[str, Any] | None:
        return _read_json(self._meta(source, table, day))

    def read_table(
        self, source: str, table: str, day: date, *, columns: list[str] | None = None, filters: Any = None
    ) -> pa.Table:
        """One partition; `filters` (pyarrow DNF, e.g. [("sku", "in", [...])]) are pushed down to
        the Parquet row groups.

        Read on one thread, a column chunk at a time (no pre-buffering): a step reads a shard after
        another, and the heap each read leaves behind is smaller than after Arrow's threads each
        decoded row groups with their column chunks buffered ahead (BENCHMARKS.md: 243 against
        252 MB after the 64x night's 128 shards, at 5.5 ms more a shard)."""
        files = self.table_files(source, table, day)
        dataset = pq.ParquetDataset(
            list(files), partitioning=None, filters=prunable(filters), pre_buffer=False
        )
        return dataset.read(columns=columns, use_threads=False)

    @contextmanager
    def stage_table(self, source: str, table: str, day: date) -> Iterator[StagedPartition]:
        """Write one night's partition of a table; it appears atomically when the block ends."""
        final = self._partition(source, table, day)
        with self.staging() as tmp:
            staged = StagedPartition(tmp)
            yield staged
            _replace_folder(tmp, final)
            _write_json(self._meta(source, table, day), staged.manifest)

    # --- what is there, and removing it ------------------------------------------------------
    def datasets(self) -> list[tuple[str, str]]:
        """(source, table) of every dataset in the lake, seam's outputs (`_seam`) included."""
        out = []
        for src in sorted(Path(self.root).glob("source=*")):
            for tbl in sorted(src.glob("table=*")):
                out.append((src.name.split("=", 1)[1], tbl.name.split("=", 1)[1]))
        return out

    def partition_days(self, source: str, table: str) -> list[date]:
        """Nights with a partition folder of the dataset (complete or not), oldest first."""
        return _night_folders(self._dataset(source, table))

    def remove_partition(self, source: str, table: str, day: date) -> Path:
        """Remove one night of a dataset: its manifests first (seam then sees it as absent), then
        its files.  Returns the folder removed."""
        meta = self._meta(source, table, day)
        for m in meta.parent.glob(f"{KEY}={day.isoformat()}*.json"):
            m.unlink(missing_ok=True)
        folder = self._partition(source, table, day)
        shutil.rmtree(folder, ignore_errors=True)
        if source == OUTPUTS:
            shutil.rmtree(self.exchange_partition(table, day), ignore_errors=True)
        return folder

    # --- staging ------------------------------------------------------------------------------
    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A private folder in `<lake>/_staging` (same filesystem: renames out of it are atomic);
        removed when the block ends, whatever happens.  Staging of writers that died is swept first.
        A full disk or a read-only lake is a ConfigError naming the lake (`lake:` in the config)."""
        base = Path(self.root) / _STAGING
        with writable(Path(self.root), "the lake (`lake:` in the config)"):
            base.mkdir(parents=True, exist_ok=True)
            self.sweep_staging()
            tmp = base / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                yield tmp
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    @contextmanager
    def spill(self) -> Iterator[Spill]:
        """Scratch files for a task's rows between two passes over them (`Spill`), in a staging
        folder removed when the block ends."""
        with self.staging() as tmp:
            spill = Spill(tmp)
            try:
                yield spill
            finally:
                spill.close()

    def sweep_staging(self) -> list[Path]:
        """Remove staging left by processes that died (on this host), or older than a day."""
        base = Path(self.root) / _STAGING
        if not base.is_dir():
            return []
        removed, here = [], socket.gethostname()
        for entry in base.iterdir():
            host, pid, _ = [*entry.name.rsplit("-", 2), "", ""][:3]
            dead = host == here and pid.isdigit() and not _alive(int(pid))
            if dead or time.time() - entry.stat().st_mtime > STALE_STAGING_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        return removed

    # --- stage outputs ------------------------------------------------------------------------
    def output_partition(self, output: str, run_date: date) -> Path:
        """The folder of a stage output for one night (for messages and readers)."""
        return self._partition(OUTPUTS, output, run_date)

    def write_shard_plan(self, output: str, run_date: date, shards: int) -> None:
        """Declare that `output` for the night comes in `shards` shards (drops shards of an older plan)."""
        folder = self.output_partition(output, run_date)
        exchange = self.exchange_partition(output, run_date)
        shard_files = [*folder.glob("part-shard-*.parquet"), *exchange.glob("part-shard-*.arrow")]
        for old in shard_files:
            if int(old.stem.rsplit("-", 1)[1]) >= shards:
                old.unlink(missing_ok=True)
                self._meta(OUTPUTS, output, run_date, f".shard-{old.stem.rsplit('-', 1)[1]}").unlink(
                    missing_ok=True
                )
        _write_json(self._meta(OUTPUTS, output, run_date), {"shards": shards, KEY: run_date.isoformat()})

    def read_shard_plan(self, output: str, run_date: date) -> int | None:
        plan = _read_json(self._meta(OUTPUTS, output, run_date))
        return int(plan["shards"]) if plan and "shards" in plan else None

    def annotate_shard_plan(self, output: str, run_date: date, key: str, value: Any) -> None:
        """Add a figure every shard of the night needs (JSON) to the night's shard plan."""
        path = self._meta(OUTPUTS, output, run_date)
        plan = _read_json(path)
        if not plan or "shards" not in plan:
            raise ValueError(f"no shard plan for {output} on {run_date} to annotate")
        with writable(Path(self.root), "the lake (`lake:` in the config)"):
            _write_json(path, {**plan, key: value})

    def shard_plan_notes(self, output: str, run_date: date) -> dict[str, Any]:
        """Everything the night's shard plan says besides the shard count."""
        plan = _read_json(self._meta(OUTPUTS, output, run_date)) or {}
        return {k: v for k, v in plan.items() if k not in ("shards", KEY)}

    def _shard_file(self, output: str, run_date: date, shard: int) -> Path:
        return self.output_partition(output, run_date) / f"part-shard-{shard:05d}.parquet"

    def write_shard(
        self,
        output: str,
        run_date: date,
        shard: int,
        frame: pd.DataFrame,
        manifest: dict[str, Any],
    ) -> Path:
        """One shard of a night's output, atomically; returns the night's output folder."""
        rows = self._write_file(frame, self._shard_file(output, run_date, shard))
        self._write_shard_manifest(output, run_date, shard, {"rows": rows, **manifest})
        return self.output_partition(output, run_date)

    def _write_shard_manifest(
        self, output: str, run_date: date, shard: int, manifest: dict[str, Any]
    ) -> None:
        with writable(Path(self.root), "the lake (`lake:` in the config)"):
            _write_json(self._meta(OUTPUTS, output, run_date, f".shard-{shard:05d}"), manifest)

    def exchange_partition(self, output: str, run_date: date) -> Path:
        """The folder of one night of an exchange between steps (outside every dataset)."""
        return Path(self.root) / _EXCHANGE / f"table={output}" / f"{KEY}={run_date.isoformat()}"

    def exchanges(self) -> list[str]:
        """The outputs that are exchanges between steps (`write_exchange`), by name."""
        return sorted(p.name.split("=", 1)[1] for p in (Path(self.root) / _EXCHANGE).glob("table=*"))

    def exchange_days(self, output: str) -> list[date]:
        """Nights with a folder of the exchange, oldest first."""
        return _night_folders(Path(self.root) / _EXCHANGE / f"table={output}")

    def _exchange_file(self, output: str, run_date: date, shard: int) -> Path:
        return self.exchange_partition(output, run_date) / _exchange_name(shard)

    def write_exchange(
        self,
        output: str,
        run_date: date,
        shard: int,
        frame: pd.DataFrame,
        *,
        by: str,
        parts: int,
        manifest: dict[str, Any],
    ) -> Path:
        """One shard of an exchange between two mapped steps, atomically: the rows of `frame` cut
        by the partition number in its column `by` (0 .. parts - 1), written as an Arrow IPC file
        whose record batch p holds partition p (the column `by` itself is not kept).

        Every reader of a partition reads it from every shard, so the cost of one read is paid
        shards x partitions times: an IPC batch is found from the file's small footer and decoded
        alone, where a Parquet file costs its footer, its statistics and a filter per read.  The
        file lives in `<lake>/_exchange/`, out of every reader of the lake's datasets (DuckDB,
        Polars, Spark, pyarrow); its manifest and shard plan are those of a sharded output, and
        `remove_partition` of the output's night removes it too."""
        rows = self._write_parts(
            self._exchange_file(output, run_date, shard), frame, by=by, parts=parts, what=output
        )
        self._write_shard_manifest(output, run_date, shard, {"rows": rows, "parts": parts, **manifest})
        return self.output_partition(output, run_date)

    def write_exchange_file(
        self, output: str, run_date: date, name: str, frame: pd.DataFrame, *, by: str, parts: int
    ) -> Path:
        """A file of the night's exchange that is no shard's (a figure of the whole night a step's
        tasks read their part of), cut by `by` as `write_exchange` cuts a shard's: record batch p
        holds partition p.  Returns its path."""
        final = self.exchange_partition(output, run_date) / f"{name}.arrow"
        self._write_parts(final, frame, by=by, parts=parts, what=f"{output}/{name}")
        return final

    def read_exchange_file(self, output: str, run_date: date, name: str, part: int | None = None) -> pa.Table:
        """Partition `part` of an exchange file (`write_exchange_file`), or all of it; raises
        `MissingInputError` when the night has no such file."""
        path = str(self.exchange_partition(output, run_date) / f"{name}.arrow")
        with _exchange_reader(path) as reader:
            if part is None:
                return reader.read_all()
            again = "it was written for another plan; run the step that writes it again"
            return pa.Table.from_batches([_exchange_batch(reader, part, path, again)])

    def _write_parts(self, final: Path, frame: pd.DataFrame, *, by: str, parts: int, what: str) -> int:
        """`frame` as an Arrow IPC file at `final` (staged, then renamed) whose record batch p holds
        the rows whose column `by` is p (the column itself not kept); returns the rows written."""
        import pyarrow.ipc as ipc

        ordered = frame.sort_values(by, kind="stable", ignore_index=True)
        cuts = np.searchsorted(ordered[by].to_numpy(), np.arange(parts + 1), side="left")
        if len(ordered) and not 0 <= ordered[by].iloc[0] <= ordered[by].iloc[-1] < parts:
            raise ValueError(f"the exchange {what}: a partition number in `{by}` is outside 0..{parts - 1}")
        table = _to_arrow(ordered.drop(columns=[by]))
        options = ipc.IpcWriteOptions(compression=EXCHANGE_COMPRESSION)
        # the writer closes (its footer written) before the file is published
        with self._published(final) as staged, ipc.new_file(staged, table.schema, options=options) as writer:
            for p in range(parts):
                part = table.slice(cuts[p], cuts[p + 1] - cuts[p]).combine_chunks()
                batches = part.to_batches()
                writer.write_batch(batches[0] if batches else _empty_batch(table.schema))
        return int(table.num_rows)

    def read_exchange(self, output: str, run_date: date, shards: Sequence[int], part: int) -> pd.DataFrame:
        """Partition `part` of the exchange (`write_exchange`) from each of `shards`, in that order,
        as one pandas frame (`read_exchange_table`, converted once)."""
        return self.read_exchange_table(output, run_date, shards, part).to_pandas(date_as_object=False)

    def read_exchange_table(self, output: str, run_date: date, shards: Sequence[int], part: int) -> pa.Table:
        """Partition `part` of the exchange (`write_exchange`) from each of `shards`, in that order,
        as one Arrow table (for a reader that keeps some rows before converting them).

        A reader pays this once per shard, and every partition's reader does: a shard's batch is
        read with one open of its file and no other file-system call.  The batches are copied
        into one when their schemas agree: every later operation on a table of many chunks pays
        per chunk and column (what `benchmarks/records_partitions.py` measures as the gathering)."""
        folder = str(self.exchange_partition(output, run_date))
        batches = []
        for shard in shards:
            path = f"{folder}/{_exchange_name(shard)}"
            with _exchange_reader(path) as reader:
                again = "it was written for another shard plan; run its shard again"
                batches.append(_exchange_batch(reader, part, path, again))
        if not batches:
            raise ValueError(f"reading the exchange {output} of {run_date} from no shard")
        if all(b.schema.equals(batches[0].schema, check_metadata=True) for b in batches):
            table = pa.Table.from_batches([pa.concat_batches(batches)])
        else:  # a column without a value in one shard has the null type there: promoted to the others'
            tables = [pa.Table.from_batches([b]) for b in batches]
            table = pa.concat_tables(tables, promote_options="permissive")
        return table

    def read_shard(
        self,
        output: str,
        run_date: date,
        shard: int,
        *,
        columns: list[str] | None = None,
        filters: Any = None,
    ) -> pd.DataFrame:
        """One shard of a night's output (only `columns`, only the rows `filters` select)."""
        return _read_file(
            self._shard_file(output, run_date, shard), run_date, columns=columns, filters=filters
        )

    def shard_manifest(self, output: str, run_date: date, shard: int) -> dict[str, Any] | None:
        """What the writer of a shard recorded with it (`write_shard`'s manifest and its row count);
        None while the shard is not written."""
        return _read_json(self._meta(OUTPUTS, output, run_date, f".shard-{shard:05d}"))

    def complete_shards(self, output: str, run_date: date) -> int | None:
        """The shard count of a night's output when every shard is written, else None."""
        shards = self.read_shard_plan(output, run_date)
        if not shards:
            return None
        done = [self._meta(OUTPUTS, output, run_date, f".shard-{k:05d}").is_file() for k in range(shards)]
        return shards if all(done) else None

    def read_output(self, output: str, run_date: date) -> pd.DataFrame | None:
        """All shards of a night's output, or None when the night has none or is incomplete."""
        shards = self.complete_shards(output, run_date)
        if shards is None:
            return None
        return pd.concat([self.read_shard(output, run_date, k) for k in range(shards)], ignore_index=True)

    def iter_output(
        self,
        output: str,
        run_date: date,
        *,
        columns: list[str] | None = None,
        filters: Any = None,
        batch_rows: int | None = None,
    ) -> Iterator[pd.DataFrame]:
        """A complete night's output one shard at a time (nothing when it is incomplete): only
        `columns`, only the rows `filters` (pyarrow DNF) select, so a reader holds one shard; with
        `batch_rows`, each shard in record batches of that many rows (an output written in one piece
        is one shard)."""
        for k in range(self.complete_shards(output, run_date) or 0):
            path = self._shard_file(output, run_date, k)
            if batch_rows is None:
                yield _read_file(path, run_date, columns=columns, filters=filters)
                continue
            if filters is not None:
                raise ValueError("iter_output: filters and batch_rows do not go together")
            # read a column chunk's pages through a small buffer, one column at a time: pyarrow's
            # default (every column chunk of a row group fetched whole, decoded by threads) holds
            # far more than one batch, and more the larger the file (BENCHMARKS.md, issue 19)
            source = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
            for batch in source.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
                frame = pa.Table.from_batches([batch]).to_pandas(date_as_object=False)
                frame.insert(0, KEY, pd.Timestamp(run_date))
                yield frame

    def latest_complete_night(self, output: str, run_date: date) -> date | None:
        """The newest night at or before `run_date` whose output is complete."""
        for night in reversed([d for d in self.output_days(output) if d <= run_date]):
            if self.complete_shards(output, night) is not None:
                return night
        return None

    def write_output(
        self,
        output: str,
        run_date: date,
        frame: pd.DataFrame | Iterable[pd.DataFrame],
        *,
        notes: dict[str, Any],
        typed_as: pd.DataFrame | None = None,
    ) -> Path:
        """A night's output that comes in one piece (one shard), with `notes` (JSON) in its plan.

        `frame` may come in parts (frames with the same columns), written one at a time as row
        groups of one file, so the writer holds one part; every part takes the column types of
        `typed_as` (a frame with a value in every column), or else of the first part."""
        self.write_shard_plan(output, run_date, 1)
        self.annotate_shard_plan(output, run_date, "notes", notes)
        if isinstance(frame, pd.DataFrame):
            return self.write_shard(output, run_date, 0, frame, manifest={"shards": 1})
        path = self._shard_file(output, run_date, 0)
        rows = 0
        schema = _to_arrow(typed_as).schema if typed_as is not None else None
        with self._published(path) as staged:
            writer: pq.ParquetWriter | None = None
            try:
                for part in frame:
                    table = _to_arrow(part)
                    schema = schema or table.schema
                    if table.column_names != schema.names:
                        raise ValueError(
                            f"write_output {output}: columns {table.column_names}, expected {schema.names}"
                        )
                    writer = writer or pq.ParquetWriter(staged, schema, compression=COMPRESSION)
                    writer.write_table(table.cast(schema))
                    rows += table.num_rows
                if writer is None:  # no part: a file of no rows
                    pq.write_table(
                        _to_arrow(typed_as if typed_as is not None else pd.DataFrame()).slice(0, 0),
                        staged,
                        compression=COMPRESSION,
                    )
            finally:
                if writer is not None:
                    writer.close()
        self._write_shard_manifest(output, run_date, 0, {"rows": rows, "shards": 1})
        return self.output_partition(output, run_date)

    def output_notes(self, output: str, run_date: date) -> dict[str, Any] | None:
        """The `notes` of a one-piece output (`write_output`), or None."""
        notes = self.shard_plan_notes(output, run_date).get("notes")
        return dict(notes) if isinstance(notes, dict) else None

    def output_days(self, output: str) -> list[date]:
        return self._days(OUTPUTS, output)

    # --- quality results and quarantine ---------------------------------------------------------
    def _quality_file(self, dataset: str, run_date: date) -> Path:
        return self.output_partition("quality", run_date) / f"dataset-{dataset}.parquet"

    def write_quality(self, dataset: str, run_date: date, frame: pd.DataFrame) -> Path:
        """A dataset's quality results of the night (one file of the night's `quality` partition)."""
        path = self._quality_file(dataset, run_date)
        self._write_file(frame, path)
        return path

    def read_quality(self, dataset: str, run_date: date) -> pd.DataFrame | None:
        """A dataset's quality results of the night, or None when it was not validated."""
        path = self._quality_file(dataset, run_date)
        return _read_file(path, run_date) if path.is_file() else None

    def quarantine_partition(self, dataset: str, run_date: date) -> Path:
        return self.output_partition(f"quarantine_{dataset}", run_date)

    def write_quarantine(
        self, dataset: str, run_date: date, frame: pd.DataFrame, manifest: dict[str, Any] | None = None
    ) -> Path:
        path = self.quarantine_partition(dataset, run_date) / DATA_FILE
        rows = self._write_file(frame, path)
        _write_json(
            self._meta(OUTPUTS, f"quarantine_{dataset}", run_date), {"rows": rows, **(manifest or {})}
        )
        return path.parent

    def read_quarantine(self, dataset: str, run_date: date) -> pd.DataFrame | None:
        path = self.quarantine_partition(dataset, run_date) / DATA_FILE
        return _read_file(path, run_date) if path.is_file() else None

    def _write_file(self, frame: pd.DataFrame, final: Path) -> int:
        """Write a frame as one Parquet file, atomically (staged, then renamed over `final`)."""
        table = _to_arrow(frame)
        with self._published(final) as staged:
            pq.write_table(table, staged, compression=COMPRESSION)
        return table.num_rows

    @contextmanager
    def _published(self, final: Path) -> Iterator[Path]:
        """A staging path for a file that replaces `final` when the block ends without error."""
        with self.staging() as tmp:
            yield tmp / final.name
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / final.name, final)
            _fsync_dir(final.parent)

    # --- run-state files ----------------------------------------------------------------------
    def read_state(self, kind: str, source: str, table: str) -> dict[str, Any] | None:
        return _read_json(self._state_file(kind, source, table))

    def write_state(self, kind: str, source: str, table: str, state: dict[str, Any]) -> None:
        """Replace a state file atomically."""
        with writable(Path(self.root), "the lake (`lake:` in the config)"):
            _write_json(self._state_file(kind, source, table), state)

    def _state_file(self, kind: str, source: str, table: str) -> Path:
        return Path(self.root) / _STATE / kind / source / f"{table}.json"


# --- files ------------------------------------------------------------------------------------
@contextmanager
def writable(path: Path, what: str = "the lake") -> Iterator[None]:
    """Turn a full disk, a read-only file system or missing permissions into one clear ConfigError
    naming the path and the fix (exit code 2), instead of an OSError traceback."""
    import errno

    from pipelines.errors import ConfigError

    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = "free disk space there, or point the setting at a larger disk"
        elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = "make it writable for this user, or point the setting at a writable folder"
        elif err.errno in (errno.ENOTDIR, errno.EEXIST):
            fix = "it (or a folder on its way) is a file; point the setting at a folder"
        else:
            raise
        raise ConfigError(f"cannot write {what} at {path}: {err.strerror}; {fix}") from None


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A frame as written to the lake: no partition column, dates as DATE."""
    table = pa.Table.from_pandas(frame.drop(columns=[KEY], errors="ignore"), preserve_index=False)
    dates = _date_columns()
    for i, f in enumerate(table.schema):
        if f.name in dates and pa.types.is_timestamp(f.type):
            table = table.set_column(i, f.name, pc.cast(table.column(i), pa.date32()))
    return table


def _night_folders(base: Path) -> list[date]:
    """The nights of the `run_date=` folders under `base`, oldest first."""
    prefix = f"{KEY}="
    return sorted(date.fromisoformat(p.name[len(prefix) :]) for p in base.glob(f"{prefix}*") if p.is_dir())


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def _read_file(
    path: Path, run_date: date, *, columns: list[str] | None = None, filters: Any = None
) -> pd.DataFrame:
    """A file of seam's outputs as pandas, with its partition column back (dates as datetime64)."""
    if not path.is_file():
        raise MissingInputError(f"the lake has no file {path}; run the step that writes it first")
    if filters is not None and pq.ParquetFile(path).metadata.num_rows == 0:
        # a shard without rows has columns without a type (null), which a filter cannot compare
        # with anything; no row can pass it anyway
        filters = None
    frame = pq.read_table(path, columns=columns, filters=prunable(filters)).to_pandas(date_as_object=False)
    frame.insert(0, KEY, pd.Timestamp(run_date))
    return frame


@contextmanager
def _exchange_reader(path: str) -> Iterator[Any]:
    """An exchange file (`Lake.write_exchange`) open for reading its record batches, with one
    open and no other file-system call; a missing file is a `MissingInputError`."""
    import pyarrow.ipc as ipc

    try:
        source = pa.OSFile(path, "rb")
    except FileNotFoundError:
        raise MissingInputError(f"the lake has no file {path}; run the step that writes it first") from None
    with source:
        yield ipc.open_file(source)


def _exchange_batch(reader: Any, part: int, path: str, again: str) -> pa.RecordBatch:
    """Record batch `part` (a partition) of an open exchange file; outside the file's batches a
    ValueError saying what to run `again`."""
    if not 0 <= part < reader.num_record_batches:
        raise ValueError(f"{path} holds partitions 0..{reader.num_record_batches - 1}, not {part}: {again}")
    batch: pa.RecordBatch = reader.get_batch(part)
    return batch


def _exchange_name(shard: int) -> str:
    """The file of one shard of an exchange between steps (`Lake.write_exchange`)."""
    return f"part-shard-{shard:05d}.arrow"


def prunable(filters: Any) -> Any:
    """`filters` with a range added beside every `(column, "in", values)` of a conjunction, so the
    reader skips the row groups whose statistics fall outside the values (pyarrow prunes row groups
    by a range, not by a set).  Selects the same rows; a file clustered by the column (the
    extracted tables are sorted by SKU) is then read only where the values are."""
    if not isinstance(filters, list) or not all(isinstance(f, tuple) and len(f) == 3 for f in filters):
        return filters
    out = list(filters)
    for column, op, values in filters:
        if op not in ("in", "is_in") or not values:
            continue
        kinds = {type(v) for v in values}
        if len(kinds) == 1 and kinds.pop() in (str, int, float, date):
            out += [(column, ">=", min(values)), (column, "<=", max(values))]
    return out


def _data_files(folder: Path, fix: str) -> tuple[Path, ...]:
    files = tuple(sorted(folder.glob("part-*.parquet")))
    if not files:
        raise MissingInputError(f"the lake has no partition {folder}; run `{fix}` first")
    return files


def _replace_folder(tmp: Path, final: Path) -> None:
    """Rename the complete folder `tmp` over `final` (the old version is removed afterwards)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    _fsync_dir(tmp)
    old = None
    if final.exists():
        old = tmp.parent / f"{tmp.name}-old"
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_partition(folder: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read all Parquet files of one complete partition folder into pandas."""
    files = _data_files(folder, "the step that writes it")
    return pq.ParquetDataset(list(files), partitioning=None).read(columns=columns).to_pandas()
