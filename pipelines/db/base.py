"""What every database dialect provides to seam, and the generic implementation.

One adapter per dialect (`postgresql.py`, `mysql.py`, `sqlite.py`) overrides what its database
does better or differently: connection options, the fast extraction reader, the bulk insert,
how a night's rows are replaced, timestamps as parameters and the migration lock.  Code outside
`pipelines.db` asks `adapter_for(engine)` and never branches on the dialect's name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.errors import ConfigError

Checkpoint = Callable[[str], None]


def no_checkpoint(point: str) -> None:
    del point


def plain_rows(data: pa.Table) -> list[tuple[Any, ...]]:
    """Rows of plain Python values (dates, datetimes, numbers, str, None) for executemany."""
    columns = [col.to_pylist() for col in data.columns]
    return list(zip(*columns, strict=True)) if columns else []


class Adapter:
    """The generic adapter: SQLAlchemy streaming for reads, executemany for writes."""

    name: ClassVar[str] = "generic"
    #: the dialect has migrations under `sql/<name>/`, so results can be written to it
    writes_results: ClassVar[bool] = False
    #: readers this dialect offers besides "generic", fastest first
    readers: ClassVar[tuple[str, ...]] = ()
    paramstyle_mark: ClassVar[str] = "?"

    # --- engines ---------------------------------------------------------------------------
    def connect_args(self, *, write: bool) -> dict[str, object]:
        del write
        return {}

    def prepare_engine(self, engine: Engine) -> None:
        del engine

    def in_schema(self, url: sa.URL, schema: str) -> sa.URL:
        """The URL of a login whose unqualified names (seam's result tables) live in `schema`
        (`results.schema`)."""
        raise ConfigError(
            f"results.schema: {self.name} has no schemas seam can put its result tables in; remove "
            f"results.schema (the tables go into the database itself)"
        )

    def create_schema(self, engine: Engine, schema: str) -> None:
        """Create `schema` if it does not exist (`seam migrate`, with `results.schema`), through a
        login of the database that is not yet in it."""
        self.in_schema(engine.url, schema)

    def create_container(self, url: str) -> None:
        """Make sure the place a new database lives in exists (a file database's folder)."""
        del url

    def relative_to(self, url: str, base: Path) -> str:
        """The URL with any relative file path in it made absolute against `base`."""
        del base
        return url

    # --- extraction ------------------------------------------------------------------------
    def query_error_hint(self, err: BaseException) -> str:
        """A hint for a configured `query:` the database refused, for refusals peculiar to the
        dialect ("" when there is none)."""
        del err
        return ""

    def choose_reader(self, conn: Connection, schema: pa.Schema, requested: str = "auto") -> str:
        """The reader for a SELECT of `schema`: `requested` if the dialect offers it, the fastest
        one that can read these types for "auto", else "generic"."""
        if requested == "generic":
            return "generic"
        if requested != "auto" and requested not in self.readers:
            raise ConfigError(
                f"reader {requested!r} is not available for {self.name} sources; "
                f"choose one of {['auto', 'generic', *self.readers]}"
            )
        return self.pick_reader(conn, schema, requested)

    def pick_reader(self, conn: Connection, schema: pa.Schema, requested: str) -> str:
        del conn, schema, requested
        return "generic"

    def query_types(self, cursor: Any) -> list[pa.DataType | None]:
        """Arrow types of the columns of a query the DBAPI `cursor` has just described (a probe
        that returns no rows), as the generic path would read its values; None where the dialect
        cannot say (then the first rows decide, and only the generic reader can read the query).

        Integers are int64 and decimals float64 whatever their size, as values inferred from the
        rows would be."""
        return [None] * len(cursor.description or ())

    def query_not_null(self, cursor: Any) -> list[bool]:
        """For each column of a described query: True when the database says it is never NULL
        (a fast reader may then skip its NULL-safe handling); False where it cannot say."""
        return [False] * len(cursor.description or ())

    def stream(
        self, conn: Connection, sql: str, params: dict[str, Any], schema: pa.Schema, reader: str
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of `schema` for a compiled SELECT `sql` read by a fast `reader`."""
        raise NotImplementedError(f"{self.name} has no reader {reader!r}")

    def parallel_streams(self, reader: str) -> bool:
        """True when `reader` can read several key ranges of one table on parallel streams."""
        del reader
        return False

    def stream_parallel(
        self, conn: Connection, statements: Sequence[tuple[str, Any]], schema: pa.Schema, reader: str
    ) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError(f"{self.name} has no parallel reader")

    # --- loading ---------------------------------------------------------------------------
    def quote(self, conn: Connection, name: str) -> str:
        return conn.dialect.identifier_preparer.quote(name)

    def bulk_insert(self, conn: Connection, table: str, columns: Sequence[str], data: pa.Table) -> None:
        """Insert every row of `data` into `table` (quoted) on the connection's transaction."""
        if data.num_rows == 0:
            return
        names = ", ".join(self.quote(conn, c) for c in columns)
        marks = ", ".join([self.paramstyle_mark] * len(columns))
        data = data.select(list(columns))
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        try:  # Python values of 10,000 rows at a time, not of the whole part
            for i in range(0, data.num_rows, 10_000):
                rows = plain_rows(data.slice(i, 10_000))
                cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        finally:
            cur.close()

    def create_staging(self, conn: Connection, staging: str, target: str) -> None:
        conn.exec_driver_sql(f"CREATE TEMP TABLE {staging} AS SELECT * FROM {target} WHERE 1 = 0")

    def drop_staging(self, conn: Connection, staging: str) -> None:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {staging}")

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
        """Replace every row of `table` whose `night` column is `run_date` with the rows of `data`
        (its parts, read one at a time), inside the caller's transaction: staged without indexes,
        then one DELETE and one INSERT ... SELECT."""
        q = lambda n: self.quote(conn, n)  # noqa: E731
        staging, target = q(self.staging_name(table)), q(table)
        cols = ", ".join(q(c) for c in columns)
        self.create_staging(conn, staging, target)
        for part in data:
            self.bulk_insert(conn, staging, columns, part)
        checkpoint("staged")
        conn.execute(sa.text(f"DELETE FROM {target} WHERE {q(night)} = :d"), {"d": run_date})
        conn.exec_driver_sql(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging}")
        self.drop_staging(conn, staging)

    def upsert(
        self,
        conn: Connection,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        data: Iterable[pa.Table],
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        """Insert the rows of `data` (its parts) into `table`, replacing the rows whose `key` they
        hold (caller's transaction)."""
        q = lambda n: self.quote(conn, n)  # noqa: E731
        staging, target = q(self.staging_name(table)), q(table)
        self.create_staging(conn, staging, target)
        for part in data:
            self.bulk_insert(conn, staging, columns, part)
        checkpoint("staged")
        conn.exec_driver_sql(self.upsert_sql([q(c) for c in columns], [q(c) for c in key], target, staging))
        self.drop_staging(conn, staging)

    def upsert_sql(self, columns: list[str], key: list[str], target: str, staging: str) -> str:
        cols = ", ".join(columns)
        sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        return (
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging} "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
        )

    @staticmethod
    def staging_name(table: str) -> str:
        return "seam_stg_" + table.removeprefix("seam_")

    def timestamp_param(self, value: datetime) -> object:
        """A timezone-aware UTC datetime as this dialect's driver should receive it."""
        return value

    # --- migrations ------------------------------------------------------------------------
    @contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        """Serialise concurrent migrations of one database: held while the block runs, on the
        caller's open transaction (the migrations run inside it where the dialect allows)."""
        del conn
        yield
