"""PostgreSQL (psycopg 3): COPY out for extraction, COPY in for loads, advisory locks."""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.db.base import Adapter
from pipelines.db.csv_stream import csv_chunks, csv_readable, parse_csv
from pipelines.errors import DataError

PUMP_BYTES = 1 << 20
# Arrow types of a query's result columns by type OID, as the generic path reads their values:
# bool, int2/4/8 and oid, float4/8, numeric, date, timestamp, timestamptz, time, text-like, bytea.
# Other types (json, uuid, arrays, intervals, ...) are not described: the generic path reads them.
_OID_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    **dict.fromkeys((20, 21, 23, 26), pa.int64()),
    **dict.fromkeys((700, 701, 1700), pa.float64()),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1083: pa.time64("us"),
    **dict.fromkeys((18, 19, 25, 1042, 1043), pa.string()),
    17: pa.binary(),
}
_MIGRATION_LOCK = zlib.crc32(b"seam_schema_migrations")


class PostgresAdapter(Adapter):
    name: ClassVar[str] = "postgresql"
    writes_results: ClassVar[bool] = True
    readers: ClassVar[tuple[str, ...]] = ("copy",)
    paramstyle_mark: ClassVar[str] = "%s"

    def connect_args(self, *, write: bool) -> dict[str, object]:
        del write
        return {"connect_timeout": 10}

    def in_schema(self, url: sa.URL, schema: str) -> sa.URL:
        # the session's search_path: unqualified names are created and found in the schema
        given = url.query.get("options") or ""
        options = " ".join([*([given] if isinstance(given, str) else given), f"-csearch_path={schema}"])
        return url.update_query_dict({"options": options.strip()})

    def create_schema(self, engine: Engine, schema: str) -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {self.quote(conn, schema)}")

    def query_error_hint(self, err: BaseException) -> str:
        # 42P08 ambiguous_parameter, 42P18 indeterminate_datatype: a bind PostgreSQL cannot type,
        # e.g. `:watermark IS NULL` (NULL on the first night) with nothing to compare it with
        if getattr(getattr(err, "orig", err), "sqlstate", None) in ("42P08", "42P18"):
            return (
                " (PostgreSQL cannot tell the type of a bind used only with IS NULL: write "
                "CAST(:watermark AS TIMESTAMP) and the like)"
            )
        return ""

    def pick_reader(self, conn: Connection, schema: pa.Schema, requested: str) -> str:
        if conn.dialect.driver == "psycopg" and (requested == "copy" or csv_readable(schema)):
            return "copy"
        return "generic"

    def query_types(self, cursor: Any) -> list[pa.DataType | None]:
        """From the type OIDs of the result description (psycopg's `type_code`).

        A timestamp with a zone carries the session's zone, as the driver's values do (their
        instants are UTC in Arrow either way): the type a query's partitions always had."""
        zone = pa.array([datetime(2000, 1, 1, tzinfo=cursor.connection.info.timezone)]).type
        types = {**_OID_TYPES, 1184: pa.timestamp("us", tz=zone.tz)}
        return [types.get(column.type_code) for column in cursor.description or ()]

    def stream(
        self, conn: Connection, sql: str, params: dict[str, Any], schema: pa.Schema, reader: str
    ) -> Iterator[pa.RecordBatch]:
        """`COPY (SELECT ...) TO STDOUT (FORMAT csv)`, parsed by pyarrow in streaming blocks.

        bytea arrives as its hex text (`\\x0aff`) and is decoded back to the exact bytes.
        Timestamps with a zone are printed as UTC wall-clock time (`AT TIME ZONE 'UTC'`), not in
        the session's zone, which stays the server's: a query's expressions that depend on it
        (`::date` of a timestamptz, a wall-clock bind against one) give what the generic path gets."""
        sql, wire = _utc_text(sql, schema)
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            # bytea in hex whatever the server's default: the one text form decoded below
            cur.execute("SET LOCAL bytea_output = 'hex'")
            if not params:
                # psycopg merges COPY's parameters client-side and leaves the text alone without
                # any: undo the `%%` that SQLAlchemy wrote for each literal `%` (`LIKE 'A%'`).
                sql = sql.replace("%%", "%")
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
                        fix = _bytea_decoder(schema)
                        for batch in parse_csv(stream, wire, delimiter=",", quoted=True, fix=fix):
                            yield batch if wire is schema else batch.cast(schema)
                finally:
                    os.close(read_fd)
                    thread.join()
                if failure and not isinstance(failure[0], BrokenPipeError):
                    raise failure[0]

    def bulk_insert(self, conn: Connection, table: str, columns: Sequence[str], data: pa.Table) -> None:
        """COPY FROM STDIN (CSV)."""
        if data.num_rows == 0:
            return
        raw = conn.connection.dbapi_connection
        assert raw is not None
        names = ", ".join(self.quote(conn, c) for c in columns)
        sql = f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)"
        with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[attr-defined]
            for chunk in csv_chunks(data.select(list(columns)), null="", bools_as_int=False):
                copy.write(chunk)

    def create_staging(self, conn: Connection, staging: str, target: str) -> None:
        conn.exec_driver_sql(f"CREATE TEMP TABLE {staging} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP")

    def drop_staging(self, conn: Connection, staging: str) -> None:
        del conn, staging  # dropped at commit (ON COMMIT DROP)

    @contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        # released when the caller's transaction ends; PostgreSQL's DDL is transactional
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        yield


def _utc_text(sql: str, schema: pa.Schema) -> tuple[str, pa.Schema]:
    """The SELECT with its timestamptz columns as UTC wall-clock text, and the schema Arrow parses
    (those columns without their zone: cast back afterwards).  Unchanged without such columns."""
    zoned = [pa.types.is_timestamp(f.type) and f.type.tz is not None for f in schema]
    if not any(zoned):
        return sql, schema

    def name(f: pa.Field) -> str:  # quoted; `%` doubled like the statement's own
        return '"' + f.name.replace('"', '""').replace("%", "%%") + '"'

    cols = ", ".join(
        f"q.{name(f)} AT TIME ZONE 'UTC' AS {name(f)}" if z else f"q.{name(f)}"
        for f, z in zip(schema, zoned, strict=True)
    )
    wire = pa.schema(
        [f.with_type(pa.timestamp(f.type.unit)) if z else f for f, z in zip(schema, zoned, strict=True)]
    )
    return f"SELECT {cols} FROM ({sql}) AS q", wire


def _bytea_decoder(schema: pa.Schema) -> Callable[[pa.RecordBatch], pa.RecordBatch] | None:
    """A batch fix that turns COPY's hex text of bytea (`\\x` and two digits a byte) into bytes;
    None when the schema has no binary column."""
    binary = [i for i, f in enumerate(schema) if pa.types.is_binary(f.type)]
    if not binary:
        return None

    def decode(batch: pa.RecordBatch) -> pa.RecordBatch:
        cols = list(batch.columns)
        for i in binary:
            values = [_from_hex(v, schema[i].name) for v in cols[i].to_pylist()]
            cols[i] = pa.array(values, type=pa.binary())
        return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)

    return decode


def _from_hex(value: bytes | None, column: str) -> bytes | None:
    if value is None:
        return None
    if not value.startswith(b"\\x"):
        raise DataError(
            f"column {column!r}: COPY sent bytea as {value[:20]!r}, not in hex form (\\x...); "
            f"read this table with `reader: generic`"
        )
    return bytes.fromhex(value[2:].decode("ascii"))
