"""MariaDB / MySQL (pymysql): the command-line client's stream for extraction, LOAD DATA LOCAL
INFILE through a named pipe for loads, GET_LOCK for migrations.

Extraction reads with the `mariadb`/`mysql` client in `--batch --quick` mode (unbuffered,
tab-separated), parsed by pyarrow in blocks; without a client binary, pymysql's unbuffered
`SSCursor`.  The password never reaches a command line, a log line or an error message.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from pipelines.db.base import Adapter, Checkpoint, no_checkpoint
from pipelines.db.csv_stream import csv_chunks, csv_readable, parse_csv
from pipelines.db.streams import merge_streams
from pipelines.errors import ConfigError, LoadError, SourceUnavailableError

log = logging.getLogger(__name__)

BATCH_ROWS = 50_000
_STRING_MARK = "~"  # prefixed to non-NULL strings so that a string 'NULL' is never read as NULL
_LOCAL_INFILE_REFUSED = {1148, 2068, 3948, 4166}
_MIGRATION_LOCK = "seam_schema_migrations"
# client errors that are about reaching the server (refused login, unknown database, lost
# connection) or contention (lock wait, deadlock): the others are about the statement
_TRANSIENT_CLIENT = {1040, 1044, 1045, 1049, 1053, 1205, 1213, 1927, 2002, 2003, 2005, 2006, 2013}


# Arrow types of a query's result columns by the protocol's field type, as pymysql's values are
# read: integers and YEAR, FLOAT/DOUBLE and DECIMAL, DATE, DATETIME/TIMESTAMP, TIME (a duration),
# and text or bytes by the column's character set (63: binary).  BIT, ENUM/SET codes, NULL and
# others are not described: the generic path reads them.
_FIELD_TYPES: dict[int, pa.DataType] = {
    **dict.fromkeys((1, 2, 3, 8, 9, 13), pa.int64()),
    **dict.fromkeys((0, 4, 5, 246), pa.float64()),
    **dict.fromkeys((10, 14), pa.date32()),
    **dict.fromkeys((7, 12), pa.timestamp("us")),
    11: pa.duration("us"),
}
_TEXT_FIELDS = {15, 245, 249, 250, 251, 252, 253, 254}
_BINARY_CHARSET = 63
_NOT_NULL_FLAG = 1


class MySQLAdapter(Adapter):
    name: ClassVar[str] = "mysql"
    writes_results: ClassVar[bool] = True
    readers: ClassVar[tuple[str, ...]] = ("mysql_client", "sscursor")
    paramstyle_mark: ClassVar[str] = "%s"

    def connect_args(self, *, write: bool) -> dict[str, object]:
        # LOCAL INFILE only for the login that loads results: a reading login never sends files
        return {"connect_timeout": 10, "local_infile": write}

    def in_schema(self, url: sa.URL, schema: str) -> sa.URL:
        # a MariaDB schema is a database on the same server
        return url.set(database=schema)

    def create_schema(self, engine: Engine, schema: str) -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {self.quote(conn, schema)}")

    # --- extraction ------------------------------------------------------------------------
    def pick_reader(self, conn: Connection, schema: pa.Schema, requested: str) -> str:
        if conn.dialect.driver != "pymysql":
            return "generic"
        if requested != "auto":
            return requested
        if not csv_readable(schema):
            return "generic"
        return "mysql_client" if _client() else "sscursor"

    def query_types(self, cursor: Any) -> list[pa.DataType | None]:
        """From the result's field packets (pymysql keeps them with the type and character set
        that decide between text and bytes); without them, nothing is described."""
        fields = getattr(getattr(cursor, "_result", None), "fields", None)
        if fields is None:
            return super().query_types(cursor)
        out: list[pa.DataType | None] = []
        for field in fields:
            if field.type_code in _TEXT_FIELDS:
                # a bare NULL is a binary column of length 0: text, as in PostgreSQL
                binary = field.charsetnr == _BINARY_CHARSET and field.length > 0
                out.append(pa.binary() if binary else pa.string())
            else:
                out.append(_FIELD_TYPES.get(field.type_code))
        return out

    def query_not_null(self, cursor: Any) -> list[bool]:
        """The NOT NULL flag of each result field: the server's own, which outer joins, unions
        and expressions clear wherever a NULL can appear."""
        fields = getattr(getattr(cursor, "_result", None), "fields", None)
        if fields is None:
            return super().query_not_null(cursor)
        return [bool(field.flags & _NOT_NULL_FLAG) for field in fields]

    def stream(
        self, conn: Connection, sql: str, params: dict[str, Any], schema: pa.Schema, reader: str
    ) -> Iterator[pa.RecordBatch]:
        if reader == "sscursor":
            yield from _sscursor_batches(conn, sql, params, schema)
        else:
            yield from _client_batches(conn.engine.url, _inline(conn, sql, params, schema), schema)

    def parallel_streams(self, reader: str) -> bool:
        return reader == "mysql_client"

    def stream_parallel(
        self, conn: Connection, statements: Sequence[tuple[str, Any]], schema: pa.Schema, reader: str
    ) -> Iterator[pa.RecordBatch]:
        """Several statements, each on its own client process, parsed on its own thread."""
        queries = [_inline(conn, sql, params, schema) for sql, params in statements]
        url = conn.engine.url
        yield from merge_streams([functools.partial(_client_batches, url, q, schema) for q in queries])

    # --- loading ---------------------------------------------------------------------------
    def bulk_insert(self, conn: Connection, table: str, columns: Sequence[str], data: pa.Table) -> None:
        """LOAD DATA LOCAL INFILE streamed from a named pipe; multi-row INSERTs when refused."""
        if data.num_rows == 0:
            return
        raw = conn.connection.dbapi_connection
        assert raw is not None
        names = ", ".join(self.quote(conn, c) for c in columns)
        if _load_data_local(raw, table, names, data.select(list(columns))):
            return
        super().bulk_insert(conn, table, columns, data)

    def replace_night(
        self,
        conn: Connection,
        table: str,
        columns: Sequence[str],
        night: str,
        run_date: date,
        data: Iterable[pa.Table],
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        """No staging copy on InnoDB: delete the night and load its parts straight into the target.

        A staging table would write every row twice into InnoDB (measured: staging plus
        INSERT ... SELECT cost about as much again as the load itself, benchmarks/results/load.md)
        and add nothing: the keys are unique by construction (checked by the caller, every key
        holds the night, whose rows were just deleted), LOAD DATA's warnings and row count are
        checked, and any failure rolls the delete back too.
        """
        target = self.quote(conn, table)
        conn.execute(sa.text(f"DELETE FROM {target} WHERE {self.quote(conn, night)} = :d"), {"d": run_date})
        for part in data:
            self.bulk_insert(conn, target, columns, part)
        checkpoint("staged")

    def create_staging(self, conn: Connection, staging: str, target: str) -> None:
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {staging}")
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {staging} ENGINE=InnoDB AS SELECT * FROM {target} WHERE 1 = 0"
        )

    def drop_staging(self, conn: Connection, staging: str) -> None:
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {staging}")

    def upsert_sql(self, columns: list[str], key: list[str], target: str, staging: str) -> str:
        cols = ", ".join(columns)
        sets = ", ".join(f"{c} = VALUES({c})" for c in columns if c not in key)
        return f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging} ON DUPLICATE KEY UPDATE {sets}"

    def timestamp_param(self, value: datetime) -> object:
        return value.replace(tzinfo=None)  # DATETIME has no zone; seam's stored times are UTC

    @contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        # DDL commits implicitly on MariaDB, so the lock is the session's, not the transaction's
        got = conn.execute(sa.text("SELECT GET_LOCK(:n, 600)"), {"n": _MIGRATION_LOCK}).scalar()
        if got != 1:
            raise SourceUnavailableError(
                "could not take the migration lock within 600 s; is a migration stuck?"
            )
        try:
            yield
            # Each migration's DDL commits the one before, but the row recording the last one
            # would be committed only after the lock is released: a process waiting for the lock
            # would not see it and apply that migration again.  Commit while holding the lock.
            conn.exec_driver_sql("COMMIT")
        finally:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": _MIGRATION_LOCK})


# --- the client stream ----------------------------------------------------------------------
def _client() -> str | None:
    return shutil.which("mariadb") or shutil.which("mysql")


def _texty(field: pa.Field) -> bool:
    """A column the client prints as escaped text: strings, and bytes (printed raw, escaped alike)."""
    return pa.types.is_string(field.type) or pa.types.is_binary(field.type)


def _marked(field: pa.Field) -> bool:
    """A nullable string or bytes column: its values carry the mark so that NULL and 'NULL' differ."""
    return _texty(field) and field.nullable


def _client_select(sql: str, schema: pa.Schema) -> str:
    """Wrap the SELECT so that nullable string columns get the NULL-safe mark.

    The client prints NULL and the string 'NULL' alike; NOT NULL columns need no mark (which
    saves the server a CONCAT and the reader a slice per value).
    """
    cols = ", ".join(
        f"CONCAT('{_STRING_MARK}', q.`{n}`) AS `{n}`" if _marked(f) else f"q.`{n}`"
        for f in schema
        # a name's backticks doubled, its `%` doubled like the statement's own (they are formatted)
        for n in [f.name.replace("`", "``").replace("%", "%%")]
    )
    return f"SELECT {cols} FROM ({sql}) AS q"


def _inline(conn: Connection, sql: str, params: Any, schema: pa.Schema) -> str:
    """The client's statement with its parameters inlined by the driver's own escaping."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        # Always formatted, with no parameters too: that turns SQLAlchemy's `%%` back into `%`.
        query: str = cur.mogrify(_client_select(sql, schema), params if params is not None else ())
    return query


def _pipe_with(data: bytes) -> int:
    """The read end of a pipe that holds `data` (small: it fits the pipe buffer) and is closed."""
    read_fd, write_fd = os.pipe()
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
    finally:
        os.close(write_fd)
    return read_fd


def _client_batches(url: URL, query: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    client = _client()
    assert client is not None
    # The password reaches the client through an option file that is an inherited pipe: never on
    # argv (process listings), never on disk (a killed run leaves nothing behind).
    lines = ["[client]"]
    for key, value in (
        ("user", url.username),
        ("password", url.password),
        ("host", url.host),
        ("port", url.port),
        ("database", url.database),
    ):
        if value is not None:
            escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{key}="{escaped}"')
    options_fd = _pipe_with(("\n".join(lines) + "\n").encode())
    argv = [
        client,
        f"--defaults-extra-file=/dev/fd/{options_fd}",
        "--batch",
        "--quick",
        "--skip-column-names",
        "--default-character-set=utf8mb4",
        "--protocol=TCP" if url.host else "--protocol=SOCKET",
        "-e",
        query,
    ]
    try:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 20, pass_fds=(options_fd,)
        )
    finally:
        os.close(options_fd)
    assert proc.stdout is not None
    try:
        with open(proc.stdout.fileno(), "rb", buffering=1 << 20, closefd=False) as stdout:
            yield from parse_csv(
                _CarriageReturnsEscaped(stdout),
                schema,
                delimiter="\t",
                quoted=False,
                fix=lambda b: _unmark_strings(b, schema),
            )
        proc.stdout.close()
        rc = proc.wait()
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        if rc != 0:
            # the client's own line ("ERROR 1054 (42S22) at line 1: Unknown column ..."), not a
            # separator or the echoed statement
            lines = [line for line in err.splitlines() if line.startswith("ERROR")] or err.splitlines()
            first = lines[0][:300] if lines else f"exit code {rc}"
            if url.password:
                first = first.replace(url.password, "***")
            number = first.split()[1] if first.startswith("ERROR ") and len(first.split()) > 1 else ""
            if number.isdigit() and int(number) not in _TRANSIENT_CLIENT:
                raise ConfigError(
                    f"the {Path(client).name} client refused the statement: {first}; fix the table's "
                    f"`query:`, `table:` or `columns:` in the config"
                )
            raise SourceUnavailableError(f"the {Path(client).name} client failed: {first}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


class _CarriageReturnsEscaped(io.RawIOBase):
    """The client's output with every raw carriage return written as the escape `\\r`.

    In --batch mode the client escapes tab, newline, backslash and NUL inside values but prints a
    carriage return as it is, and Arrow's CSV parser ends a row at any CR: a value with a CR would
    split its row.  The client never prints a CR of its own and a CR byte is never part of a
    multi-byte UTF-8 character, so each one is a value's, and `\\r` is undone by `_unescape` like
    the client's own escapes (an escaped backslash followed by `r` is `\\\\r`: no ambiguity).
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """`size` bytes, fewer only at the end (Arrow's block reader relies on full reads)."""
        if size is None or size < 0:
            rest = self._pending + self._escaped(self._raw.read())
            self._pending = b""
            return rest
        while len(self._pending) < size:
            chunk = self._raw.read(size - len(self._pending))
            if not chunk:
                break
            self._pending += self._escaped(chunk)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @staticmethod
    def _escaped(chunk: bytes) -> bytes:
        return chunk.replace(b"\r", b"\\r") if b"\r" in chunk else chunk


_UNESCAPE = {"n": "\n", "t": "\t", "0": "\0", "\\": "\\", "r": "\r", "b": "\b", "Z": "\x1a"}


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(_UNESCAPE.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _unescape_bytes(value: bytes) -> bytes:
    # latin-1 maps each byte to one character and back, and every escape is ASCII
    return _unescape(value.decode("latin-1")).encode("latin-1")


def _drop_mark_bytes(col: pa.Array) -> pa.Array:
    """Each bytes value without its first byte (the mark)."""
    # The stop is the longest value: pyarrow 26's binary_slice fails ("Negative buffer resize")
    # on arrays of several values when the stop is left open or is huge.
    longest = pc.max(pc.binary_length(col)).as_py() or 0
    return pc.binary_slice(col, 1, longest + 1)


def _unmark_strings(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """NULLs of marked columns, the mark dropped, the client's backslash escapes undone (per value:
    rare).  In a marked column NULL is the bare word NULL and every value starts with the mark.
    Bytes columns get the same treatment, byte for byte."""
    cols = []
    for field, col in zip(schema, batch.columns, strict=True):
        if _texty(field):
            binary = pa.types.is_binary(field.type)
            if _marked(field):
                null_word = pa.scalar(b"NULL" if binary else "NULL", type=field.type)
                rest = _drop_mark_bytes(col) if binary else pc.utf8_slice_codeunits(col, 1)
                col = pc.if_else(pc.equal(col, null_word), None, rest)
            has_escape = pc.match_substring(col, "\\")
            if pc.any(has_escape).as_py():
                undo = _unescape_bytes if binary else _unescape
                values = col.to_pylist()
                flags = has_escape.to_pylist()
                col = pa.array(
                    [undo(v) if f else v for v, f in zip(values, flags, strict=True)], type=field.type
                )
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def _sscursor_batches(
    conn: Connection, sql: str, params: dict[str, Any], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    import pymysql.cursors

    raw = conn.connection.driver_connection
    assert raw is not None
    cur = raw.cursor(pymysql.cursors.SSCursor)
    try:
        cur.execute(sql, params if params is not None else ())  # formatted: `%%` back to `%`
        while rows := cur.fetchmany(BATCH_ROWS):
            arrays = [_array(col, f) for f, col in zip(schema, zip(*rows, strict=True), strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        cur.close()


def _array(values: Sequence[Any], field: pa.Field) -> pa.Array:
    """One column of driver values; a query's DECIMAL is read as float64: each Decimal rounded to
    the nearest float, as the generic path does (Arrow's decimal-to-double cast is not exact)."""
    if pa.types.is_floating(field.type) and any(isinstance(v, Decimal) for v in values):
        values = [None if v is None else float(v) for v in values]
    return pa.array(values, type=field.type)


# --- LOAD DATA ------------------------------------------------------------------------------
class _CsvPipe:
    """A named pipe that a thread fills with the table's CSV while the driver reads it.

    pymysql opens LOAD DATA's file by name, so a FIFO lets it send rows as they are produced
    (a temporary file would make producing and loading run one after the other).  `close()`
    always leaves no thread and no file behind: if the reader never opened the pipe (the server
    refused the statement) or stopped early, it drains the pipe so the writer ends.
    """

    def __init__(self, data: pa.Table) -> None:
        self._dir = tempfile.mkdtemp(prefix="seam_load_")  # mode 0700: only this user can open it
        self.path = os.path.join(self._dir, "batch.csv")
        os.mkfifo(self.path, 0o600)
        self.error: BaseException | None = None
        self._data = data
        self._thread = threading.Thread(target=self._write, name="seam-load-csv", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        try:
            with open(self.path, "wb") as fh:
                for chunk in csv_chunks(self._data, null="NULL", bools_as_int=True):
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


def _load_data_local(raw: Any, table: str, names: str, data: pa.Table) -> bool:
    """LOAD DATA LOCAL INFILE from a named pipe; False if the server or driver refuses LOCAL.

    With LOCAL the server turns duplicate-key errors into warnings (it cannot stop the client
    mid-file), so warnings and a short row count are errors here.
    """
    pipe = _CsvPipe(data)
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
    if loaded != data.num_rows:
        raise LoadError(
            f"LOAD DATA into {table} took {loaded} of {data.num_rows} rows; the load was rolled back"
        )
    return True
