"""A task's rows kept on disk between two passes over them, so that the task holds one part at a
time instead of all of them (the load's actuals, archived forecasts and accuracy rows, by shard).

    with lake.spill() as spill:                 a private folder in the lake's staging, removed
        spill.append("actuals", 3, frame)       when the block ends, whatever happens
        spill.read("actuals", 3) -> DataFrame   every frame appended to ("actuals", 3), in order

Each (name, part) is one uncompressed Arrow IPC stream: appending costs a conversion and a write,
reading back a read of the file, with the column types of the first rows appended (later rows
are cast to them).

`HashBuckets` keeps 64-bit hashes (of rows, of keys) in a spill in buckets of their top bits and
gives them back sorted a bucket at a time: the buckets in order are the sorted whole, so a
checksum over the sorted hashes or a search for repeated ones holds one bucket, not the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc


class Spill:
    """Frames appended by (name, part) to Arrow IPC streams in `folder`; see the module docstring."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._writers: dict[tuple[str, int], tuple[Any, ipc.RecordBatchStreamWriter, pa.Schema]] = {}
        self._done: set[tuple[str, int]] = set()  # finished parts: read only

    def _path(self, name: str, part: int) -> Path:
        if not name.isidentifier():
            raise ValueError(f"Spill: a name is an identifier, got {name!r}")
        return self.folder / f"{name}-{part:05d}.arrow"

    def append(self, name: str, part: int, frame: pd.DataFrame) -> None:
        """Add the rows of `frame` to (name, part); an empty frame adds nothing (a part nothing
        was added to reads as None)."""
        if not len(frame):
            return
        table = pa.Table.from_pandas(frame, preserve_index=False)
        key = (name, part)
        if key in self._done:
            raise ValueError(f"Spill {name!r} part {part} was read already; append every row before reading")
        if key not in self._writers:
            sink = pa.OSFile(str(self._path(name, part)), "wb")
            self._writers[key] = (sink, ipc.new_stream(sink, table.schema), table.schema)
        _, writer, schema = self._writers[key]
        if table.schema != schema:
            if table.column_names != schema.names:
                raise ValueError(
                    f"Spill {name!r} part {part}: columns {table.column_names}, expected {schema.names}"
                )
            table = table.cast(schema)
        writer.write_table(table)

    def close(self) -> None:
        """Finish every stream (`read` does it for the part it reads)."""
        for key in list(self._writers):
            self._finish(key)

    def _finish(self, key: tuple[str, int]) -> None:
        self._done.add(key)
        if key in self._writers:
            sink, writer, _ = self._writers.pop(key)
            writer.close()
            sink.close()

    def read(self, name: str, part: int) -> pd.DataFrame | None:
        """Every row appended to (name, part), in order; None when nothing was."""
        self._finish((name, part))
        path = self._path(name, part)
        if not path.is_file():
            return None
        with pa.OSFile(str(path), "rb") as source:
            table = ipc.open_stream(source).read_all()
        return table.to_pandas()


class HashBuckets:
    """64-bit hashes gathered part by part, given back sorted a bucket of their top `bits` at a
    time (`sorted_buckets`: their concatenation is `np.sort` of every hash added).

    Without a spill they stay in memory and come back as one bucket.  With one, they stay in
    memory until more than `in_memory` were added, then go to `spill` as (name, bucket) parts."""

    def __init__(self, spill: Spill | None, name: str, *, bits: int = 4, in_memory: int = 0) -> None:
        self.spill, self.name, self.in_memory = spill, name, in_memory
        self.bits = bits if spill is not None else 0
        self.count = 0
        self.spilled = False
        self._held: list[np.ndarray] = []

    def add(self, hashes: np.ndarray) -> None:
        """Keep `hashes` (uint64)."""
        h = np.asarray(hashes, dtype=np.uint64)
        self.count += len(h)
        if not self.spilled and (self.spill is None or not self.bits or self.count <= self.in_memory):
            self._held.append(h)
            return
        if not self.spilled:  # the first time beyond `in_memory`: what was held goes first
            self.spilled = True
            held, self._held = self._held, []
            for part in held:
                self._write(part)
        self._write(h)

    def _write(self, h: np.ndarray) -> None:
        assert self.spill is not None
        bucket = h >> np.uint64(64 - self.bits)
        order = np.argsort(bucket, kind="stable")
        cuts = np.searchsorted(bucket[order], np.arange(1, 1 << self.bits, dtype=np.uint64))
        for b, part in enumerate(np.split(h[order], cuts)):
            self.spill.append(self.name, b, pd.DataFrame({"h": part}))

    def sorted_buckets(self) -> Iterator[np.ndarray]:
        """Every hash added, sorted, a bucket at a time in ascending order (once: what is given
        back is no longer held)."""
        if not self.spilled:
            held, self._held = self._held, []
            yield np.sort(np.concatenate(held)) if held else np.zeros(0, np.uint64)
            return
        assert self.spill is not None
        for b in range(1 << self.bits):
            part = self.spill.read(self.name, b)
            if part is not None:
                yield np.sort(part["h"].to_numpy(dtype=np.uint64))

    def repeated(self) -> np.ndarray:
        """The hashes added more than once, each once, sorted."""
        out = [np.zeros(0, np.uint64)]
        for hashes in self.sorted_buckets():
            out.append(np.unique(hashes[1:][hashes[1:] == hashes[:-1]]))
        return np.concatenate(out)
