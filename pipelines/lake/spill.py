"""A task's rows kept on disk between two passes over them, so that the task holds one part at a
time instead of all of them (the load's actuals, archived forecasts and accuracy rows, by shard).

    with lake.spill() as spill:                 a private folder in the lake's staging, removed
        spill.append("actuals", 3, frame)       when the block ends, whatever happens
        spill.read("actuals", 3) -> DataFrame   every frame appended to ("actuals", 3), in order

Each (name, part) is one uncompressed Arrow IPC stream: appending costs a conversion and a write,
reading back a read of the file, with the column types of the first rows appended (later rows
are cast to them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
