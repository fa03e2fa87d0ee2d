"""Fast, bounded-memory readers of a SELECT into Arrow record batches, per dialect.

`stream_batches` picks the fastest reader a connection supports, chosen by measurement
(`benchmarks/extract_bench.py`, figures in `benchmarks/results/extract.md`):

* PostgreSQL (psycopg 3): `COPY (SELECT ...) TO STDOUT (FORMAT csv)`, parsed by
  `pyarrow.csv` in streaming blocks with the column types fixed up front.
* MariaDB/MySQL: the `mariadb`/`mysql` command-line client in `--batch --quick` mode
  (unbuffered, tab-separated) parsed the same way; when no client binary is installed,
  pymysql's unbuffered `SSCursor` with batches converted column-wise.
* Anything else: `None`; the caller uses the generic SQLAlchemy path.

Every reader yields batches of the given schema, holds at most a few blocks in memory and
never puts the password on a command line, in a log line or in an error message.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from sqlalchemy.engine import URL, Connection

from pipelines.errors import DataError, SourceUnavailableError
from pipelines.extract_ranges import merge_streams

log = logging.getLogger(__name__)

Method = Literal["auto", "generic", "copy", "mysql_client", "sscursor"]
BLOCK_BYTES = 8 << 20  # ~8 MB of CSV per parsed block: tens of thousands of rows, flat memory
BATCH_ROWS = 50_000
PUMP_BYTES = 1 << 20
_CSV_TYPES = (
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_decimal,
    pa.types.is_string,
    pa.types.is_boolean,
    pa.types.is_date32,
    pa.types.is_timestamp,
)
_STRING_MARK = "~"  # prefixed to non-NULL strings so that a string 'NULL' is never read as NULL


def method_for(conn: Connection, schema: pa.Schema) -> Method:
    """The reader to use; `SEAM_EXTRACT_METHOD` overrides it (benchmarks, troubleshooting)."""
    forced = os.environ.get("SEAM_EXTRACT_METHOD", "auto")
    if forced != "auto":
        return forced  # type: ignore[return-value]
    if not all(any(check(f.type) for check in _CSV_TYPES) for f in schema):
        return "generic"
    name, driver = conn.dialect.name, conn.dialect.driver
    if name == "postgresql" and driver == "psycopg":
        return "copy"
    if name in ("mysql", "mariadb") and driver == "pymysql":
        return "mysql_client" if _mysql_client() else "sscursor"
    return "generic"


def stream_batches(
    conn: Connection, sql: str, params: dict[str, Any], schema: pa.Schema, method: Method
) -> Iterator[pa.RecordBatch]:
    """Record batches of `schema` for `sql` (a compiled SELECT with driver placeholders)."""
    if method == "copy":
        yield from _pg_copy(conn, sql, params, schema)
    elif method == "mysql_client":
        yield from _client_batches(conn.engine.url, _mysql_query(conn, sql, params, schema), schema)
    elif method == "sscursor":
        yield from _sscursor_batches(conn, sql, params, schema)
    else:
        raise ValueError(f"unknown extraction method {method!r}")


# --- PostgreSQL -----------------------------------------------------------------------------------
def _pg_copy(
    conn: Connection, sql: str, params: dict[str, Any], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        # COPY prints timestamptz in the session zone; UTC makes the text unambiguous for Arrow.
        cur.execute("SET LOCAL TIME ZONE 'UTC'")
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", params or None) as copy:
            # A thread pumps COPY's chunks into a pipe that Arrow reads natively, so receiving
            # and parsing overlap on two cores instead of taking turns on the GIL.
            read_fd, write_fd = os.pipe()
            failure: list[BaseException] = []

            def pump() -> None:
                try:
                    # COPY hands over one row per message: gather ~1 MB before each write.
                    with os.fdopen(write_fd, "wb", buffering=0) as out:
                        pending = bytearray()
                        for chunk in copy:
                            pending += chunk
                            if len(pending) >= PUMP_BYTES:
                                out.write(pending)
                                pending.clear()
                        out.write(pending)
                except BaseException as err:  # handed to the reading thread below
                    failure.append(err)

            thread = threading.Thread(target=pump, name="seam-copy-pump", daemon=True)
            thread.start()
            try:
                with open(read_fd, "rb", buffering=1 << 20, closefd=False) as stream:
                    yield from _parse_csv(stream, schema, delimiter=",", quoted=True)
            finally:
                os.close(read_fd)
                thread.join()
            if failure and not isinstance(failure[0], BrokenPipeError):
                raise failure[0]


class _IterReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (what `pyarrow.csv` wants)."""

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _parse_csv(stream: Any, schema: pa.Schema, *, delimiter: str, quoted: bool) -> Iterator[pa.RecordBatch]:
    if quoted:  # PostgreSQL CSV: NULL is an empty unquoted field, '' is a quoted empty field
        null_values, parse = [""], pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    else:  # mysql --batch: NULL is the word NULL; strings are read as text, see _unmark_strings
        null_values = ["NULL"]
        parse = pcsv.ParseOptions(delimiter=delimiter, quote_char=False, escape_char=False)
    convert = pcsv.ConvertOptions(
        column_types={f.name: f.type for f in schema},
        null_values=null_values,
        true_values=["t", "1"],
        false_values=["f", "0"],
        strings_can_be_null=quoted,
        quoted_strings_can_be_null=False,
    )
    read = pcsv.ReadOptions(column_names=schema.names, block_size=BLOCK_BYTES, use_threads=True)
    try:
        reader = pcsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            if not quoted:
                batch = _unmark_strings(batch, schema)
            yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    except pa.ArrowInvalid as err:
        if "Empty CSV file" in str(err):
            return
        raise DataError(
            f"a value does not fit the column types read from the database catalogue ({err}); "
            f"the source column may have been retyped during the run"
        ) from None


# --- MariaDB / MySQL --------------------------------------------------------------------------------
def _mysql_client() -> str | None:
    return shutil.which("mariadb") or shutil.which("mysql")


def _marked(field: pa.Field) -> bool:
    """A nullable string column: its values carry the mark so that NULL and 'NULL' differ."""
    return pa.types.is_string(field.type) and field.nullable


def _mysql_select(sql: str, schema: pa.Schema) -> str:
    """Wrap the SELECT so that nullable string columns get the NULL-safe mark.

    The client prints NULL and the string 'NULL' alike; NOT NULL columns need no mark (which
    saves the server a CONCAT and the reader a slice per value).
    """
    cols = ", ".join(
        f"CONCAT('{_STRING_MARK}', q.`{f.name}`) AS `{f.name}`" if _marked(f) else f"q.`{f.name}`"
        for f in schema
    )
    return f"SELECT {cols} FROM ({sql}) AS q"


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


def stream_ranges(
    conn: Connection, statements: list[tuple[str, Any]], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """Record batches of several (sql, params) statements, each on its own `mariadb` client, in
    parallel (`pipelines.extract_ranges.merge_streams`)."""
    queries = [_mysql_query(conn, sql, params, schema) for sql, params in statements]
    url = conn.engine.url
    yield from merge_streams([functools.partial(_client_batches, url, q, schema) for q in queries])


def _mysql_query(conn: Connection, sql: str, params: Any, schema: pa.Schema) -> str:
    """The statement with its parameters inlined by the driver's own escaping."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        query: str = cur.mogrify(_mysql_select(sql, schema), params or None)
    return query


def _client_batches(url: URL, query: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    client = _mysql_client()
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
        with open(proc.stdout.fileno(), "rb", buffering=1 << 20, closefd=False) as stream:
            yield from _parse_csv(stream, schema, delimiter="\t", quoted=False)
        proc.stdout.close()
        rc = proc.wait()
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        if rc != 0:
            first = err.splitlines()[0][:300] if err else f"exit code {rc}"
            if url.password:
                first = first.replace(url.password, "***")
            raise SourceUnavailableError(f"the {Path(client).name} client failed: {first}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


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


def _unmark_strings(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """NULLs of marked columns, the mark dropped, the client's backslash escapes undone (per value:
    rare).  In a marked column NULL is the bare word NULL and every value starts with the mark."""
    cols = []
    for field, col in zip(schema, batch.columns, strict=True):
        if pa.types.is_string(field.type):
            if _marked(field):
                col = pc.if_else(pc.equal(col, "NULL"), None, pc.utf8_slice_codeunits(col, 1))
            has_escape = pc.match_substring(col, "\\")
            if pc.any(has_escape).as_py():
                values = col.to_pylist()
                flags = has_escape.to_pylist()
                col = pa.array(
                    [_unescape(v) if f else v for v, f in zip(values, flags, strict=True)], type=field.type
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
        cur.execute(sql, params or None)
        while rows := cur.fetchmany(BATCH_ROWS):
            arrays = [
                pa.array(col, type=f.type) for f, col in zip(schema, zip(*rows, strict=True), strict=True)
            ]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        cur.close()
