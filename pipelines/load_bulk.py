"""Bulk inserts of a frame into a table on an open transaction: the fast paths of `pipelines.load`.

PostgreSQL: COPY FROM STDIN (CSV).  MariaDB/MySQL: LOAD DATA LOCAL INFILE, the CSV streamed through
a named pipe while it is written, so producing the CSV overlaps the server parsing and inserting it
(a temporary file would make the two run one after the other); multi-row INSERTs when the server or
driver refuses LOCAL INFILE.  SQLite: executemany.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy.engine import Connection

from pipelines.db import dialect_of, quote
from pipelines.errors import LoadError
from pipelines.results import DATE_COLUMNS

log = logging.getLogger(__name__)

_LOCAL_INFILE_REFUSED = {1148, 2068, 3948, 4166}


def bulk_insert(conn: Connection, table: str, columns: list[str], df: pd.DataFrame) -> None:
    """Insert every row of `df` into `table` on the connection's transaction, the fastest way.

    Raises LoadError when the server converted values (MariaDB warnings) or did not take every
    row; the caller's transaction is then rolled back, so nothing of the frame stays.
    """
    if df.empty:
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    names = ", ".join(quote(conn, c) for c in columns)
    dialect = dialect_of(conn)
    if dialect == "postgresql":
        sql = f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)"
        with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[attr-defined]
            for chunk in _csv_chunks(df[columns], null="", bools_as_int=False):
                copy.write(chunk)
        return
    if dialect == "mysql" and _load_data_local(raw, table, names, df[columns]):
        return
    marks = ", ".join(["%s" if dialect == "mysql" else "?"] * len(columns))
    rows = _plain_rows(df[columns])
    cur = raw.cursor()
    try:
        # pymysql rewrites executemany of INSERT ... VALUES into multi-row INSERTs.
        for i in range(0, len(rows), 10_000):
            cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows[i : i + 10_000])
    finally:
        cur.close()


def _arrow(df: pd.DataFrame, *, bools_as_int: bool) -> pa.Table:
    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, field in enumerate(table.schema):
        col = table.column(i)
        if field.name in DATE_COLUMNS and pa.types.is_timestamp(field.type):
            table = table.set_column(i, field.name, pc.cast(col, pa.date32()))
        elif bools_as_int and pa.types.is_boolean(field.type):
            table = table.set_column(i, field.name, pc.cast(col, pa.int8()))
    return table


def _csv_chunks(df: pd.DataFrame, *, null: str, bools_as_int: bool, rows: int = 100_000) -> Iterator[bytes]:
    """The frame as CSV in slices (no header; strings always quoted, so an unquoted `null` is NULL).

    Slicing keeps memory flat: never more than one slice's Arrow table and CSV text at a time.
    """
    options = pacsv.WriteOptions(include_header=False, null_string=null, batch_size=16 * 1024)
    for i in range(0, len(df), rows):
        buf = io.BytesIO()
        pacsv.write_csv(_arrow(df.iloc[i : i + rows], bools_as_int=bools_as_int), buf, options)
        yield buf.getvalue()


def _plain_rows(df: pd.DataFrame) -> list[tuple[Any, ...]]:
    obj = df.copy(deep=False)
    for c in obj.columns:
        if pd.api.types.is_datetime64_any_dtype(obj[c]):
            obj[c] = obj[c].dt.date
    obj = obj.astype(object).where(obj.notna(), None)
    rows = []
    for r in obj.itertuples(index=False, name=None):
        rows.append(tuple(v.item() if isinstance(v, np.generic) else v for v in r))
    return rows


class _CsvPipe:
    """A named pipe that a thread fills with the frame's CSV while the driver reads it.

    pymysql opens LOAD DATA's file by name, so a FIFO lets it send rows as they are produced.
    `close()` always leaves no thread and no file behind: if the reader never opened the pipe
    (the server refused the statement) or stopped early, it drains the pipe so the writer ends.
    """

    def __init__(self, df: pd.DataFrame) -> None:
        self._dir = tempfile.mkdtemp(prefix="seam_load_")  # mode 0700: only this user can open it
        self.path = os.path.join(self._dir, "batch.csv")
        os.mkfifo(self.path, 0o600)
        self.error: BaseException | None = None
        self._df = df
        self._thread = threading.Thread(target=self._write, name="seam-load-csv", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        try:
            with open(self.path, "wb") as fh:
                for chunk in _csv_chunks(self._df, null="NULL", bools_as_int=True):
                    fh.write(chunk)
        except BaseException as err:  # reported by close(); a reader that stopped early is one
            self.error = err

    def close(self) -> None:
        while self._thread.is_alive():
            try:  # non-blocking open: succeeds at once; the writer then unblocks and finishes
                fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                break
            try:
                while self._thread.is_alive():
                    self._thread.join(0.05)
                    try:
                        while os.read(fd, 1 << 16):
                            pass
                    except BlockingIOError:
                        pass
            finally:
                os.close(fd)
        self._thread.join()
        shutil.rmtree(self._dir, ignore_errors=True)


def _load_data_local(raw: Any, table: str, names: str, df: pd.DataFrame) -> bool:
    """MariaDB/MySQL: LOAD DATA LOCAL INFILE streamed from a named pipe; False if refused.

    With LOCAL the server turns duplicate-key errors into warnings (it cannot stop the client
    mid-file), so warnings and a short row count are errors here.
    """
    pipe = _CsvPipe(df)
    try:
        cur = raw.cursor()
        try:
            cur.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} CHARACTER SET utf8mb4 "
                f"FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
                f"LINES TERMINATED BY '\\n' ({names})",
                (pipe.path,),
            )
            loaded = cur.rowcount
            cur.execute("SHOW WARNINGS LIMIT 3")
            warnings = cur.fetchall()
        finally:
            cur.close()
    except Exception as err:  # the server or driver refusing LOCAL INFILE: take the INSERT path
        if getattr(err, "args", (None,))[0] in _LOCAL_INFILE_REFUSED:
            log.info("LOAD DATA LOCAL INFILE refused (%s); using multi-row INSERTs", err)
            return False
        raise
    finally:
        pipe.close()
    if pipe.error is not None:
        raise LoadError(f"writing the CSV for LOAD DATA into {table} failed: {pipe.error}") from pipe.error
    if warnings:
        raise LoadError(
            f"LOAD DATA into {table} converted or skipped values with warnings, e.g. {warnings}; "
            f"check the batch's values against the table's column types and keys"
        )
    if loaded != len(df):
        raise LoadError(f"LOAD DATA into {table} took {loaded} of {len(df)} rows; the load was rolled back")
    return True
